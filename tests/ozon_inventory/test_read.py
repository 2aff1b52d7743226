"""The analysts' read API: DataFrames through PostgresHook, to the unit; pandas stays out of the tasks.

The target database is loaded by the real stages from the simulator, twice, with a stock change in
between, so "stock at a time" and "one SKU's history" have two states to tell apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ozon_inventory import read
from ozon_inventory.client import OzonClient
from ozon_inventory.staging import StagingArea
from ozon_simulator import SimulatorConfig, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID
from tests.ozon_inventory.ui.conftest import new_database, sync_account

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "acc"


@pytest.fixture(scope="module")
def db(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    dsn = new_database(pg_server)
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig())
    running = serve(sim)
    catalogue = sim.accounts[CLIENT_ID].catalogue
    staging = tmp_path_factory.mktemp("read-staging")
    facts: dict[str, Any] = {"dsn": dsn, "catalogue": catalogue}
    try:
        with psycopg.connect(dsn) as conn, pytest.MonkeyPatch.context() as env:
            env.setenv("AIRFLOW_CONN_OZON_POSTGRES", dsn)

            def sync(run_key: str) -> None:
                client = OzonClient(running.url, CLIENT_ID, API_KEY, rate_limit=1000, timeout=2, backoff=0.01)
                sync_account(client, StagingArea(str(staging), ACCOUNT, run_key), conn, f"manual__{run_key}")

            facts["present_before"] = sum(s.present for p in catalogue.products for s in p.stocks)
            facts["free_before"] = sum(r.free_to_sell for r in catalogue.rows)
            sync("20261120T100000Z")
            facts["between"] = datetime.now(UTC)
            time.sleep(1.1)  # Ozon's clock (the as-of) has whole seconds
            facts["changed"] = catalogue.change_stock(0.3, seed=11)
            sync("20261120T110000Z")
            facts["present_after"] = sum(s.present for p in catalogue.products for s in p.stocks)
            facts["free_after"] = sum(r.free_to_sell for r in catalogue.rows)
            yield facts
    finally:
        running.stop()


@pytest.fixture
def target(db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AIRFLOW_CONN_OZON_POSTGRES", db["dsn"])
    return db


def test_current_stock_by_warehouse_to_the_unit(target):
    frame = read.current_stock_by_warehouse(ACCOUNT)
    rows = target["catalogue"].rows
    assert len(frame) == len(rows) == 511
    assert int(frame["free_to_sell"].sum()) == target["free_after"]
    assert str(frame["free_to_sell"].dtype) == "Int64" and str(frame["sku"].dtype) == "Int64"
    names = {w.name for w in target["catalogue"].ozon_warehouses}
    assert set(frame["warehouse_name"]) == names  # Cyrillic, underscores and asterisks intact
    assert frame["offer_id"].notna().any()
    assert read.current_stock_by_warehouse("nobody").empty


def test_current_stock_by_type(target):
    frame = read.current_stock_by_type(ACCOUNT)
    assert len(frame) == sum(len(p.stocks) for p in target["catalogue"].products)
    assert int(frame["present"].sum()) == target["present_after"]
    assert set(frame["stock_type"]) <= {"fbo", "fbs", "rfbs", "fbp"}
    assert len(read.current_stock_by_type()) == len(frame)  # every account: only this one here


def test_stock_at_a_time_before_the_change(target):
    before = read.stock_at(target["between"], ACCOUNT)
    assert int(before["present"].sum()) == target["present_before"] != target["present_after"]
    now = read.stock_at(datetime.now(UTC).isoformat(), ACCOUNT)
    assert int(now["present"].sum()) == target["present_after"]
    by_warehouse = read.stock_at(target["between"], ACCOUNT, by="warehouse")
    assert int(by_warehouse["free_to_sell"].sum()) == target["free_before"]
    with pytest.raises(ValueError, match="with a zone"):
        read.stock_at("2026-11-20T12:00", ACCOUNT)


def test_one_sku_history_shows_its_change(target):
    current = read.current_stock_by_type(ACCOUNT)
    runs = read.runs(ACCOUNT)
    second = runs.iloc[0]["run_id"]
    changed = current[current["changed_at"] > target["between"]]
    assert not changed.empty, "the second run changed no stock by type"
    sku = int(changed.iloc[0]["sku"])
    history = read.sku_history(ACCOUNT, sku)
    kinds = history[history["kind"] == "type"]
    assert (
        len(kinds) >= 2
        and kinds["valid_to"].isna().sum()
        == kinds[["stock_type", "shipment_type"]].drop_duplicates().shape[0]
    )
    assert second in set(kinds["run_id"])
    assert list(history["valid_from"]) == sorted(history["valid_from"])


def test_runs_and_rejects(target):
    runs = read.runs(ACCOUNT)
    assert list(runs["run_key"]) == ["20261120T110000Z", "20261120T100000Z"]
    assert set(runs["status"]) == {"complete"}
    assert isinstance(runs.iloc[0]["sources"], dict) and "stocks" in runs.iloc[0]["sources"]
    assert read.runs(ACCOUNT, since=target["between"])["run_key"].tolist() == ["20261120T110000Z"]
    with psycopg.connect(target["dsn"]) as conn:
        conn.execute(
            "INSERT INTO ozon_reject (account, run_id, source, reason, record) VALUES (%s, %s, %s, %s, %s)",
            (
                ACCOUNT,
                runs.iloc[0]["run_id"],
                "stocks",
                "present is negative",
                json.dumps({"sku": 1, "present": -1}),
            ),
        )
    rejects = read.rejects(ACCOUNT, run_id=runs.iloc[0]["run_id"])
    assert rejects[["source", "reason"]].values.tolist() == [["stocks", "present is negative"]]
    assert rejects.iloc[0]["record"] == {"sku": 1, "present": -1}


def test_pandas_stays_out_of_the_tasks_and_the_page_out_of_workers(tmp_path):
    """A task process loads every plugin module and the DAG's task code: no pandas, no FastAPI app."""
    script = """
import sys
from airflow.sdk import plugins_manager
plugins, errors = plugins_manager._get_plugins()
assert not errors, errors
assert any(p.name == "ozon_inventory" for p in plugins), [p.name for p in plugins]
import ozon_inventory.tasks, ozon_inventory.validate, ozon_inventory.merge, ozon_inventory.load
import ozon_inventory_sync
print("pandas" in sys.modules, "ozon_inventory.ui.app" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("plugins", "dags", "")),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["False", "False"], done.stdout
