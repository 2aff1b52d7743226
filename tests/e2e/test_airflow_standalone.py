"""A real Airflow 3 (``airflow standalone``, SQLite) driven through its REST API and CLI.

With the simulator and a real PostgreSQL it checks what an operator does: unpause and trigger a
run; see a degraded run when Ozon's analytics fail, heal Ozon, clear the failed task with its
downstream tasks and see the run finish whole; then backfill dates with and without archived answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from ozon_simulator import Fault, SimulatorConfig, default_simulator, serve
from scripts.localpg import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ozon_inventory_sync"
BIN = Path(sys.executable).parent


class Airflow:
    def __init__(self, home: Path, env: dict[str, str], port: int):
        self.home, self.env, self.port = home, env, port
        self.url = f"http://localhost:{port}"
        self.session = requests.Session()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def api(self, method: str, path: str, **kwargs):
        answer = self.session.request(method, self.url + path, timeout=30, **kwargs)
        assert answer.status_code < 400, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json() if answer.content else None

    def login(self) -> None:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        token = requests.post(
            self.url + "/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
        ).json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def wait_run(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise AssertionError(f"run {run_id} did not finish in {timeout} s")

    def task_states(self, run_id: str) -> dict[tuple[str, int], str]:
        tis = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")[
            "task_instances"
        ]
        return {(t["task_id"], t["map_index"]): t["state"] for t in tis}

    def trigger(self, logical_date: str) -> str:
        run = self.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": logical_date, "conf": {}}
        )
        return run["dag_run_id"]


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory):
    """Simulator + PostgreSQL database + airflow standalone, torn down as a process group."""
    sim = default_simulator(client_id="100200", api_key="e2e-key", config=SimulatorConfig())
    running = serve(sim)
    dbname = "e2e"
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.execute(f"CREATE DATABASE {dbname}")
    dsn = f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{dbname}"
    home = tmp_path_factory.mktemp("airflow-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OZON_INVENTORY"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "tests.e2e.sqlite_settings.CONNECT_ARGS",
            "PYTHONPATH": str(ROOT),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_OZON_DEFAULT": json.dumps(
                {
                    "conn_type": "http",
                    "host": running.url,
                    "login": "100200",
                    "password": "e2e-key",
                    "extra": {"max_retries": 1, "backoff": 0.05},
                }
            ),
            "AIRFLOW_CONN_OZON_POSTGRES": dsn,
            "AIRFLOW_VAR_OZON_INVENTORY_STAGING": str(home / "staging"),
            "OZON_INVENTORY_SCHEDULE": "@daily",
            "OZON_INVENTORY_RETRIES": "0",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
    )
    log = (home / "standalone.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    airflow = Airflow(home, env, port)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if (
                    requests.get(airflow.url + "/api/v2/monitor/health", timeout=5).status_code == 200
                    and (home / "simple_auth_manager_passwords.json.generated").exists()
                ):
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "airflow standalone did not start:\n" + (home / "standalone.log").read_text()[-4000:]
                )
            time.sleep(2)
        airflow.login()
        airflow.api("POST", "/api/v2/pools", json={"name": "ozon_api", "slots": 2})
        airflow.cli("dags", "reserialize")
        yield airflow, running, dsn
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        running.stop()


def test_operator_flow(stack):
    airflow, sim, dsn = stack
    airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})

    # 1. a triggered run loads the old system's dataset
    first = airflow.trigger("2026-11-10T00:00:00Z")
    assert airflow.wait_run(first) == "success", airflow.task_states(first)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM inventory_data WHERE source = 'Ozon_Analytics'"
        ).fetchone() == (511,)
        assert conn.execute("SELECT count(*) FROM ozon_product").fetchone() == (175,)

    # 2. analytics fail: degraded run, the other sources loaded, the fetch task failed
    sim.sim.accounts["100200"].catalogue.change_stock(0.05, seed=4)
    sim.sim.add_fault(Fault("/v2/analytics/stock_on_warehouses", "status", status=503, times=-1))
    second = airflow.trigger("2026-11-11T00:00:00Z")
    assert airflow.wait_run(second) == "failed"
    states = airflow.task_states(second)
    assert states[("account.fetch_warehouse_stocks", 0)] == "failed"
    assert states[("account.load", 0)] == "success" and states[("account.report", 0)] == "failed"
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, missing_sources FROM ozon_sync_run WHERE run_id = %s", (second,)
        ).fetchone()
        assert row == ("degraded", ["warehouse_stocks"])

    # heal Ozon, clear the failed task with its downstream tasks: the run finishes whole
    sim.sim.clear_faults()
    airflow.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": second,
            "task_ids": [["account.fetch_warehouse_stocks", 0]],
            "only_failed": False,
            "include_downstream": True,
        },
    )
    assert airflow.wait_run(second) == "success", airflow.task_states(second)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, degraded FROM ozon_sync_run WHERE run_id = %s", (second,)
        ).fetchone()
        assert row == ("complete", False)
        total = conn.execute("SELECT sum(free_to_sell) FROM ozon_stock_by_warehouse").fetchone()[0]
        assert total == sum(r.free_to_sell for r in sim.sim.accounts["100200"].catalogue.rows)

    # 3. backfill: archived dates are reprocessed without calling Ozon, the others skip with a reason
    calls_before = sum(sim.sim.stats_snapshot()["requests"].values())
    for _attempt in range(30):  # SQLite answers "database is locked" while the scheduler writes
        done = airflow.cli(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            "2026-11-10",
            "--to-date",
            "2026-11-13",
            "--reprocess-behavior",
            "completed",
            "--max-active-runs",
            "1",
            check=False,
        )
        if done.returncode == 0:
            break
        if airflow.api("GET", f"/api/v2/backfills?dag_id={DAG_ID}")["total_entries"]:
            break  # the failure came after the backfill was stored
        time.sleep(2)
    assert airflow.api("GET", f"/api/v2/backfills?dag_id={DAG_ID}")["total_entries"] == 1, done.stderr[-2000:]
    deadline = time.monotonic() + 600
    while True:
        (backfill,) = airflow.api("GET", f"/api/v2/backfills?dag_id={DAG_ID}")["backfills"]
        runs = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")["dag_runs"]
        by_date = {r["logical_date"][:10]: r for r in runs}
        if backfill["completed_at"] and all(r["state"] in ("success", "failed") for r in by_date.values()):
            break
        assert time.monotonic() < deadline, (backfill, by_date)
        time.sleep(3)
    assert sorted(by_date) == ["2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"], by_date
    for date in ("2026-11-10", "2026-11-11"):
        run = by_date[date]
        assert run["state"] == "success", airflow.task_states(run["dag_run_id"])
        manifest = airflow.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/account.fetch_stocks/xcomEntries/"
            "return_value?map_index=0",
        )["value"]
        manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
        assert manifest["reused"] is True
    for date in ("2026-11-12", "2026-11-13"):
        run = by_date[date]
        states = airflow.task_states(run["dag_run_id"])
        assert states[("account.fetch_stocks", 0)] == "skipped", states
        assert states[("account.load", 0)] == "skipped"
        logs = requests.get(
            f"{airflow.url}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/account.fetch_stocks/logs/1"
            "?map_index=0",
            headers={**airflow.session.headers, "Accept": "application/json"},
            timeout=30,
        ).text
        assert "no archived stocks answers" in logs
    assert sum(sim.sim.stats_snapshot()["requests"].values()) == calls_before  # no Ozon call in a backfill
    with psycopg.connect(dsn) as conn:
        statuses = dict(
            conn.execute(
                "SELECT run_key, status FROM ozon_sync_run WHERE run_key IN ('20261110T000000Z', '20261111T000000Z')"
            ).fetchall()
        )
        assert statuses["20261110T000000Z"] == "stale"  # older than what is loaded: not applied
        assert statuses["20261111T000000Z"] in ("stale", "complete")  # the newest archive: same data again
        total = conn.execute("SELECT sum(free_to_sell) FROM ozon_stock_by_warehouse").fetchone()[0]
        assert total == sum(r.free_to_sell for r in sim.sim.accounts["100200"].catalogue.rows)
