"""Whole DAG runs with dag.test(): the simulator over HTTP, a real PostgreSQL, Airflow's task runner."""

from __future__ import annotations

import json

import pendulum
import psycopg
import pytest

from ozon_simulator import Account, Fault, build_catalogue
from tests import clock
from tests.conftest import API_KEY, CLIENT_ID

OLD_QUERY_OZON = """SELECT warehouse_name, stock_type, COUNT(*) FROM inventory_data WHERE source = 'Ozon'
GROUP BY warehouse_name, stock_type"""
OLD_QUERY_ANALYTICS = """SELECT warehouse_name, COUNT(*) FROM inventory_data WHERE source = 'Ozon_Analytics'
GROUP BY warehouse_name ORDER BY COUNT(*) DESC"""


@pytest.fixture
def env(monkeypatch, tmp_path, simulator, pg_dsn, airflow_db):
    """Connections and staging for the DAG, as an operator would set them (environment variables)."""

    def ozon_conn(conn_id: str, client_id: str = CLIENT_ID, api_key: str = API_KEY, url: str = simulator.url):
        uri = json.dumps(
            {
                "conn_type": "http",
                "host": url,
                "login": client_id,
                "password": api_key,
                "extra": {"rate_limit": 500, "backoff": 0.01, "max_retries": 2, "timeout": 5},
            }
        )
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", uri)

    ozon_conn("ozon_default")
    monkeypatch.setenv("AIRFLOW_CONN_OZON_POSTGRES", pg_dsn)
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_STAGING", str(tmp_path / "staging"))
    return ozon_conn


def run_dag(hour: int, conf: dict | None = None, day: int = 1):
    from ozon_inventory_sync import dag

    # dag.test() keeps a run's conf on the shared DAG object: always name the accounts and the
    # connections
    conf = {"accounts": ["ozon_default"], "migrate_conn_id": None} | (conf or {})
    return dag.test(logical_date=pendulum.instance(clock.day(day, hour)), run_conf=conf)


