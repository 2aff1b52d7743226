"""Every simulator fault kind on every method the pipeline calls, absorbed or failing, then recovery."""

from __future__ import annotations

import re

import pytest

from ozon_inventory.methods import (
    V1_ANALYTICS_STOCKS,
    V1_FBO_BY_WAREHOUSE,
    V1_WAREHOUSE_LIST,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
)
from ozon_simulator import Fault
from tests.fault_matrix.conftest import assert_names, permanent

#: The run settings that make the pipeline call each method, and the source it feeds.
METHODS = {
    V4_STOCKS: ({}, "stocks"),
    V2_STOCK_ON_WAREHOUSES: ({"warehouse_stock_method": "v2"}, "warehouse_stocks"),
    V1_ANALYTICS_STOCKS: ({"warehouse_stock_method": "v1"}, "warehouse_stocks"),
    V1_FBO_BY_WAREHOUSE: ({"warehouse_stock_method": "fbo"}, "warehouse_stocks"),
    V2_WAREHOUSE_LIST: ({"warehouse_list_method": "v2"}, "warehouses"),
    V1_WAREHOUSE_LIST: ({"warehouse_list_method": "v1"}, "warehouses"),
}
#: The tables a source's rows live in (a failed source keeps them as they were).
TABLES = {
    "stocks": ("stock_by_type", "products", "skus"),
    "warehouse_stocks": ("stock_by_warehouse", "ozon_warehouses"),
    "warehouses": ("seller_warehouses",),
}


def wh_method(pins: dict[str, str]) -> str:
    return pins.get("warehouse_stock_method", "v2")


#: Transient faults: kind, fault fields, what the retry's log line says.
TRANSIENT = {
    "status": ({"status": 503}, r"HTTP 503: Internal error"),
    "slow": ({"delay": 1.4}, r"timed out after 1 s"),
    "rate_limit": (
        {"retry_after": 1},
        r"HTTP 429 rate limited \(You have reached request rate limit per second\), Retry-After 1 s",
    ),
    "malformed_json": ({}, r"HTTP 200 with a broken body \(\d+ bytes\)"),
    "html": ({}, r"HTTP 502: non-JSON body '<html><head><title>502 Bad Gateway"),
    "truncated": ({}, r"connection error .*body cut short"),
}


def _between_unchanged(matrix, before):
    """After the fetches, before anything is loaded: the previous snapshot is whole (check 3)."""

    def check(_staging):
        matrix.assert_unchanged(before)

    return check


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
@pytest.mark.parametrize("method", list(METHODS))
def test_transient_fault_is_retried_and_nothing_is_lost(matrix, method, kind):
    pins, _ = METHODS[method]
    matrix.good_run(**pins)
    matrix.catalogue.change_stock(0.05, seed=3)
    before = matrix.state()
    fields, cause = TRANSIENT[kind]
    times = 1 if kind in ("slow", "rate_limit") else 2
    matrix.fault(Fault(method, kind, times=times, **fields))
    result = matrix.run(**pins, between=_between_unchanged(matrix, before))
    assert result.complete, result.text
    retried = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(rf"Ozon {re.escape(method)} attempt 1 failed \({cause}", retried)
    matrix.assert_catalogue(wh_method(pins))
    again = matrix.good_run(**pins)  # recovery: the same catalogue again writes no history
    assert (again.loaded.history_opened, again.loaded.history_closed) == (0, 0)
    matrix.assert_recovered(wh_method(pins))


#: Persistent faults: (method, kind, fields, client options, what the error says, permanent?).
PERSISTENT = [
    (
        V4_STOCKS,
        "status",
        {"status": 503},
        {},
        r"/v4/product/info/stocks is down for this run after 5 consecutive failures \(last status 503: HTTP 503: Internal error\)",
        True,
    ),
    (V4_STOCKS, "status", {"status": 500}, {}, r"last status 500: HTTP 500: Internal error", True),
    (V4_STOCKS, "html", {}, {}, r"last status 502: HTTP 502: non-JSON body '<html>", True),
    (V4_STOCKS, "malformed_json", {}, {}, r"last status 200: HTTP 200 with a broken body", True),
    (V4_STOCKS, "truncated", {}, {}, r"last status none: connection error", True),
    (V4_STOCKS, "slow", {"delay": 0.6}, {"timeout": 0.3}, r"last status none: timed out after 0.3 s", True),
    (
        V4_STOCKS,
        "rate_limit",
        {"retry_after": 1},
        {"max_retries": 2},
        r"/v4/product/info/stocks failed after 3 attempts: HTTP 429 rate limited",
        False,
    ),
    (
        V1_ANALYTICS_STOCKS,
        "status",
        {"status": 503},
        {},
        r"/v1/analytics/stocks is down for this run .*last status 503",
        True,
    ),
    (
        V1_WAREHOUSE_LIST,
        "status",
        {"status": 503},
        {},
        r"/v1/warehouse/list is down for this run .*last status 503",
        True,
    ),
]


