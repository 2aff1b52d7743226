"""Alerts from whole DAG runs: a degraded run and a method switch e-mailed once, to a real SMTP server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg

from ozon_inventory.methods import V1_ANALYTICS_STOCKS, V1_FBO_BY_WAREHOUSE, V2_STOCK_ON_WAREHOUSES
from ozon_simulator import Fault
from tests.conftest import CLIENT_ID
from tests.dags.test_dag_runs import env, run_dag  # noqa: F401 - the fixture is used by name
from tests.ozon_inventory.test_alerts import smtp  # noqa: F401 - the fixture is used by name


def wait_for(inbox, count: int) -> list:
    deadline = time.monotonic() + 10
    while len(inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return inbox.messages


def test_alerts_are_sent_once_per_change(env, smtp, simulator, pg_dsn, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALERT_EMAIL", "ops@example.test")
    simulator.sim.accounts[CLIENT_ID].key_expires_at = datetime.now(UTC) + timedelta(days=3)
    # v2 is down: the breaker moves to its successor, the run completes, the switch is told
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "status", status=503, times=-1))
    run_dag(1, day=2)
    subjects = sorted(m["Subject"] for m in wait_for(smtp, 2))
    assert subjects == [
        "Ozon inventory ozon_default: the Api-Key expires on "
        f"{(datetime.now(UTC) + timedelta(days=3)).date().isoformat()} (in 3 days)",
        f"Ozon inventory ozon_default: warehouse_stocks switched to {V1_ANALYTICS_STOCKS}",
    ]
    # the next run, same state: nothing new to tell
    run_dag(2, day=2)
    time.sleep(0.5)
    assert len(smtp.messages) == 2
    # now every warehouse-level method fails: a degraded run is told once
    for method in (V1_ANALYTICS_STOCKS, V1_FBO_BY_WAREHOUSE):
        simulator.sim.add_fault(Fault(method, "status", status=503, times=-1))
    run_dag(3, day=2)
    degraded = [m for m in wait_for(smtp, 3) if "degraded" in m["Subject"]]
    assert [m["Subject"] for m in degraded] == [
        "Ozon inventory ozon_default: degraded run (warehouse_stocks missing)"
    ]
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute(
            "SELECT key_expires_at IS NOT NULL FROM ozon_sync_run WHERE account = 'ozon_default' "
            "ORDER BY loaded_at DESC LIMIT 1"
        ).fetchone()
    assert stored == (True,)  # the key's expiry is in the ledger
