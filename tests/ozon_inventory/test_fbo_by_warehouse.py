"""/v1/product/info/stocks-by-warehouse/fbo as the warehouse-level source: stored with history,
reconciled per SKU exactly against v4's fbo row, and last in auto's order."""

from __future__ import annotations

import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.methods import V1_ANALYTICS_STOCKS, V1_FBO_BY_WAREHOUSE, V2_STOCK_ON_WAREHOUSES
from ozon_inventory.staging import StagingArea
from ozon_simulator import Fault, SimulatorConfig, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID
from tests.pipeline import sync_account


def run(url, tmp_path, conn, run_key, method="fbo"):
    client = OzonClient(url, CLIENT_ID, API_KEY, rate_limit=1000, backoff=0.01, backoff_max=0.05)
    return sync_account(client, StagingArea(str(tmp_path), "acc", run_key), conn, f"run-{run_key}", method)


@pytest.mark.parametrize("form", ["products", "items_strings"])
def test_fbo_by_warehouse_loads_and_reconciles_exactly_with_v4(form, tmp_path, pg_conn):
    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(fbo_by_warehouse_form=form)
    )
    running = serve(sim)
    try:
        out = run(running.url, tmp_path, pg_conn, "20261124T010000Z")
        report, loaded = out["report"], out["loaded"]
        assert report.sources["warehouse_stocks"].method == V1_FBO_BY_WAREHOUSE
        assert loaded.status == "complete" and loaded.counts["warehouse_rows"] == 511
        v4_fbo = {
            s.sku for p in sim.accounts[CLIENT_ID].catalogue.products for s in p.stocks if s.type == "fbo"
        }
        fbo_skus = len(v4_fbo | {r.sku for r in sim.accounts[CLIENT_ID].catalogue.rows})
        assert report.checks["fbo_present"] == {"skus": fbo_skus, "mismatches": 0}
        assert report.checks["fbo_reserved"] == {"skus": fbo_skus, "mismatches": 0}
        assert report.checks["fbo_stock"]["mismatches"] == 0
        catalogue = sim.accounts[CLIENT_ID].catalogue
        stored = pg_conn.execute(
            "SELECT sum(free_to_sell), sum(reserved), count(*) FILTER (WHERE promised IS NULL) "
            "FROM ozon_stock_by_warehouse WHERE account = 'acc'"
        ).fetchone()
        assert stored == (
            sum(r.free_to_sell for r in catalogue.rows),
            sum(r.reserved for r in catalogue.rows),
            511,  # promised is not provided by this method
        )
        # a second run with nothing changed writes no history
        again = run(running.url, tmp_path, pg_conn, "20261124T020000Z")["loaded"]
        assert (again.history_opened, again.history_closed) == (0, 0)
    finally:
        running.stop()


def test_a_difference_from_v4_is_counted_and_shown(simulator, tmp_path, pg_conn):
    rows = simulator.sim.accounts[CLIENT_ID].catalogue.rows
    with simulator.sim.lock:
        rows[0].reserved += 1  # one warehouse row disagrees with its SKU's v4 fbo row
    report = run(simulator.url, tmp_path, pg_conn, "20261124T010000Z")["report"]
    assert report.checks["fbo_reserved"]["mismatches"] == 1
    assert any(e["sku"] == rows[0].sku for e in report.mismatch_examples)


def test_auto_reaches_it_last_when_both_analytics_methods_are_down(simulator, tmp_path, pg_conn):
    for dead in (V2_STOCK_ON_WAREHOUSES, V1_ANALYTICS_STOCKS):
        simulator.sim.add_fault(Fault(dead, "status", status=503, times=-1))
    report = run(simulator.url, tmp_path, pg_conn, "20261124T010000Z", method="auto")["report"]
    source = report.sources["warehouse_stocks"]
    assert (source.method, source.fallback_from) == (V1_FBO_BY_WAREHOUSE, V2_STOCK_ON_WAREHOUSES)
    assert report.checks["fbo_present"]["mismatches"] == 0
