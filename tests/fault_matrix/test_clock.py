"""Clocks that lie, and runs out of order: as-of times decide what is newer, so a wrong one must not freeze
the account (every later, correct run refused as stale) nor overwrite newer data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ozon_simulator.server import _Handler
from tests.fault_matrix.conftest import ACCOUNT, Matrix, assert_names


def worker_clock(monkeypatch, shift: timedelta) -> None:
    """This worker's clock runs ``shift`` off (what ``datetime.now`` says in the fetch)."""
    import ozon_inventory.fetch as fetch

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + shift

    monkeypatch.setattr(fetch, "datetime", Skewed)


def ozon_date(monkeypatch, value) -> None:
    """What Ozon's ``Date`` header says: a shifted clock (timedelta), garbage (str), or nothing (None)."""
    if value is None:

        def send_response(self, code, message=None):
            self.log_request(code)
            self.send_response_only(code, message)
            self.send_header("Server", self.version_string())

        monkeypatch.setattr(_Handler, "send_response", send_response)
    elif isinstance(value, timedelta):
        monkeypatch.setattr(
            _Handler,
            "date_time_string",
            lambda self, ts=None: format_datetime(datetime.now(UTC) + value, usegmt=True),
        )
    else:
        monkeypatch.setattr(_Handler, "date_time_string", lambda self, ts=None: value)


def loaded_as_of(matrix: Matrix) -> dict[str, datetime]:
    with matrix.connect() as conn:
        return dict(
            conn.execute("SELECT source, as_of FROM ozon_source_state WHERE account = %s", (ACCOUNT,))
        )


def test_d6_worker_clock_a_day_ahead_with_ozons_date(matrix, monkeypatch):
    """The as-of comes from Ozon's clock, so a worker a day ahead stamps nothing in the future."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=30)
    with monkeypatch.context() as patch:
        worker_clock(patch, timedelta(days=1))
        skewed = matrix.good_run()
    assert all(t <= datetime.now(UTC) + timedelta(minutes=1) for t in loaded_as_of(matrix).values())
    matrix.assert_catalogue()
    matrix.catalogue.change_stock(0.05, seed=31)
    later = matrix.good_run()  # the correct clock again: applied, not stale
    assert later.loaded.stale == [] and skewed.loaded.stale == []
    matrix.assert_recovered()


#: One run whose as-of is a day in the future: how it comes about.
FUTURE = {
    "d6-worker-clock-ahead-no-date-header": (timedelta(days=1), None),
    "d6-ozon-clock-ahead": (timedelta(0), timedelta(days=1)),
}


@pytest.mark.parametrize("case", list(FUTURE))
def test_a_run_stamped_in_the_future_does_not_freeze_later_runs(matrix, monkeypatch, case):
    worker, date = FUTURE[case]
    matrix.good_run()
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=32)
    with monkeypatch.context() as patch:
        worker_clock(patch, worker)
        ozon_date(patch, date)
        result = matrix.run()
    if result.loaded is None:  # refused: it must say why, and keep the last snapshot
        assert_names(r"(future|ahead|clock)", result.text)
        matrix.assert_unchanged(before)
    else:  # or loaded, with an as-of no later than now, and a warning that says why
        warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
        assert_names(r"stocks is stamped .+?, ahead of the database clock .+? \(a clock runs ahead\)", warned)
        assert all(t <= datetime.now(UTC) + timedelta(minutes=5) for t in loaded_as_of(matrix).values()), (
            f"a future as-of was loaded: {loaded_as_of(matrix)}"
        )
    matrix.catalogue.change_stock(0.05, seed=33)
    later = matrix.run()
    assert later.complete and later.loaded.stale == [], later.text or later.loaded
    matrix.assert_recovered()


def test_worker_clock_behind_without_date_header_is_stale_and_says_so(matrix, monkeypatch):
    """A run stamped a day in the past is older than what is loaded: not applied, and the ledger and log say so."""
    matrix.good_run()
    before = matrix.state()
    matrix.catalogue.change_stock(0.05, seed=34)
    with monkeypatch.context() as patch:
        worker_clock(patch, timedelta(days=-1))
        ozon_date(patch, None)
        result = matrix.run()
    assert result.loaded is not None and result.loaded.status == "stale", result.text
    assert set(result.loaded.stale) == {"stocks", "warehouse_stocks", "warehouses"}
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(r"is from .*, older than the loaded .*: not applied", warned)
    matrix.assert_unchanged(before)
    matrix.good_run()
    matrix.assert_recovered()


def test_unreadable_date_header_falls_back_to_the_workers_clock(matrix, monkeypatch):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=35)
    with monkeypatch.context() as patch:
        ozon_date(patch, "yesterday-ish")
        assert matrix.run().complete
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(
        r"unreadable Date header 'yesterday-ish' from /v4/product/info/stocks; using this worker's clock",
        warned,
    )
    matrix.good_run()
    matrix.assert_recovered()


def test_backfill_of_an_older_archive_is_stale_and_changes_nothing(matrix):
    first = matrix.good_run()
    time.sleep(1.1)  # Ozon's Date header counts whole seconds
    matrix.catalogue.change_stock(0.1, seed=36)
    matrix.good_run()
    before = matrix.state()
    again = matrix.run(first.run_key, backfill=True)
    assert again.loaded is not None and again.loaded.status == "stale", again.text
    assert set(again.loaded.stale) == {"stocks", "warehouse_stocks", "warehouses"}
    matrix.assert_unchanged(before)
    matrix.assert_recovered()


def test_backfill_of_an_older_smaller_archive_is_stale_not_a_shrink(matrix):
    """The shrink guard must not stop a backfill whose archive is simply older: it is stale, nothing loads."""
    catalogue = matrix.catalogue
    kept = len(catalogue.products) - 300
    removed = catalogue.products[kept:]
    gone = {s.sku for p in removed for s in p.stocks}
    removed_rows = [r for r in catalogue.rows if r.sku in gone]
    catalogue.remove_products(300)
    small = matrix.good_run()
    catalogue.products.extend(removed)
    catalogue.rows.extend(removed_rows)
    catalogue.reindex()
    time.sleep(1.1)
    matrix.good_run()
    before = matrix.state()
    again = matrix.run(small.run_key, backfill=True)
    assert again.error is None and again.loaded.status == "stale", again.text
    matrix.assert_unchanged(before)
    matrix.assert_recovered()
