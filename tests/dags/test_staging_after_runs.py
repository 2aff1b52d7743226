"""Staging after whole DAG runs: once a run is loaded only its raw answers and small reports remain; a
cleared load or merge rebuilds what it needs from the raw answers; retention by size also runs when
the run is degraded."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from ozon_simulator import Fault
from tests import clock
from tests.dags.test_dag_runs import clear_and_resume, env, run_dag, states  # noqa: F401 - env is a fixture

REPORTS = {
    "validated/report.json",
    "validated/summary.json",
    "model/merge.json",
    "model/compacted.json",
    "load/result.json",
}
RAW = re.compile(r"(stocks|warehouse_stocks|warehouses)/(manifest\.json|page-\d{6}\.json\.gz)")


def staged(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def database(pg_dsn: str) -> tuple:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM ozon_stock_by_type_history), "
            "(SELECT count(*) FROM ozon_stock_by_warehouse_history), "
            "(SELECT count(*) FROM ozon_product WHERE name IS NOT NULL), "
            "(SELECT array_agg(status || ':' || products || ':' || warehouse_rows) FROM ozon_sync_run)"
        ).fetchone()


def test_only_raw_answers_and_reports_remain_and_cleared_tasks_rebuild(env, pg_dsn, tmp_path):  # noqa: F811
    dag_run = run_dag(10, day=5)
    assert str(dag_run.state) == "success", states(dag_run)
    run_dir = tmp_path / "staging" / "ozon_default" / clock.run_key(clock.day(5, 10))
    files = staged(run_dir)
    raw = {f for f in files if RAW.fullmatch(f)}
    assert files - raw == REPORTS, files - raw
    assert {f.split("/")[0] for f in raw} == {"stocks", "warehouse_stocks", "warehouses"}
    loaded = database(pg_dsn)
    assert loaded[3] == ["complete:175:511"]

    # an operator clears the load: it rebuilds validate's and merge's files from the raw answers,
    # loads the same snapshot again (nothing changes) and compacts the run folder again
    again = clear_and_resume(dag_run.run_id, "account.load", 0)
    got = states(again)
    assert str(again.state) == "success", got
    assert {ti.task_id: ti.try_number for ti in again.get_task_instances()}["account.load"] == 2
    assert database(pg_dsn) == loaded
    assert staged(run_dir) == files

    # the same from merge (its inputs in validated/ were dropped too)
    again = clear_and_resume(dag_run.run_id, "account.merge", 0)
    assert str(again.state) == "success", states(again)
    assert database(pg_dsn) == loaded
    assert staged(run_dir) == files


def test_a_degraded_run_applies_retention_by_size(env, pg_dsn, simulator, tmp_path, monkeypatch):  # noqa: F811
    run_dag(10, day=6)
    run_dag(11, day=6)
    account_dir = tmp_path / "staging" / "ozon_default"
    assert sorted(p.name for p in account_dir.iterdir()) == [
        clock.run_key(clock.day(6, 10)),
        clock.run_key(clock.day(6, 11)),
    ]
    # a limit smaller than one run: every loaded run but the current one goes
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_RETENTION_MB_PER_ACCOUNT", "0.01")
    simulator.sim.add_fault(Fault("/v2/analytics/stock_on_warehouses", "status", status=503, times=-1))
    dag_run = run_dag(12, day=6)
    got = states(dag_run)
    assert got[("account.load", 0)] == "success" and got[("account.report", 0)] == "failed", got
    assert [p.name for p in account_dir.iterdir()] == [clock.run_key(clock.day(6, 12))]
    # the degraded run's own folder was compacted after its load: the failed fetch can be cleared
    files = staged(account_dir / clock.run_key(clock.day(6, 12)))
    assert "model/compacted.json" in files and not any(f.endswith(".tsv") for f in files)
    simulator.sim.clear_faults()
    again = clear_and_resume(dag_run.run_id, "account.fetch_warehouse_stocks", 0)
    assert str(again.state) == "success", states(again)
    with psycopg.connect(pg_dsn) as conn:
        status = conn.execute(
            "SELECT status, degraded FROM ozon_sync_run WHERE run_key = %s",
            (clock.run_key(clock.day(6, 12)),),
        ).fetchone()
    assert status == ("complete", False)
