"""The stages end to end without Airflow: simulator over HTTP → staging → validate → merge → PostgreSQL."""

from __future__ import annotations

import json

import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import ShrinkGuardError, StagingError
from ozon_inventory.staging import StagingArea
from ozon_simulator import Fault
from tests.conftest import API_KEY, CLIENT_ID
from tests.pipeline import sync_account

OLD_QUERY_OZON = """SELECT warehouse_name, stock_type, COUNT(*) FROM inventory_data WHERE source = 'Ozon'
GROUP BY warehouse_name, stock_type ORDER BY 2"""
OLD_QUERY_ANALYTICS = """SELECT warehouse_name, COUNT(*) FROM inventory_data WHERE source = 'Ozon_Analytics'
GROUP BY warehouse_name ORDER BY COUNT(*) DESC"""


def run(simulator, tmp_path, conn, run_key, **kwargs):
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000, backoff=0.01)
    staging = StagingArea(str(tmp_path / "staging"), "acc", run_key)
    return sync_account(client, staging, conn, f"run-{run_key}", **kwargs)


def test_old_system_dataset_loads_and_old_queries_answer(simulator, tmp_path, pg_conn):
    out = run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    loaded = out["loaded"]
    assert loaded.status == "complete" and not loaded.degraded
    assert loaded.counts["products"] == 175
    assert loaded.counts["warehouse_rows"] == 511
    assert loaded.counts["ozon_warehouses"] == 27
    assert out["report"].rejects == 0 and out["report"].mismatches == 0
    by_type = dict(((t, n) for _, t, n in pg_conn.execute(OLD_QUERY_OZON).fetchall()))
    expected = {}
    for p in catalogue.products:
        for s in p.stocks:
            expected[s.type.upper()] = expected.get(s.type.upper(), 0) + 1
    assert by_type == expected
    analytics = pg_conn.execute(OLD_QUERY_ANALYTICS).fetchall()
    assert len(analytics) == 27 and sum(n for _, n in analytics) == 511
    # Correct to the unit: every warehouse row as Ozon gave it, Cyrillic names and int64 SKUs intact.
    row = catalogue.rows[0]
    got = pg_conn.execute(
        "SELECT free_to_sell, promised, reserved FROM ozon_stock_by_warehouse WHERE sku = %s AND warehouse_name = %s",
        (row.sku, catalogue.ozon_warehouses[row.warehouse].name),
    ).fetchone()
    assert got == (row.free_to_sell, row.promised, row.reserved)
    offers = {r[0] for r in pg_conn.execute("SELECT offer_id FROM ozon_product")}
    assert offers == {p.offer_id for p in catalogue.products}  # tabs, quotes, backslashes survive COPY


def test_repeated_run_changes_nothing_and_changes_write_history(simulator, tmp_path, pg_conn):
    first = run(simulator, tmp_path, pg_conn, "20261122T100000Z")["loaded"]
    history = pg_conn.execute("SELECT count(*) FROM ozon_stock_by_warehouse_history").fetchone()[0]
    again = run(simulator, tmp_path, pg_conn, "20261122T110000Z")["loaded"]
    assert again.history_opened == 0 and again.history_closed == 0
    assert pg_conn.execute("SELECT count(*) FROM ozon_stock_by_warehouse_history").fetchone()[0] == history
    assert again.counts == first.counts

    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    changed = catalogue.change_stock(0.02, seed=3)  # warehouse rows and their SKUs' fbo stock
    skus = {r.sku for r in catalogue.rows}
    removed = catalogue.remove_products(2)
    third = run(simulator, tmp_path, pg_conn, "20261122T120000Z")["loaded"]
    assert third.history_opened > 0
    gone = pg_conn.execute(
        "SELECT count(*) FROM ozon_stock_by_type WHERE product_id = ANY(%s)", (removed,)
    ).fetchone()[0]
    assert gone == 0  # vanished stock does not linger
    assert (
        pg_conn.execute(
            "SELECT count(*) FROM ozon_product WHERE product_id = ANY(%s)", (removed,)
        ).fetchone()[0]
        == 0
    )
    # Stock at a past time is one query and still answers with the old values.
    past = pg_conn.execute(
        """SELECT count(*) FROM ozon_stock_by_type_history WHERE product_id = ANY(%s)
           AND valid_from <= %s::timestamptz AND (valid_to IS NULL OR valid_to > %s::timestamptz)""",
        (removed, "2100-01-01", "2100-01-01"),
    ).fetchone()[0]
    assert past == 0
    assert changed > 0 and skus


