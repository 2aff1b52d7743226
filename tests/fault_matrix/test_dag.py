"""Where Airflow's own behaviour is the point: a degraded run and its completion by a clear, a manifest that
vanished under a successful fetch, and the retry policy (permanent errors fail at once, others retry)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from ozon_inventory.staging import MANIFEST, run_key_for
from ozon_simulator import Fault
from tests.conftest import CLIENT_ID
from tests.dags.test_dag_runs import clear_and_resume, run_dag, states
from tests.fault_matrix.conftest import SECRET, assert_names, secret_in

ACCOUNT = "ozon_default"


@pytest.fixture
def dag_env(matrix, monkeypatch, airflow_db):
    """The DAG's connections and staging, as an operator sets them, on the case's simulator and database."""
    conn = {
        "conn_type": "http",
        "host": matrix.running.url,
        "login": CLIENT_ID,
        "password": SECRET,
        "extra": {"rate_limit": 500, "backoff": 0.01, "max_retries": 2, "timeout": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OZON_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_OZON_POSTGRES", matrix.dsn)
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_STAGING", str(matrix.staging_root))
    matrix.account = ACCOUNT
    return matrix


def airflow_texts(matrix, capsys) -> str:
    """Everything an operator can read: the task logs and the log records."""
    out = capsys.readouterr()
    return matrix.caplog.text + out.out + out.err


def assert_no_secret_in_airflow(matrix, texts: str) -> None:
    """Check 5 for a DAG run: also the metadata database (XComs, rendered fields, logs) and the task logs."""
    assert not secret_in(texts), "the Api-Key is in a task log"
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in home.rglob("*"):
        if path.is_file():
            assert not secret_in(path.read_bytes()), f"the Api-Key is in {path}"
    matrix.assert_no_secret()


def test_manifest_deleted_after_a_successful_fetch_is_named_not_called_a_failed_fetch(dag_env, capsys):
    """The manifest of a fetch that succeeded is gone (purged, deleted by hand) when validate runs again:
    validate says so and nothing loads; clearing that fetch with its downstream tasks completes the run."""
    matrix = dag_env
    dag_run = run_dag(11, day=21)
    assert str(dag_run.state) == "success", states(dag_run)
    before = matrix.state()
    # a change the fetched stocks will show, which no other staged answer of the run contradicts
    next(s for p in matrix.catalogue.products for s in p.stocks if s.type == "fbs").present += 1
    staging_dir = matrix.staging_root / ACCOUNT / run_key_for(dag_run.logical_date)
    (staging_dir / "stocks" / MANIFEST).unlink()
    capsys.readouterr()
    again = clear_and_resume(dag_run.run_id, "account.validate", 0)
    got = states(again)
    assert got[("account.validate", 0)] == "failed" and str(again.state) == "failed", got
    texts = airflow_texts(matrix, capsys)
    assert_names(
        rf"fetch_stocks succeeded, but its manifest {staging_dir / 'stocks' / MANIFEST} is gone .*"
        r"Clear fetch_stocks with its downstream tasks",
        texts,
    )
    assert "Clear the failed fetch task" not in texts
    matrix.assert_unchanged(before)

    done = clear_and_resume(dag_run.run_id, "account.fetch_stocks", 0)
    assert str(done.state) == "success", states(done)
    matrix.assert_catalogue()
    matrix.assert_history()
    assert_no_secret_in_airflow(matrix, airflow_texts(matrix, capsys))


@pytest.fixture
def with_retries(monkeypatch):
    """The account's tasks with two retries and no delay (the test environment runs them with none)."""
    from ozon_inventory_sync import dag

    for task in dag.task_dict.values():
        if task.task_id.startswith("account.") and task.task_id != "account.report":
            monkeypatch.setattr(task, "retries", 2)
            monkeypatch.setattr(task, "retry_delay", timedelta(0))
            monkeypatch.setattr(task, "retry_exponential_backoff", 0)


def test_retry_policy_and_a_degraded_run_completed_by_a_clear(dag_env, with_retries, capsys):
    """A permanent error fails its task at once, a transient one is retried; the failed source keeps its
    last good rows (a degraded run, shown failed), and clearing its fetch with downstream completes it."""
    matrix = dag_env
    run_dag(10, day=22)
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=42)
    # the warehouse list answers 503 for one try of its task (3 attempts), then heals; v4 is switched off
    matrix.fault(
        Fault("/v2/warehouse/list", "status", status=503, times=3),
        Fault("/v4/product/info/stocks", "obsolete", times=-1),
    )
    dag_run = run_dag(11, day=22)
    tries = {ti.task_id: (ti.try_number, str(ti.state)) for ti in dag_run.get_task_instances()}
    assert tries["account.fetch_stocks"] == (1, "failed"), tries  # permanent: no retry
    assert tries["account.fetch_warehouses"] == (2, "success"), tries  # transient: retried
    assert tries["account.load"][1] == "success" and tries["account.report"][1] == "failed", tries
    assert str(dag_run.state) == "failed"
    texts = airflow_texts(matrix, capsys)
    assert_names(
        r"Ozon /v4/product/info/stocks answered HTTP 404, code 5: Obsolete method cannot be used", texts
    )
    assert_names(
        r"account ozon_default: degraded run, stocks failed and kept its last good rows; loaded "
        r"warehouse_stocks, warehouses\. To complete the snapshot: Ozon switched the method off: upgrade "
        r"ozon-inventory or pin another method by param .*then clear fetch_stocks with its downstream tasks",
        texts,
    )
    matrix.assert_unchanged(before, ("stock_by_type", "products", "skus"))
    matrix.assert_history()

    matrix.heal()
    done = clear_and_resume(dag_run.run_id, "account.fetch_stocks", 0)
    assert str(done.state) == "success", states(done)
    matrix.assert_catalogue()
    matrix.assert_history()
    assert_no_secret_in_airflow(matrix, airflow_texts(matrix, capsys))