@pytest.mark.parametrize(
    ("method", "kind", "fields", "options", "cause", "is_permanent"),
    PERSISTENT,
    ids=[f"{m}-{k}-{f.get('status', '')}" for m, k, f, *_ in PERSISTENT],
)
def test_persistent_fault_degrades_the_run_and_keeps_the_last_good_rows(
    matrix, method, kind, fields, options, cause, is_permanent
):
    pins, source = METHODS[method]
    matrix.good_run(**pins)
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=4)
    matrix.fault(Fault(method, kind, times=-1, **fields))
    result = matrix.run(**pins, client=matrix.client(**options))
    assert set(result.fetch_errors) == {source}, result.text
    error = result.fetch_errors[source]
    assert_names(cause, str(error))
    assert permanent(error) is is_permanent
    assert result.degraded and result.loaded.status == "degraded", result.text
    matrix.assert_unchanged(before, TABLES[source])  # the failed source kept its last good rows
    matrix.assert_history()

    matrix.heal()
    matrix.good_run(**pins)
    matrix.assert_recovered(wh_method(pins))


#: A method that stays dead is replaced by its successor in the same run.
FALLBACK = {
    V2_STOCK_ON_WAREHOUSES: (V1_ANALYTICS_STOCKS, "v1"),
    V2_WAREHOUSE_LIST: (V1_WAREHOUSE_LIST, "v2"),
}


@pytest.mark.parametrize("kind", ["status", "obsolete"])
@pytest.mark.parametrize("method", list(FALLBACK))
def test_dead_method_falls_back_to_its_successor(matrix, method, kind):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=5)
    matrix.fault(Fault(method, kind, times=-1))
    result = matrix.run()
    assert result.complete, result.text
    successor, wh = FALLBACK[method]
    source = METHODS[method][1]
    assert result.report.sources[source].method == successor
    assert result.report.sources[source].fallback_from == method
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname in ("WARNING", "ERROR"))
    said = "Obsolete method cannot be used" if kind == "obsolete" else "down for this run"
    assert_names(rf"{re.escape(method)}.*{said}.*falling back to {re.escape(successor)}", warned)
    matrix.assert_catalogue(wh)
    matrix.heal()
    matrix.good_run()  # back on the preferred method
    matrix.assert_recovered("v2")


def test_both_analytics_methods_dead_falls_back_to_fbo_by_warehouse(matrix):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=6)
    matrix.fault(
        Fault(V2_STOCK_ON_WAREHOUSES, "obsolete", times=-1), Fault(V1_ANALYTICS_STOCKS, "status", times=-1)
    )
    result = matrix.run()
    assert result.complete, result.text
    assert result.report.sources["warehouse_stocks"].method == V1_FBO_BY_WAREHOUSE
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname in ("WARNING", "ERROR"))
    assert_names(
        rf"{re.escape(V1_ANALYTICS_STOCKS)} is down .*falling back to {re.escape(V1_FBO_BY_WAREHOUSE)}",
        warned,
    )
    matrix.assert_catalogue("fbo")
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered("v2")


@pytest.mark.parametrize("method", [V4_STOCKS, V1_ANALYTICS_STOCKS, V1_FBO_BY_WAREHOUSE, V1_WAREHOUSE_LIST])
def test_switched_off_method_without_fallback_fails_at_once(matrix, method):
    pins, source = METHODS[method]
    matrix.good_run(**pins)
    before = matrix.state()
    matrix.fault(Fault(method, "obsolete", times=-1))
    result = matrix.run(**pins)
    error = result.fetch_errors[source]
    assert_names(
        rf"Ozon {re.escape(method)} answered HTTP 404, code 5: Obsolete method cannot be used", str(error)
    )
    assert permanent(error)
    assert result.degraded, result.text
    matrix.assert_unchanged(before, TABLES[source])
    requests = matrix.sim.stats_snapshot()["statuses"].get(f"{method} 404", 0)
    assert 1 <= requests <= 8  # not retried: at most the batches already in flight
    matrix.heal()
    matrix.good_run(**pins)
    matrix.assert_recovered(wh_method(pins))


@pytest.mark.parametrize("method", list(METHODS))
def test_catalogue_changing_during_the_fetch(matrix, method):
    """``mutate``: a product is inserted at the head after an answer; recovery picks it up."""
    pins, _ = METHODS[method]
    matrix.good_run(**pins)
    matrix.fault(Fault(method, "mutate", times=1))
    result = matrix.run(**pins)
    assert result.complete, result.text
    matrix.assert_history()
    matrix.good_run(**pins)
    matrix.assert_recovered(wh_method(pins))
    assert len(matrix.catalogue.products) == 401


@pytest.mark.parametrize("sim_size", [{"products": 2001, "rows_per_sku": 1}])  # three v4 pages
def test_repeated_cursor_stops_paging_with_a_clear_error(matrix):
    """Ozon answers the cursor it was sent: paging would never end; the source fails, clearly."""
    matrix.good_run()
    before = matrix.state()
    matrix.fault(Fault(V4_STOCKS, "repeat_cursor", times=-1, after=1))
    result = matrix.run()
    error = result.fetch_errors["stocks"]
    assert_names(
        r"Ozon /v4/product/info/stocks gave cursor .* again on page 2: paging would never end", str(error)
    )
    assert permanent(error)
    assert result.degraded, result.text
    matrix.assert_unchanged(before, TABLES["stocks"])
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()


def test_repeated_cursor_on_a_single_page_is_harmless(matrix):
    """The seller's warehouses fit one page: the cursor is never followed."""
    matrix.good_run()
    matrix.fault(Fault(V2_WAREHOUSE_LIST, "repeat_cursor", times=-1))
    assert matrix.run().complete
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()