def test_rejects_are_kept_with_reasons(simulator, tmp_path, pg_conn):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    catalogue.rows[0].free_to_sell = -3  # a negative quantity from Ozon
    catalogue.products[1].offer_id = "bad\x00offer"  # a NUL PostgreSQL cannot store
    out = run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    rejects = pg_conn.execute("SELECT source, reason, record FROM ozon_reject ORDER BY source").fetchall()
    reasons = {(s, r.split(":")[0]) for s, r, _ in rejects}
    assert ("warehouse_stocks", "free_to_sell_amount out of range 0..2147483647") in reasons
    assert ("stocks", "offer_id holds a NUL character, which PostgreSQL text cannot store") in reasons
    assert all(isinstance(record, dict) for _, _, record in rejects)
    assert out["loaded"].rejects == len(rejects) == 2
    assert out["loaded"].counts["warehouse_rows"] == 510


def test_no_false_special_character_warnings(simulator, tmp_path, pg_conn, caplog):
    run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    warnings = [r.getMessage().lower() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert not [w for w in warnings if "special" in w or "character" in w]
    names = {r[0] for r in pg_conn.execute("SELECT name FROM ozon_warehouse")}
    assert {"САНКТ_ПЕТЕРБУРГ_РФЦ", "СПБ_БУГРЫ_РФЦ", "rFBS*Екатеринбург"} <= names


def test_shrink_guard_stops_a_partial_snapshot(simulator, tmp_path, pg_conn):
    run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    simulator.sim.accounts[CLIENT_ID].catalogue.remove_products(120)
    with pytest.raises(ShrinkGuardError, match=r"stocks: 55 products against 175"):
        run(simulator, tmp_path, pg_conn, "20261122T110000Z")
    assert pg_conn.execute("SELECT count(*) FROM ozon_product").fetchone()[0] == 175
    allowed = run(simulator, tmp_path, pg_conn, "20261122T120000Z", allow_shrink=True)["loaded"]
    assert allowed.counts["products"] == 55


def test_cross_source_mismatches_are_counted(simulator, tmp_path, pg_conn):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    catalogue.rows[0].free_to_sell += 4  # warehouse rows no longer add up to v4 for that SKU
    out = run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    assert out["report"].mismatches == 1
    assert out["report"].mismatch_examples[0]["sku"] == catalogue.rows[0].sku
    ledger = pg_conn.execute("SELECT mismatches FROM ozon_sync_run").fetchone()
    assert ledger == (1,)


def test_successor_methods_when_old_ones_are_switched_off(simulator, tmp_path, pg_conn):
    simulator.sim.add_fault(Fault("/v2/analytics/stock_on_warehouses", "obsolete", times=-1))
    simulator.sim.add_fault(Fault("/v2/warehouse/list", "obsolete", times=-1))
    out = run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    sources = out["report"].sources
    assert sources["warehouse_stocks"].method == "/v1/analytics/stocks"
    assert sources["warehouse_stocks"].fallback_from == "/v2/analytics/stock_on_warehouses"
    assert sources["warehouses"].method == "/v1/warehouse/list"
    loaded = out["loaded"]
    assert loaded.counts["warehouse_rows"] == 511 and loaded.counts["ozon_warehouses"] == 27
    ids = pg_conn.execute(
        "SELECT count(*) FROM ozon_warehouse WHERE kind = 'ozon' AND warehouse_id IS NOT NULL"
    )
    assert ids.fetchone()[0] == 27
    methods = pg_conn.execute("SELECT sources->'warehouse_stocks'->>'method' FROM ozon_sync_run").fetchone()
    assert methods == ("/v1/analytics/stocks",)


def test_staged_answers_are_checked_against_their_manifest(simulator, tmp_path, pg_conn):
    run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    staging = StagingArea(str(tmp_path / "staging"), "acc", "20261122T100000Z")
    manifest = staging.manifest("stocks")
    assert manifest.rows == 175 and manifest.sha256 and manifest.method == "/v4/product/info/stocks"
    assert API_KEY not in json.dumps(manifest.as_dict())
    page = staging.dir("stocks") / manifest.files[0]
    import gzip

    page.write_bytes(gzip.compress(b'{"items": []}'))
    from ozon_inventory.validate import validate_run

    with pytest.raises(StagingError, match="checksum"):
        validate_run(staging)


def test_a_failed_load_leaves_the_previous_snapshot_whole(simulator, tmp_path, pg_conn):
    from ozon_inventory.load import load_run
    from ozon_inventory.merge import merge_run
    from ozon_inventory.validate import validate_run

    run(simulator, tmp_path, pg_conn, "20261122T100000Z")
    before = pg_conn.execute(
        "SELECT (SELECT count(*) FROM ozon_stock_by_type_history), (SELECT count(*) FROM ozon_stock_by_warehouse_history),"
        " (SELECT count(*) FROM ozon_sync_run), (SELECT sum(present) FROM ozon_stock_by_type)"
    ).fetchone()
    simulator.sim.accounts[CLIENT_ID].catalogue.change_stock(0.2, seed=8)
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000)
    staging = StagingArea(str(tmp_path / "staging"), "acc", "20261122T110000Z")
    from ozon_inventory.fetch import fetch_stocks, fetch_warehouse_stocks, fetch_warehouses

    fetch_stocks(client, staging)
    fetch_warehouse_stocks(client, staging)
    fetch_warehouses(client, staging)
    report = validate_run(staging)
    merge_run(staging, report)
    # stocks apply first; then the warehouse rows' file is damaged and COPY fails mid-transaction
    (staging.dir("model") / "stock_by_warehouse.tsv").write_text("not\ta\tvalid\trow\n")
    with pytest.raises(
        StagingError, match=r"account acc, run 20261122T110000Z: .*stock_by_warehouse.tsv does not load"
    ):
        load_run(pg_conn, staging, report, "run-failing")
    pg_conn.rollback()
    after = pg_conn.execute(
        "SELECT (SELECT count(*) FROM ozon_stock_by_type_history), (SELECT count(*) FROM ozon_stock_by_warehouse_history),"
        " (SELECT count(*) FROM ozon_sync_run), (SELECT sum(present) FROM ozon_stock_by_type)"
    ).fetchone()
    assert after == before


def test_falling_back_to_the_successor_method_rewrites_no_history(simulator, tmp_path, pg_conn):
    first = run(simulator, tmp_path, pg_conn, "20261122T100000Z")["loaded"]
    simulator.sim.add_fault(Fault("/v2/analytics/stock_on_warehouses", "obsolete", times=-1))
    fallback = run(simulator, tmp_path, pg_conn, "20261122T110000Z")
    assert fallback["report"].sources["warehouse_stocks"].method == "/v1/analytics/stocks"
    loaded = fallback["loaded"]
    assert (loaded.history_opened, loaded.history_closed) == (0, 0)  # no stock changed
    assert loaded.counts == first.counts
    missing = pg_conn.execute(
        "SELECT count(*) FILTER (WHERE reserved IS NULL), count(*) FILTER (WHERE warehouse_id IS NULL)"
        " FROM ozon_stock_by_warehouse"
    ).fetchone()
    assert missing == (0, 0)  # reserved kept from v2, ids learned from v1
