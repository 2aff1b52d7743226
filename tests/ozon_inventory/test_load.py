"""Load against a real PostgreSQL: one transaction, change-only history, held values, stale sources."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, ClassVar

import psycopg
import pytest

from ozon_inventory.exceptions import ShrinkGuardError
from ozon_inventory.load import load_run, previous_counts
from ozon_inventory.merge import merge_run
from ozon_inventory.methods import V1_ANALYTICS_STOCKS, V2_STOCK_ON_WAREHOUSES, V2_WAREHOUSE_LIST, V4_STOCKS
from ozon_inventory.schema import migrate
from ozon_inventory.sql import statements
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import validate_run
from tests.conftest import CLIENT_ID
from tests.ozon_inventory.test_validate import item, seller_list, stage, stock, v1, v1_row, v2, v2_row, v4

METHOD = {"stocks": V4_STOCKS, "warehouse_stocks": V2_STOCK_ON_WAREHOUSES, "warehouses": V2_WAREHOUSE_LIST}


def sync(
    conn: Any,
    root: Any,
    hour: int,
    answers: dict[str, Any],
    methods: dict[str, str] | None = None,
    ahead: bool = True,
    **kw: Any,
):
    """Stage ``answers`` (source -> answer) as run ``hour`` of the day, then validate, merge, load
    (``ahead``: as the load task does, with a second connection preparing the largest source)."""
    staging = StagingArea(str(root), "acc", f"20261122T{hour:02d}0000Z")
    for source, answer in answers.items():
        method = (methods or {}).get(source, METHOD[source])
        stage(staging, source, method, answer, as_of=f"2026-11-22T{hour:02d}:00:00+00:00")
    migrate(conn)
    report = validate_run(staging, previous_counts(conn, "acc"), **kw)
    merge_run(staging, report)
    connect = (lambda: psycopg.connect(conn.info.dsn)) if ahead else None
    return load_run(conn, staging, report, f"run-{hour}", connect=connect)


def rows(conn: Any, sql: str, *args: Any) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


CATALOGUE = {
    "stocks": v4(item(1, "A", stock(11, present=5, reserved=1)), item(2, "B", stock(21, "fbs", present=3))),
    "warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=4, reserved=1), v2_row(11, "ТВЕРЬ_РФЦ", free=0)),
    "warehouses": seller_list(
        {"warehouse_id": 5, "name": "Мой склад", "status": "created", "is_rfbs": False, "working_days": []}
    ),
}


def test_first_load_then_nothing_to_change(pg_conn, tmp_path):
    first = sync(pg_conn, tmp_path, 10, CATALOGUE)
    assert (first.status, first.history_opened, first.history_closed) == ("complete", 4, 0)
    assert first.counts == {
        "products": 2,
        "stock_rows": 2,
        "warehouse_rows": 2,
        "warehouses": 3,
        "ozon_warehouses": 2,
    }
    assert rows(pg_conn, "SELECT product_id, offer_id, name FROM ozon_product ORDER BY 1") == [
        (1, "A", "Товар 11"),
        (2, "B", None),
    ]
    again = sync(pg_conn, tmp_path, 11, CATALOGUE)
    assert (again.history_opened, again.history_closed) == (0, 0)
    ledger = rows(
        pg_conn, "SELECT run_key, status, products, warehouse_rows, warehouses FROM ozon_sync_run ORDER BY 1"
    )
    assert ledger == [("20261122T100000Z", "complete", 2, 2, 3), ("20261122T110000Z", "complete", 2, 2, 3)]


def test_a_product_without_stock_rows_is_a_product_also_after_a_rerun(pg_conn, tmp_path):
    answers = CATALOGUE | {
        "stocks": v4(item(1, "A", stock(11)), item(3, "empty"), item(4, "all-bad", stock(41, present=-2)))
    }
    sync(pg_conn, tmp_path, 10, answers)
    products = "SELECT product_id FROM ozon_product ORDER BY 1"
    assert rows(pg_conn, products) == [(1,), (3,), (4,)]
    again = StagingArea(str(tmp_path), "acc", "20261122T100000Z")  # the same run's load, repeated
    load_run(pg_conn, again, validate_run(again), "run-10")
    sync(pg_conn, tmp_path, 11, answers)
    assert rows(pg_conn, products) == [(1,), (3,), (4,)]


def test_an_item_without_its_stocks_keeps_its_stock_rows_and_skus(pg_conn, tmp_path):
    """An item rejected for a missing ``stocks`` names none of its rows: its product holds them
    all (never read as "no stock rows"); once Ozon lists them again they are current as sent."""
    sync(pg_conn, tmp_path, 10, CATALOGUE)
    stock_rows = "SELECT product_id, sku, present FROM ozon_stock_by_type ORDER BY sku"
    before = rows(pg_conn, stock_rows)
    without = item(2, "B")
    del without["stocks"]
    held = sync(
        pg_conn, tmp_path, 11, CATALOGUE | {"stocks": v4(item(1, "A", stock(11, present=7)), without)}
    )
    assert held.rejects == 1
    assert rows(pg_conn, stock_rows) == [(1, 11, 7), before[1]]
    assert rows(pg_conn, "SELECT sku FROM ozon_sku ORDER BY 1") == [(11,), (21,)]
    assert rows(pg_conn, "SELECT product_id FROM ozon_product ORDER BY 1") == [(1,), (2,)]
    sync(pg_conn, tmp_path, 12, CATALOGUE | {"stocks": v4(item(1, "A", stock(11, present=7)))})
    assert rows(pg_conn, stock_rows) == [(1, 11, 7)]  # gone from Ozon: gone here


def test_non_finite_numbers_and_surrogates_are_stored_as_rejects_and_never_freeze_the_account(
    pg_conn, tmp_path
):
    broken = (
        '{"items": [{"product_id": 1, "offer_id": "A", "stocks": ['
        '{"sku": 11, "type": "fbo", "present": NaN, "reserved": 0},'
        '{"sku": 12, "type": "fbo", "present": 1e400, "reserved": 0}]},'
        '{"product_id": 2, "offer_id": "bad\\ud800x", "stocks": []}], "cursor": ""}'
    )
    first = sync(pg_conn, tmp_path, 10, {"stocks": broken})
    assert (first.status, first.rejects) == ("degraded", 3)
    records = rows(pg_conn, "SELECT reason, record FROM ozon_reject ORDER BY id")
    assert [r for r, _ in records] == [
        "present is not an integer: nan",
        "present is not an integer: inf",
        "offer_id holds a lone surrogate, which is not valid Unicode text",
    ]
    assert records[0][1]["stock"]["present"] == "NaN" and records[1][1]["stock"]["present"] == "Infinity"
    assert records[2][1]["offer_id"] == "bad\\ud800x"
    later = sync(pg_conn, tmp_path, 11, CATALOGUE)
    assert later.status == "complete"


def test_key_text_too_long_for_an_index_is_rejected_and_the_load_goes_on(pg_conn, tmp_path):
    long_but_fine = "Склад_" + "Я" * 990  # 996 characters, 1,991 bytes: indexable
    answers = CATALOGUE | {
        "warehouse_stocks": v2(v2_row(11, "W" * 10_000), v2_row(11, long_but_fine, free=4, reserved=1))
    }
    loaded = sync(pg_conn, tmp_path, 10, answers)
    assert loaded.status == "complete" and loaded.counts["warehouse_rows"] == 1
    assert rows(pg_conn, "SELECT warehouse_name FROM ozon_stock_by_warehouse") == [(long_but_fine,)]
    assert rows(pg_conn, "SELECT reason FROM ozon_reject") == [
        ("warehouse_name is longer than 1000 characters: 10000",)
    ]


def test_a_rejected_value_keeps_the_last_good_one_flagged_with_its_as_of(pg_conn, tmp_path):
    sync(pg_conn, tmp_path, 10, CATALOGUE)
    bad = CATALOGUE | {
        "warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=-3), v2_row(11, "ТВЕРЬ_РФЦ", free=0)),
        "stocks": v4(item(1, "A", stock(11, present="x")), item(2, "B", stock(21, "fbs", present=3))),
    }
    held = sync(pg_conn, tmp_path, 11, bad)
    assert (held.history_opened, held.history_closed) == (0, 0)
    current = (
        "SELECT free_to_sell, held_as_of FROM ozon_stock_by_warehouse WHERE warehouse_name = 'ХОРУГВИНО_РФЦ'"
    )
    ((free, held_as_of),) = rows(pg_conn, current)
    assert free == 4 and held_as_of.isoformat() == "2026-11-22T10:00:00+00:00"
    (present,) = rows(
        pg_conn, "SELECT present, held_as_of IS NOT NULL FROM ozon_stock_by_type WHERE sku = 11"
    )
    assert present == (5, True)
    assert rows(pg_conn, "SELECT count(*) FROM ozon_sku WHERE sku = 11") == [(1,)]
    still = sync(pg_conn, tmp_path, 12, bad)  # still rejected: the as-of stays the last confirmed one
    assert (still.history_opened, still.history_closed) == (0, 0)
    assert rows(pg_conn, current)[0][1].isoformat() == "2026-11-22T10:00:00+00:00"
    confirmed = sync(pg_conn, tmp_path, 13, CATALOGUE)  # the same value again: unflagged, no history
    assert (confirmed.history_opened, confirmed.history_closed) == (0, 0)
    assert rows(pg_conn, current) == [(4, None)]
    changed = CATALOGUE | {"warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=9))}
    moved = sync(pg_conn, tmp_path, 14, changed)  # a new good value and a vanished row: history as ever
    assert (moved.history_opened, moved.history_closed) == (1, 2)
    assert rows(pg_conn, current) == [(9, None)]


def test_falling_back_to_a_method_without_reserved_rewrites_no_history(pg_conn, tmp_path):
    sync(pg_conn, tmp_path, 10, CATALOGUE)
    fallback = CATALOGUE | {
        "warehouse_stocks": v1(
            v1_row(11, "ХОРУГВИНО_РФЦ", 9001, available=4), v1_row(11, "ТВЕРЬ_РФЦ", 9002, available=0)
        )
    }
    methods = {"warehouse_stocks": V1_ANALYTICS_STOCKS}
    v1_run = sync(pg_conn, tmp_path, 11, fallback, methods)
    assert (v1_run.history_opened, v1_run.history_closed) == (0, 0)
    current = (
        "SELECT warehouse_name, warehouse_id, free_to_sell, reserved FROM ozon_stock_by_warehouse ORDER BY 1"
    )
    assert rows(pg_conn, current) == [("ТВЕРЬ_РФЦ", 9002, 0, 1), ("ХОРУГВИНО_РФЦ", 9001, 4, 1)]
    changed = CATALOGUE | {"warehouse_stocks": v1(v1_row(11, "ХОРУГВИНО_РФЦ", 9001, available=7))}
    moved = sync(pg_conn, tmp_path, 12, changed, methods)
    assert (moved.history_opened, moved.history_closed) == (1, 2)  # a real change, and a vanished row
    assert rows(pg_conn, current) == [("ХОРУГВИНО_РФЦ", 9001, 7, 1)]  # reserved: the last value v2 gave
    back = sync(
        pg_conn, tmp_path, 13, CATALOGUE | {"warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=7))}
    )
    assert (back.history_opened, back.history_closed) == (0, 0)  # v2 gives no id: the id stays
    assert rows(pg_conn, current) == [("ХОРУГВИНО_РФЦ", 9001, 7, 1)]


def test_a_source_older_than_what_is_loaded_is_stale_not_a_shrink(pg_conn, tmp_path):
    sync(pg_conn, tmp_path, 12, CATALOGUE)
    smaller = {"stocks": v4(item(9, "Z", stock(91)))}  # an older archive of a smaller catalogue
    old = sync(pg_conn, tmp_path, 9, smaller, shrink_threshold=0.1)
    assert (old.status, old.stale, old.applied) == ("degraded", ["stocks"], [])
    assert rows(pg_conn, "SELECT product_id FROM ozon_product ORDER BY 1") == [(1,), (2,)]
    with pytest.raises(
        ShrinkGuardError, match=r"account acc, run 20261122T130000Z: .*stocks: 1 products against 2"
    ):
        sync(pg_conn, tmp_path, 13, CATALOGUE | smaller, shrink_threshold=0.1)


def test_a_missing_source_keeps_its_rows_and_its_as_of(pg_conn, tmp_path):
    sync(pg_conn, tmp_path, 10, CATALOGUE)
    partial = {"stocks": CATALOGUE["stocks"], "warehouses": CATALOGUE["warehouses"]}
    degraded = sync(pg_conn, tmp_path, 11, partial)
    assert (degraded.status, degraded.missing) == ("degraded", ["warehouse_stocks"])
    assert rows(pg_conn, "SELECT count(*) FROM ozon_stock_by_warehouse") == [(2,)]
    state = dict(rows(pg_conn, "SELECT source, run_id FROM ozon_source_state"))
    assert state == {"stocks": "run-11", "warehouses": "run-11", "warehouse_stocks": "run-10"}


def test_vanished_rows_products_skus_and_warehouses_go(pg_conn, tmp_path):
    sync(pg_conn, tmp_path, 10, CATALOGUE)
    smaller = {
        "stocks": v4(item(1, "A", stock(11, present=5, reserved=1))),
        "warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=4, reserved=1)),
        "warehouses": seller_list(),
    }
    loaded = sync(pg_conn, tmp_path, 11, smaller, allow_shrink=True)
    assert (loaded.history_opened, loaded.history_closed) == (0, 2)
    assert rows(pg_conn, "SELECT product_id FROM ozon_product") == [(1,)]
    assert rows(pg_conn, "SELECT sku FROM ozon_sku") == [(11,)]
    assert rows(pg_conn, "SELECT kind, name FROM ozon_warehouse") == [("ozon", "ХОРУГВИНО_РФЦ")]


def test_rejects_of_a_repeated_load_are_stored_once(pg_conn, tmp_path):
    answers = CATALOGUE | {"stocks": v4(item(1, "A", stock(11, present=-1)))}
    sync(pg_conn, tmp_path, 10, answers, allow_shrink=True)
    staging = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    load_run(pg_conn, staging, validate_run(staging), "run-10")
    assert rows(pg_conn, "SELECT run_id, source, reason FROM ozon_reject") == [
        ("run-10", "stocks", "present out of range 0..2147483647: -1")
    ]


def test_a_missing_model_file_fails_the_load_naming_it_and_loads_nothing(pg_conn, tmp_path):
    from ozon_inventory.exceptions import StagingError

    staging = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    stage(staging, "stocks", V4_STOCKS, CATALOGUE["stocks"])
    migrate(pg_conn)
    report = validate_run(staging)
    merge_run(staging, report)
    (staging.dir("model") / "products.tsv").unlink()
    with pytest.raises(StagingError, match=r"account acc, run 20261122T100000Z: .*products.tsv is missing"):
        load_run(pg_conn, staging, report, "run-10")
    assert rows(pg_conn, "SELECT count(*) FROM ozon_stock_by_type_history") == [(0,)]


def test_a_run_stamped_in_the_future_is_stored_at_the_database_clock_and_freezes_nothing(pg_conn, tmp_path):
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    staging = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    for source, answer in CATALOGUE.items():
        stage(staging, source, METHOD[source], answer, as_of=ahead)
    migrate(pg_conn)
    report = validate_run(staging, previous_counts(pg_conn, "acc"))
    merge_run(staging, report)
    skewed = load_run(pg_conn, staging, report, "run-ahead")
    assert skewed.status == "complete"
    (stored,) = rows(pg_conn, "SELECT max(as_of) <= now() FROM ozon_source_state")
    assert stored == (True,)
    now = datetime.now(UTC).isoformat()  # a later run with a correct clock: applied, not stale
    later = StagingArea(str(tmp_path), "acc", "20261122T110000Z")
    for source, answer in CATALOGUE.items():
        stage(later, source, METHOD[source], answer, as_of=now)
    report = validate_run(later, previous_counts(pg_conn, "acc"))
    merge_run(later, report)
    assert load_run(pg_conn, later, report, "run-later").stale == []


class _Plans:
    """A cursor that records the plan of each ``close_*`` and ``events_*`` statement the load runs
    (EXPLAIN first, in the load's own transaction, then the statement itself)."""

    plans: ClassVar[dict[str, str]] = {}

    @classmethod
    def factory(cls, base: type) -> type:
        class Recording(base):  # type: ignore[misc,valid-type]
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                text = query if isinstance(query, str) else ""
                if text.lstrip().startswith(("UPDATE", "--")) and "SET valid_to" in text:
                    table = text.split("UPDATE ", 1)[1].split()[0]
                    super().execute("EXPLAIN " + text[text.index("UPDATE") :], params)
                    cls.plans[table] = "\n".join(row[0] for row in self.fetchall())
                elif "INSERT INTO ozon_stock_event" in text:  # the events read the rows it replaces
                    table = text.split("FROM ", 1)[1].split()[0]
                    super().execute("EXPLAIN " + text[text.index("WITH") :], params)
                    cls.plans[f"events:{table}"] = "\n".join(row[0] for row in self.fetchall())
                return super().execute(query, params, **kw)

        return Recording


def test_closing_changed_rows_reads_only_them_even_before_the_history_is_analyzed(pg_conn, tmp_path):
    """The rows a diff closes (and whose old values the stock events read) are found by their row
    address (a TID scan), never by a scan of the current rows filtered against the list: that plan, which the planner may pick while statistics
    lag behind a first load, took 35 s instead of 0.03 s at 850,000 rows."""
    skus = range(1000, 1600)
    first = {
        "stocks": v4(*(item(s, f"o{s}", stock(s, present=5, reserved=1)) for s in skus)),
        "warehouse_stocks": v2(*(v2_row(s, f"W{s % 7}", free=4) for s in skus)),
        "warehouses": CATALOGUE["warehouses"],
    }
    sync(pg_conn, tmp_path, 10, first)  # no ANALYZE of the history since: its statistics lag
    changed = {
        "stocks": v4(*(item(s, f"o{s}", stock(s, present=6 if s % 50 == 0 else 5)) for s in skus)),
        "warehouse_stocks": v2(*(v2_row(s, f"W{s % 7}", free=3 if s % 40 == 0 else 4) for s in skus)),
        "warehouses": CATALOGUE["warehouses"],
    }
    _Plans.plans.clear()
    pg_conn.cursor_factory = _Plans.factory(type(pg_conn.cursor()))
    loaded = sync(pg_conn, tmp_path, 11, changed)
    tables = {"ozon_stock_by_type_history", "ozon_stock_by_warehouse_history"}
    assert set(_Plans.plans) == tables | {f"events:{t}" for t in tables}
    for key, plan in _Plans.plans.items():
        table = key.removeprefix("events:")
        scans = [line.strip() for line in plan.splitlines() if "Scan" in line and table in line]
        assert scans and all(line.startswith("->  Tid Scan on") for line in scans), plan
    # what was closed is exactly what changed, and the history still reads right
    assert (loaded.history_closed, loaded.history_opened) == (12 + 15, 12 + 15)
    current = (
        "SELECT count(*) FROM ozon_stock_by_warehouse_history WHERE valid_to IS NULL AND free_to_sell = 3"
    )
    assert rows(pg_conn, current) == [(15,)]
    assert rows(pg_conn, "SELECT count(*) FROM ozon_stock_by_type_history WHERE valid_to IS NULL") == [(600,)]


def _broken_connection() -> Any:
    raise psycopg.OperationalError("connection refused (a test)")


@pytest.mark.parametrize("second", ["ahead", "broken"])
def test_a_source_prepared_on_a_second_connection_loads_exactly_what_one_connection_loads(
    pg_server, tmp_path, caplog, second
):
    """First snapshot, held values, changed, new and vanished rows, a method without ``reserved``:
    the tables end the same whether the largest source (here the warehouse rows) was prepared ahead,
    could not be (the load then does it itself), or was loaded on the one connection."""
    caplog.set_level(logging.INFO, logger="ozon_inventory.load")
    kazan = v2_row(12, "КАЗАНЬ_РФЦ", free=2)
    first = CATALOGUE | {"warehouse_stocks": v2(*CATALOGUE["warehouse_stocks"]["result"]["rows"], kazan)}
    held = CATALOGUE | {
        "warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=-3), v2_row(11, "ТВЕРЬ_РФЦ", free=0), kazan),
        "stocks": v4(item(1, "A", stock(11, present="x")), item(2, "B", stock(21, "fbs", present=3))),
    }
    moved = CATALOGUE | {
        "warehouse_stocks": v2(v2_row(11, "ХОРУГВИНО_РФЦ", free=9), v2_row(12, "НОВЫЙ", free=1), kazan),
        "stocks": v4(item(1, "A", stock(11, present=7)), item(3, "C", stock(12))),
    }
    v1_rows = v1(v1_row(11, "ХОРУГВИНО_РФЦ", 7), v1_row(12, "НОВЫЙ", 8), v1_row(12, "КАЗАНЬ_РФЦ", 9))
    runs = [first, held, first, moved, moved | {"warehouse_stocks": v1_rows}]
    tables = {
        "ozon_stock_by_type_history": "account, sku, stock_type, valid_from",
        "ozon_stock_by_warehouse_history": "account, sku, warehouse_name, valid_from",
        "ozon_product": "account, product_id",
        "ozon_sku": "account, sku",
        "ozon_warehouse": "account, warehouse_key",
    }
    outcome = {}
    for way in ("one", second):
        with psycopg.connect(pg_server.dsn, autocommit=True) as admin:  # a database per way
            admin.execute(f'CREATE DATABASE "{tmp_path.name}_{way}"')
        dsn = f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{tmp_path.name}_{way}"
        connect = {"one": None, "ahead": lambda dsn=dsn: psycopg.connect(dsn), "broken": _broken_connection}
        caplog.clear()
        with psycopg.connect(dsn) as conn:
            for hour, answers in enumerate(runs, start=10):
                methods = {"warehouse_stocks": V1_ANALYTICS_STOCKS} if hour == 14 else None
                staging = StagingArea(str(tmp_path / way), "acc", f"20261122T{hour:02d}0000Z")
                for source, answer in answers.items():
                    method = (methods or {}).get(source, METHOD[source])
                    stage(staging, source, method, answer, as_of=f"2026-11-22T{hour:02d}:00:00+00:00")
                migrate(conn)
                report = validate_run(staging, previous_counts(conn, "acc"), allow_shrink=True)
                merge_run(staging, report)
                load_run(conn, staging, report, f"run-{hour}", connect=connect[way])
            outcome[way] = {t: rows(conn, f"SELECT * FROM {t} ORDER BY {key}") for t, key in tables.items()}
            leftovers = rows(conn, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", "ozon_ahead_%")
            assert leftovers == [], "the prepared tables are dropped by the load that used them"
        said = caplog.text
        if way == "ahead":
            assert said.count("warehouse_stocks prepared on a second connection") == len(runs)
            assert "diff made for ['stock_by_warehouse']" in said  # after the first snapshot, when unheld
        if way == "broken":
            assert said.count("preparing warehouse_stocks on a second connection failed") == len(runs)
    assert outcome[second] == outcome["one"]
    assert len(outcome["one"]["ozon_stock_by_warehouse_history"]) >= 6  # the runs did change things


# -- the diff made while fetching (load.Prestage, load._Differ) -----------------------------------

HISTORY = {
    "ozon_stock_by_type_history": "account, sku, stock_type, shipment_type, valid_from",
    "ozon_stock_by_warehouse_history": "account, sku, warehouse_name, valid_from",
    "ozon_product": "account, product_id",
    "ozon_sku": "account, sku",
    "ozon_warehouse": "account, warehouse_key",
}


class _TwoWays:
    """Each run fetched once, with its rows streamed (and diffed) into one database, then loaded
    into that database and, from the same staged files, into a second one where nothing was streamed."""

    def __init__(self, simulator: Any, pg_server: Any, root: Any):
        from tests.ozon_inventory.test_fetch import new_client

        self.client, self.root, self.runs = new_client(simulator), root, 0
        self.dsn = {}
        for way in ("streamed", "copied"):
            with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{root.name}_{way}"')
            self.dsn[way] = f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{root.name}_{way}"
            with psycopg.connect(self.dsn[way]) as conn:
                migrate(conn)

    def fetch(self) -> tuple[StagingArea, str]:
        from ozon_inventory.fetch import fetch_source
        from ozon_inventory.staging import SOURCES

        self.runs += 1
        staging = StagingArea(str(self.root), "acc", f"20261122T{self.runs:02d}0000Z")
        for source in SOURCES:
            fetch_source(self.client, staging, source, check_pages=True, prestage_db=self.dsn["streamed"])
        return staging, f"run-{self.runs}"

    def load(self, staging: StagingArea, run_id: str) -> None:
        for way in ("streamed", "copied"):
            with psycopg.connect(self.dsn[way]) as conn:
                report = validate_run(staging, previous_counts(conn, "acc"), allow_shrink=True)
                merge_run(staging, report)
                load_run(
                    conn, staging, report, run_id, connect=lambda way=way: psycopg.connect(self.dsn[way])
                )

    def tables(self, way: str) -> dict[str, list[tuple]]:
        with psycopg.connect(self.dsn[way]) as conn:
            # runs a second apart: a key's rows can share a valid_from, so whole rows break the tie
            return {
                t: rows(conn, f"SELECT * FROM {t} ORDER BY {key}, {t}::text") for t, key in HISTORY.items()
            }

    def leftovers(self) -> list[tuple]:
        with psycopg.connect(self.dsn["streamed"]) as conn:
            return rows(conn, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", "ozon\\_pre%")


def test_a_diff_made_while_fetching_loads_exactly_what_the_load_makes_itself(
    simulator, pg_server, tmp_path, monkeypatch, caplog
):
    """Changed, vanished, new and held rows, a held row confirmed: with the rows streamed in chunks
    and diffed as they land, the history ends exactly as when the load copies the files and diffs
    them itself; the diff made while fetching is used whenever it holds, and never left behind."""
    from ozon_inventory import load

    monkeypatch.setattr(load.Prestage, "CHUNK_ROWS", 60)  # 511 warehouse rows: 9 chunks
    caplog.set_level(logging.INFO, logger="ozon_inventory.load")
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue

    def hold() -> None:  # a value the check rejects: the row keeps its last good one
        catalogue.rows[0].free_to_sell = -3
        catalogue.version += 1

    def confirm() -> None:
        catalogue.rows[0].free_to_sell = 2
        catalogue.version += 1

    steps = {
        "first": lambda: None,
        "changed": lambda: catalogue.change_stock(0.2),
        "vanished": lambda: catalogue.remove_products(5),
        "new": catalogue.insert_product_first,
        "held": hold,
        "confirmed": confirm,
        "unchanged": lambda: None,
    }
    ways = _TwoWays(simulator, pg_server, tmp_path)
    used = {}
    for step, change in steps.items():
        change()
        caplog.clear()
        ways.load(*ways.fetch())
        used[step] = sorted(set(re.findall(r"(\w+): the diff made while fetching is used", caplog.text)))
        assert ways.tables("streamed") == ways.tables("copied"), step
        assert ways.leftovers() == [], step
    both = ["stock_by_type", "stock_by_warehouse"]
    # the first snapshot has nothing to diff; the run after the held one diffs in the load (it
    # rewrites the held row first); the others use the fetch's diff, vanished and held keys included
    assert used == {
        "first": [],
        "changed": both,
        "vanished": both,
        "new": both,
        "held": both,
        "confirmed": ["stock_by_type"],
        "unchanged": both,
    }
    history = ways.tables("copied")["ozon_stock_by_warehouse_history"]
    assert sum(1 for row in history if row[8] is not None) > 100  # the runs did close rows


def test_a_diff_made_while_fetching_is_not_used_once_the_current_rows_may_have_moved(
    simulator, pg_server, tmp_path, caplog
):
    """A load that committed after the fetch's diff (two runs fetched, loaded in turn) and a
    rewrite of the table (VACUUM FULL moves every row): the diff's row addresses are no longer
    provably the current rows', so the load makes its own, and the history stays exact."""
    caplog.set_level(logging.INFO, logger="ozon_inventory.load")
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    ways = _TwoWays(simulator, pg_server, tmp_path)
    ways.load(*ways.fetch())
    catalogue.change_stock(0.2, seed=2)
    earlier = ways.fetch()
    catalogue.change_stock(0.2, seed=3)
    later = ways.fetch()
    caplog.clear()
    ways.load(*earlier)
    assert caplog.text.count("the diff made while fetching is used") == 2
    caplog.clear()
    ways.load(*later)
    moved = "the diff made while fetching is not used (the current rows changed since"
    assert caplog.text.count(moved) == 2  # made before ``earlier`` loaded
    assert ways.tables("streamed") == ways.tables("copied")

    catalogue.change_stock(0.2, seed=4)
    rewritten = ways.fetch()
    with psycopg.connect(ways.dsn["streamed"], autocommit=True) as conn:
        conn.execute("VACUUM FULL ozon_stock_by_warehouse_history")
    caplog.clear()
    ways.load(*rewritten)
    assert (
        caplog.text.count(moved) == 1 and "stock_by_type: the diff made while fetching is used" in caplog.text
    )
    assert ways.tables("streamed") == ways.tables("copied")
    assert ways.leftovers() == []


def test_a_load_that_commits_while_the_fetch_diffs_leaves_the_diff_to_the_load(
    simulator, pg_server, tmp_path, caplog
):
    """The differ reads the source's load count before its first chunk and after its last: a load
    committed in between may have changed the current rows some chunks were diffed against."""
    from ozon_inventory.load import Prestage
    from ozon_inventory.sources import WAREHOUSE_STOCKS

    caplog.set_level(logging.INFO, logger="ozon_inventory.load")
    ways = _TwoWays(simulator, pg_server, tmp_path)
    ways.load(*ways.fetch())
    dsn = ways.dsn["streamed"]
    staging = StagingArea(str(tmp_path), "acc", "20261123T000000Z")
    for committed in (False, True):
        stream = Prestage(dsn, staging, WAREHOUSE_STOCKS, V2_STOCK_ON_WAREHOUSES)
        stream.CHUNK_ROWS = 1
        stream.write("1\tW\t\\N\t1\t0\t0\n")
        with psycopg.connect(dsn, autocommit=True) as conn:
            table = stream._differ.table
            for _ in range(500):  # the differ has read the count: its first chunk is diffed
                if (
                    conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
                    and conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                ):
                    break
                time.sleep(0.01)
            if committed:  # what a load of the source commits
                conn.execute(
                    "UPDATE ozon_source_state SET loads = loads + 1 WHERE source = 'warehouse_stocks'"
                )
        stream.write("2\tW\t\\N\t1\t0\t0\n")
        streamed, diff = stream.finish()
        assert streamed[1] == 2
        if committed:
            assert diff is None
            assert "no diff made while fetching (a load of the source committed meanwhile)" in caplog.text
        else:  # two new keys, and every current row gone
            assert diff is not None and diff["vanished"] == 511


def test_a_chunk_is_diffed_by_index_probes_even_before_the_history_is_analyzed(pg_conn, tmp_path):
    """The fetch diffs each chunk through the current rows' unique index: one probe per row. Before
    the history is analyzed the planner takes an account's current rows for a handful, and would
    otherwise compare every row of the chunk with all of them (quadratic: minutes at 850,000)."""
    skus = range(1000, 1600)
    first = {
        "stocks": v4(*(item(s, f"o{s}", stock(s, present=5, reserved=1)) for s in skus)),
        "warehouse_stocks": v2(*(v2_row(s, f"W{s % 7}", free=4) for s in skus)),
        "warehouses": CATALOGUE["warehouses"],
    }
    sync(pg_conn, tmp_path, 10, first, ahead=False)  # no ANALYZE of the history since
    sql = statements("load")
    for name in ("stock_by_type", "stock_by_warehouse"):
        with pg_conn.transaction():
            pg_conn.execute(sql[f"temp_{name}"])
            pg_conn.execute(sql[f"diff_table_{name}"])
            pg_conn.execute(sql["probe_plans"])
            explain = pg_conn.execute(
                f"EXPLAIN {sql[f'diff_new_{name}']}", {"account": "acc", "not_provided": []}
            )
            plan = "\n".join(line for (line,) in explain.fetchall())
        scans = [line.strip() for line in plan.splitlines() if f" on ozon_{name}_history" in line]
        assert scans and all(line.startswith("->  Index Scan using") for line in scans), plan
        assert "Materialize" not in plan and "Hash" not in plan, plan
        conditions = [line for line in plan.splitlines() if "Index Cond:" in line]
        assert any("(sku = t.sku)" in line for line in conditions), plan  # a probe per row of the chunk


def test_a_differ_that_falls_behind_is_cancelled_and_leaves_the_diff_to_the_load(
    simulator, pg_server, tmp_path, monkeypatch, caplog
):
    """The fetch waits for the last chunk's diff only so long; then it cancels the statement (a
    server goes on with a query whose client is gone, and the load would wait for its locks)."""
    from ozon_inventory import load
    from ozon_inventory.sources import WAREHOUSE_STOCKS

    caplog.set_level(logging.INFO, logger="ozon_inventory.load")
    ways = _TwoWays(simulator, pg_server, tmp_path)
    ways.load(*ways.fetch())
    slow = dict(statements("load")) | {"diff_new_stock_by_warehouse": "SELECT pg_sleep(60)"}
    monkeypatch.setattr(load, "statements", lambda name: slow)
    monkeypatch.setattr(load, "_DIFF_WAIT_S", 0.5)
    staging = StagingArea(str(tmp_path), "acc", "20261123T000000Z")
    stream = load.Prestage(ways.dsn["streamed"], staging, WAREHOUSE_STOCKS, V2_STOCK_ON_WAREHOUSES)
    stream.write("1\tW\t\\N\t1\t0\t0\n")
    started = time.monotonic()
    assert stream.finish()[1] is None
    assert time.monotonic() - started < 10
    assert "no diff made while fetching (still diffing after 0.5 s)" in caplog.text
    with psycopg.connect(ways.dsn["streamed"], autocommit=True) as conn:
        for _ in range(200):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ozon_inventory prestage diff' "
                "AND state = 'active'"
            ).fetchone()[0]
            if not busy:
                break
            time.sleep(0.05)
    assert busy == 0
