"""Fixtures of the page's tests: a target database loaded by the real stages, Airflow's auth manager.

``loaded`` runs the stages (simulator over HTTP → staging → validate → merge → load) for three
accounts: ``acc_ok`` (two runs, the second after a stock change and a 429 from Ozon), ``acc_rejects``
(a negative quantity from Ozon) and ``acc_degraded`` (every warehouse-level method down).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import OzonInventoryError
from ozon_inventory.fetch import fetch_stocks, fetch_warehouse_stocks, fetch_warehouses
from ozon_inventory.load import load_run, previous_counts
from ozon_inventory.merge import merge_run
from ozon_inventory.methods import AUTO_ORDER
from ozon_inventory.schema import migrate
from ozon_inventory.staging import StagingArea
from ozon_inventory.ui.queries import AirflowFacts
from ozon_inventory.validate import validate_run
from ozon_simulator import Fault, SimulatorConfig, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID

JWT_SECRET = "ui-tests-" + uuid.uuid4().hex * 3


def sync_account(client: OzonClient, staging: StagingArea, conn: Any, run_id: str) -> Any:
    """The stages of one account's run as the DAG's tasks run them: a fetch that fails leaves its
    source missing and the others go on (tests/pipeline.py stops at the first failure instead)."""
    for fetch in (fetch_stocks, fetch_warehouse_stocks, fetch_warehouses):
        try:
            fetch(client, staging)
        except OzonInventoryError:
            pass
    migrate(conn)
    report = validate_run(staging, previous_counts(conn, staging.account), 0.5, False)
    merge_run(staging, report)
    return load_run(conn, staging, report, run_id, {})


@dataclass
class Loaded:
    dsn: str
    catalogue: Any
    runs: dict[str, list[str]] = field(default_factory=dict)


def new_database(pg_server: Any) -> str:
    name = f"ui_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{name}"


@pytest.fixture(scope="module")
def loaded(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    dsn = new_database(pg_server)
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig())
    running = serve(sim)
    staging_root = tmp_path_factory.mktemp("ui-staging")
    catalogue = sim.accounts[CLIENT_ID].catalogue
    out = Loaded(dsn, catalogue)
    try:
        with psycopg.connect(dsn) as conn:

            def sync(account: str, run_key: str) -> None:
                run_id = f"manual__{run_key}"
                client = OzonClient(  # one per run, as each task has its own: its own request figures
                    running.url,
                    CLIENT_ID,
                    API_KEY,
                    rate_limit=1000,
                    timeout=2,
                    max_retries=1,
                    backoff=0.01,
                    backoff_max=0.05,
                )
                sync_account(client, StagingArea(str(staging_root), account, run_key), conn, run_id)
                out.runs.setdefault(account, []).append(run_id)

            sync("acc_ok", "20261120T100000Z")
            catalogue.change_stock(0.2, seed=3)
            sim.add_fault(Fault("/v4/product/info/stocks", "rate_limit", times=1, retry_after=1))
            sync("acc_ok", "20261120T110000Z")
            sim.clear_faults()

            row = catalogue.rows[0]
            kept = row.free_to_sell
            row.free_to_sell = -3
            sync("acc_rejects", "20261120T110000Z")
            row.free_to_sell = kept

            for method in AUTO_ORDER["warehouse_stocks"]:  # every warehouse-level method
                sim.add_fault(Fault(method, "status", status=503, times=-1))
            sync("acc_degraded", "20261120T110000Z")
            sim.clear_faults()
        yield out
    finally:
        running.stop()


@pytest.fixture(scope="module")
def auth_manager(airflow_db: bool) -> Iterator[Any]:
    """Airflow's simple auth manager as the api-server holds it (JWTs signed with a test secret)."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    saved = os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
    os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = JWT_SECRET
    previous = api_app._AuthManagerState.instance
    manager = SimpleAuthManager()
    api_app._AuthManagerState.instance = manager
    try:
        yield manager
    finally:
        api_app._AuthManagerState.instance = previous
        if saved is None:
            os.environ.pop("AIRFLOW__API_AUTH__JWT_SECRET", None)
        else:
            os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = saved


def token(manager: Any, username: str, role: str | None, teams: list[str] | None = None) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role, teams=teams))


class Page:
    """The plugin's app mounted as the api-server mounts it, with the target database and Airflow's
    facts about runs replaced by the test's."""

    def __init__(self, dsn: str, manager: Any):
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from ozon_inventory.ui.app import URL_PREFIX, airflow_runs, create_app, target_db

        self.dsn = dsn
        self.facts: dict[str, AirflowFacts] = {}
        app = create_app()

        def db() -> Iterator[psycopg.Connection]:
            with psycopg.connect(self.dsn) as conn:
                yield conn

        app.dependency_overrides[target_db] = db
        app.dependency_overrides[airflow_runs] = lambda: dict(self.facts)
        root = FastAPI()
        root.mount(URL_PREFIX, app)
        self.client = TestClient(root)
        self.viewer = {"Authorization": f"Bearer {token(manager, 'ops', 'viewer')}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.get(
            "/ozon-inventory" + path, headers=self.viewer if headers is None else headers, **kwargs
        )

    def json(self, path: str, **params: Any) -> Any:
        answer = self.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def page(loaded: Loaded, auth_manager: Any) -> Page:
    return Page(loaded.dsn, auth_manager)


STATIC = Path(__file__).resolve().parents[3] / "plugins" / "ozon_inventory" / "ui" / "static"
