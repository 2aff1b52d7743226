"""Answers that must never be loaded as they read: a changed shape, Ozon's error under HTTP 200, a body
that trickles in, a broken encoding (issue 23's table).

Each case is the matrix's good run → fault run → recovery run with its five checks: the database
equals the catalogue after recovery, the history invariants hold, the previous snapshot (or the
failed source's rows) stayed whole while the fault lasted, the error names its cause, and the
Api-Key is nowhere. A changed answer is also checked where an operator meets it: the run's ledger
row as the UI reads it, and the alerts the run calls for.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from ozon_inventory.exceptions import OzonAuthError, OzonMethodDown, OzonSchemaChanged
from ozon_inventory.methods import (
    METHODS,
    V1_ANALYTICS_STOCKS,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
)
from ozon_simulator import Fault
from tests.fault_matrix.conftest import ACCOUNT, Matrix, assert_names, permanent
from tests.fault_matrix.test_data import reject_reasons
from tests.fault_matrix.test_transport import METHODS as PINS
from tests.fault_matrix.test_transport import TABLES, wh_method


@pytest.fixture
def sim_size() -> dict[str, Any]:
    return {"products": 150}  # one page per method: each case is three whole runs


def _paths(path: str) -> list[str]:
    """The dotted paths (from an answer's root, as the simulator's rename takes them) of every field
    the pipeline needs in ``path``'s answers: where the rows sit, what paging reads, each record's
    required fields."""
    m = METHODS[path]
    rows = ".".join(m.rows_at)
    fields = [m.rows_at[0], *m.answer_fields]
    if len(m.rows_at) > 1:
        fields.append(rows)
    for record in m.records:
        prefix = rows if record.within is None else f"{rows}.{record.within}"
        fields += [f"{prefix}.{name}" for name in record.required]
    return fields


SHAPES = [(path, field) for path in PINS for field in _paths(path)]


def ledger_sources(matrix: Matrix, run_key: str) -> dict[str, Any]:
    """The run's ledger row, per source, as the UI's page reads it."""
    from ozon_inventory.ui.queries import per_source

    with matrix.connect() as conn:
        (sources,) = conn.execute(
            "SELECT sources FROM ozon_sync_run WHERE account = %s AND run_id = %s",
            (ACCOUNT, f"run-{run_key}"),
        ).fetchone()
    return per_source(sources)


def alerts_of(result: Any) -> dict[str, Any]:
    from ozon_inventory.alerts import run_alerts

    sources = result.report.as_dict()["sources"]
    return {a.kind: a for a in run_alerts(ACCOUNT, result.loaded.as_dict(), sources)}


def degraded_keeping(matrix: Matrix, pins: dict[str, str], source: str, fault: Fault, **options: Any) -> Any:
    """The fault run of a source that must fail: the others load, it keeps its last good rows."""
    matrix.good_run(**pins)
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=7)
    matrix.fault(fault)
    result = matrix.run(**pins, client=matrix.client(**options) if options else None)
    assert set(result.fetch_errors) == {source}, result.text
    assert result.degraded and result.loaded.status == "degraded", result.text
    matrix.assert_unchanged(before, TABLES[source])
    matrix.assert_history()
    return result


def passing(matrix: Matrix, fault: Fault, said: str) -> float:
    """The fault run of a fault the retries absorb: the run completes, the previous snapshot is whole
    until the load, the retry's log line names the method and ``said``; returns the run's seconds."""
    pins, _ = PINS[fault.method]
    matrix.good_run(**pins)
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=9)
    matrix.fault(fault)
    started = time.monotonic()
    result = matrix.run(**pins, between=lambda _: matrix.assert_unchanged(before))
    seconds = time.monotonic() - started
    assert result.complete, result.text
    retried = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(rf"Ozon {re.escape(fault.method)} attempt 1 failed \({said}", retried)
    matrix.assert_catalogue(wh_method(pins))
    recover(matrix, pins)
    return seconds


def recover(matrix: Matrix, pins: dict[str, str]) -> None:
    matrix.heal()
    matrix.good_run(**pins)
    matrix.assert_recovered(wh_method(pins))


# -- shape drift: every method, every field it needs -----------------------------------------------


@pytest.mark.parametrize(("method", "field"), SHAPES, ids=[f"{m}-{f}" for m, f in SHAPES])
def test_a_field_renamed_in_every_answer_fails_the_source_and_keeps_its_rows(matrix, method, field):
    """Issue 23: ``stocks`` renamed in every item removed all stock rows, ``free_to_sell_amount``
    renamed stored 0 for every row. Now the source fails as a changed answer naming the field (no
    retry, no fallback), keeps its last good rows, and the ledger and the alerts name the field."""
    pins, source = PINS[method]
    result = degraded_keeping(matrix, pins, source, Fault(method, "rename", field=field, times=-1))
    error = result.fetch_errors[source]
    rows_path = ".".join(METHODS[method].rows_at)
    name = field if rows_path.startswith(field) else field.rsplit(".", 1)[-1]  # rows: where they sit
    assert isinstance(error, OzonSchemaChanged) and permanent(error)
    assert_names(rf"Ozon {re.escape(method)} answered in a changed shape: .*'{re.escape(name)}'", str(error))
    assert (error.method, error.field) == (method, name)
    requests = matrix.sim.stats_snapshot()["requests"].get(method, 0)
    assert requests <= 8 + 2  # the good run's one page, then no retries (batches in flight aside)
    shown = ledger_sources(matrix, result.run_key)[source]
    assert shown["field"] == error.field and name in shown["error"]
    alert = alerts_of(result)[f"schema_changed:{source}"]
    assert name in alert.subject and source in alerts_of(result)["degraded"].text
    matrix.assert_no_secret(alert.text, shown["error"])
    recover(matrix, pins)


#: a field renamed in the first few records only: those rows are rejected naming it and keep their
#: last good values; the rest loads (a few odd rows never fail, and so never freeze, the account)
PARTIAL = {
    "v4-stocks": (V4_STOCKS, "items.stocks", "stocks"),
    "v4-present": (V4_STOCKS, "items.stocks.present", "present"),
    "v2-free-to-sell": (V2_STOCK_ON_WAREHOUSES, "result.rows.free_to_sell_amount", "free_to_sell_amount"),
    "seller-is-rfbs": (V2_WAREHOUSE_LIST, "warehouses.is_rfbs", "is_rfbs"),
}


def _touched(matrix: Matrix, method: str, count: int) -> dict[str, set[Any]]:
    """The keys of the records a ``count`` rename reaches (the first records of the one answer)."""
    cat = matrix.catalogue
    if method == V4_STOCKS:
        products = cat.products[:count]
        return {"stock_by_type": {(s.sku, s.type, s.shipment_type) for p in products for s in p.stocks}}
    if method == V2_STOCK_ON_WAREHOUSES:
        return {
            "stock_by_warehouse": {(r.sku, cat.ozon_warehouses[r.warehouse].name) for r in cat.rows[:count]}
        }
    return {"seller_warehouses": {("seller", str(w.warehouse_id)) for w in cat.seller_warehouses[:count]}}


@pytest.mark.parametrize("case", list(PARTIAL))
def test_a_field_missing_in_a_few_rows_rejects_them_naming_it_and_holds_their_values(matrix, case):
    method, field, name = PARTIAL[case]
    pins, _ = PINS[method]
    count = 1 if method == V2_WAREHOUSE_LIST else 3
    matrix.good_run(**pins)
    before = matrix.state()
    matrix.catalogue.change_stock(0.3, seed=8)
    for w in matrix.catalogue.seller_warehouses:
        w.is_rfbs = not w.is_rfbs  # so a held flag shows its last good value, not the new one
    touched = _touched(matrix, method, count)
    matrix.fault(Fault(method, "rename", field=field, count=count, times=-1))
    result = matrix.run(**pins)
    assert result.complete, result.text
    reasons = [r for r in reject_reasons(matrix, result.run_key) if f": {name} is missing |" in r]
    assert reasons and len(reasons) >= count, reject_reasons(matrix, result.run_key)
    matrix.assert_catalogue(wh_method(pins), ignore=touched)
    now = matrix.state()
    for table, keys in touched.items():
        for key in keys:
            if key in before[table]:
                assert now[table][key] == before[table][key], f"{table} {key}: last good value lost"
    matrix.assert_history()
    matrix.assert_no_secret()
    recover(matrix, pins)


# -- Ozon's error under HTTP 200 ----------------------------------------------------------------------


@pytest.mark.parametrize("method", list(PINS))
def test_an_error_body_with_200_fails_as_that_error_and_keeps_the_rows(matrix, method):
    """Issue 23: /v2/warehouse/list answering 200 with {"code": 7, "message": "Company is blocked"}
    removed the seller's warehouses. Now it is Ozon's permission error, at once, on every method."""
    pins, source = PINS[method]
    fault = Fault(method, "error_body", code=7, message="Company is blocked", times=-1)
    result = degraded_keeping(matrix, pins if method != V2_WAREHOUSE_LIST else {}, source, fault)
    error = result.fetch_errors[source]
    assert isinstance(error, OzonAuthError) and permanent(error)
    assert_names(
        rf"Ozon {re.escape(method)} answered HTTP 200 with an error body, code 7 \(handled as HTTP 403\): "
        "Company is blocked",
        str(error),
    )
    assert matrix.sim.stats_snapshot()["statuses"].get(f"{method} 200", 0) <= 1 + 8  # not retried
    assert "Company is blocked" in ledger_sources(matrix, result.run_key)[source]["error"]
    recover(matrix, pins)


def test_an_internal_error_with_200_on_v4_is_ozons_error_not_a_shrink(matrix):
    """Issue 23 / issue 29: v4 answering 200 with code 13 failed as "snapshot shrank … trigger the run
    again with allow_shrink=true". Now it is retried like a 500, then the method is down for the run:
    stocks keeps its rows, nothing advises allow_shrink."""
    pins, source = PINS[V4_STOCKS]
    result = degraded_keeping(matrix, pins, source, Fault(V4_STOCKS, "error_body", code=13, times=-1))
    error = result.fetch_errors[source]
    assert isinstance(error, OzonMethodDown) and permanent(error)
    assert_names(
        r"last status 200: HTTP 200 with an error body, code 13 \(internal, handled as HTTP 500\): Internal error",
        str(error),
    )
    assert "allow_shrink" not in result.text and "shrank" not in result.text
    recover(matrix, pins)


@pytest.mark.parametrize(
    ("method", "code", "message", "said"),
    [
        (V4_STOCKS, 13, "Internal error", r"code 13 \(internal, handled as HTTP 500\)"),
        (V1_ANALYTICS_STOCKS, 8, "You have reached request rate limit per second", r"code 8: rate limited"),
        (
            V2_WAREHOUSE_LIST,
            14,
            "Circle is open",
            r"code 14 \(unavailable, handled as HTTP 503\): Circle is open",
        ),
    ],
)
def test_a_passing_error_with_200_is_retried_and_nothing_is_lost(matrix, method, code, message, said):
    passing(
        matrix,
        Fault(method, "error_body", code=code, message=message, times=2),
        f"HTTP 200 with an error body, {said}",
    )


def test_a_switched_off_method_answering_200_falls_back_to_its_successor(matrix):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=10)
    matrix.fault(
        Fault(
            V2_STOCK_ON_WAREHOUSES, "error_body", code=5, message="Obsolete method cannot be used", times=-1
        )
    )
    result = matrix.run()
    assert result.complete, result.text
    assert result.report.sources["warehouse_stocks"].method == V1_ANALYTICS_STOCKS
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(r"code 5 \(handled as HTTP 404\): Obsolete method cannot be used; falling back to", warned)
    matrix.assert_catalogue("v1")
    recover(matrix, {})


# -- a body that trickles in, a broken encoding ---------------------------------------------------------


@pytest.mark.parametrize("method", list(PINS))
def test_a_trickling_answer_is_cut_at_the_timeout_and_retried(matrix, method):
    """Issue 23: an answer trickling in took 16.2 s with a 1 s timeout. Now the answer has a
    deadline: it is cut at 1 s and retried like a timeout."""
    seconds = passing(
        matrix,
        Fault(method, "trickle", delay=6.0, times=1),
        r"timed out after 1 s: the answer was still arriving",
    )
    assert seconds < 5.5  # the trickle alone lasts 6 s


def test_an_answer_that_always_trickles_degrades_the_run_in_bounded_time(matrix):
    pins, source = PINS[V4_STOCKS]
    started = time.monotonic()
    result = degraded_keeping(matrix, pins, source, Fault(V4_STOCKS, "trickle", delay=8.0, times=-1))
    assert time.monotonic() - started < 20  # five cut answers and their backoff, not five trickles
    assert_names(
        r"/v4/product/info/stocks is down for this run .*timed out after 1 s: the answer was still arriving",
        str(result.fetch_errors[source]),
    )
    recover(matrix, pins)


@pytest.mark.parametrize("method", list(PINS))
def test_a_broken_gzip_body_is_retried_naming_the_method_and_the_encoding(matrix, method):
    """Issue 23: a gzip Content-Encoding with a broken body degraded the run naming neither the method
    nor the cause. Now the retry's log line names both; the next answer loads."""
    passing(
        matrix,
        Fault(method, "bad_gzip", times=2),
        r"HTTP 200 with a broken body \(\d+ bytes\): it is marked Content-Encoding: gzip, but is not valid "
        r"gzip data \(Error -3 while decompressing data",
    )


def test_a_body_that_stays_broken_degrades_the_run_naming_the_encoding(matrix):
    pins, source = PINS[V2_STOCK_ON_WAREHOUSES]
    result = degraded_keeping(matrix, pins, source, Fault(V2_STOCK_ON_WAREHOUSES, "bad_gzip", times=-1))
    error = result.fetch_errors[source]
    assert isinstance(error, OzonMethodDown) and permanent(error)
    assert_names(r"last status 200: HTTP 200 with a broken body .*not valid gzip data", str(error))
    recover(matrix, pins)


def test_gzip_answers_load_exactly(matrix):
    matrix.sim.configure({"compress": True})
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=13)
    matrix.good_run(warehouse_stock_method="fbo")
    matrix.assert_recovered("fbo")