def clear_and_resume(run_id: str, task_id: str, map_index: int):
    """Clear a task and its downstream tasks in one map index, as the REST API's clearTaskInstances
    does with include_downstream and only_failed=false, then drive the run with dag.test()'s loop."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState
    from ozon_inventory_sync import dag
    from sqlalchemy import select

    session = settings.Session()
    dag_run = session.scalar(select(DagRun).where(DagRun.run_id == run_id))
    dag_run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    cleared = {task_id} | dag.task_dict[task_id].get_flat_relative_ids(upstream=False)
    tis = [
        ti
        for ti in dag_run.get_task_instances(session=session)
        if ti.task_id in cleared and ti.map_index == map_index
    ]
    assert {ti.task_id for ti in tis} == cleared
    clear_task_instances(tis, session)
    dag_run.state = DagRunState.RUNNING
    session.commit()
    while dag_run.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        for ti in [
            t for t in dag_run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
        ]:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=False)
    return dag_run


def states(dag_run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def test_old_system_dataset_full_run(env, pg_dsn, simulator):
    dag_run = run_dag(10, day=1)
    got = states(dag_run)
    assert str(dag_run.state) == "success", got
    assert got[("account.report", 0)] == "success"
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(OLD_QUERY_OZON).fetchall()
        assert sum(n for *_, n in rows) == sum(
            len(p.stocks) for p in simulator.sim.accounts[CLIENT_ID].catalogue.products
        )
        assert ("FBO" in {t for _, t, _ in rows}) and all(w is None for w, _, _ in rows)
        analytics = conn.execute(OLD_QUERY_ANALYTICS).fetchall()
        assert len(analytics) == 27 and sum(n for _, n in analytics) == 511
        ledger = conn.execute(
            "SELECT account, status, degraded, products, warehouse_rows, rejects FROM ozon_sync_run"
        ).fetchall()
        assert ledger == [("ozon_default", "complete", False, 175, 511, 0)]


def test_two_accounts_at_once_and_a_bad_key_fails_only_its_own(env, pg_dsn, simulator):
    other = build_catalogue(40, 5, seed=9)
    simulator.sim.accounts["300400"] = Account("300400", "second-key", other)
    simulator.sim.accounts["300500"] = Account("300500", "third-key", build_catalogue(20, 3, seed=10))
    env("ozon_second", client_id="300400", api_key="second-key")
    env("ozon_broken", client_id="300500", api_key="not-the-key")  # a seller of its own (one per run)
    dag_run = run_dag(11, {"accounts": ["ozon_default", "ozon_second", "ozon_broken"]}, day=2)
    got = states(dag_run)
    assert got[("account.report", 0)] == "success" and got[("account.report", 1)] == "success"
    assert got[("account.fetch_stocks", 2)] == "failed" and got[("account.report", 2)] == "failed"
    assert str(dag_run.state) == "failed"
    with psycopg.connect(pg_dsn) as conn:
        products = dict(conn.execute("SELECT account, count(*) FROM ozon_product GROUP BY 1").fetchall())
        assert products == {"ozon_default": 175, "ozon_second": 40}


def test_repeated_run_changes_nothing_and_vanished_stock_goes(env, pg_dsn, simulator):
    run_dag(10, day=3)
    with psycopg.connect(pg_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM ozon_stock_by_warehouse_history").fetchone()[0]
    run_dag(11, day=3)
    with psycopg.connect(pg_dsn) as conn:
        after = conn.execute("SELECT count(*) FROM ozon_stock_by_warehouse_history").fetchone()[0]
        ledger = conn.execute(
            "SELECT history_opened, history_closed FROM ozon_sync_run ORDER BY run_key"
        ).fetchall()
    assert after == before and ledger[1] == (0, 0)

    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    changed = catalogue.change_stock(0.01, seed=5)
    removed = catalogue.remove_products(3)
    run_dag(12, day=3)
    with psycopg.connect(pg_dsn) as conn:
        lingering = conn.execute(
            "SELECT count(*) FROM inventory_data WHERE product_id = ANY(%s)", (removed,)
        ).fetchone()[0]
        assert lingering == 0
        opened = conn.execute(
            """SELECT count(*) FROM ozon_stock_by_warehouse_history
               WHERE run_id = (SELECT run_id FROM ozon_sync_run WHERE run_key = %s)""",
            (clock.run_key(clock.day(3, 12)),),
        ).fetchone()[0]
        assert 0 < opened <= changed  # only rows that really changed got a new history row
        assert conn.execute("SELECT count(*) FROM ozon_product").fetchone()[0] == 172


def test_degraded_run_completed_by_clearing_the_failed_task(env, pg_dsn, simulator):
    run_dag(10, day=4)
    simulator.sim.accounts[CLIENT_ID].catalogue.change_stock(0.05, seed=2)
    simulator.sim.add_fault(Fault("/v2/analytics/stock_on_warehouses", "status", status=503, times=-1))
    dag_run = run_dag(11, day=4)
    got = states(dag_run)
    assert got[("account.fetch_warehouse_stocks", 0)] == "failed"
    assert got[("account.load", 0)] == "success" and got[("account.report", 0)] == "failed"
    assert str(dag_run.state) == "failed"
    with psycopg.connect(pg_dsn) as conn:
        status = conn.execute(
            "SELECT status, degraded, missing_sources, applied_sources FROM ozon_sync_run WHERE run_key = %s",
            (clock.run_key(clock.day(4, 11)),),
        ).fetchone()
        assert status == ("degraded", True, ["warehouse_stocks"], ["stocks", "warehouses"])
        as_of = dict(conn.execute("SELECT source, run_id FROM ozon_source_state").fetchall())
        assert as_of["warehouse_stocks"] != as_of["stocks"]  # the failed source kept its own as-of

    # The operator heals Ozon and clears the failed task with its downstream tasks.
    simulator.sim.clear_faults()
    again = clear_and_resume(dag_run.run_id, "account.fetch_warehouse_stocks", 0)
    got = states(again)
    assert str(again.state) == "success", got
    tries = {ti.task_id: ti.try_number for ti in again.get_task_instances()}
    assert tries["account.fetch_stocks"] == 1 and tries["account.fetch_warehouse_stocks"] == 2
    with psycopg.connect(pg_dsn) as conn:
        status = conn.execute(
            "SELECT status, degraded FROM ozon_sync_run WHERE run_key = %s",
            (clock.run_key(clock.day(4, 11)),),
        ).fetchone()
        assert status == ("complete", False)
        catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
        total = conn.execute("SELECT sum(free_to_sell) FROM ozon_stock_by_warehouse").fetchone()[0]
        assert total == sum(r.free_to_sell for r in catalogue.rows)
