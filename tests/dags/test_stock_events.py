"""Stock events from whole DAG runs, against a catalogue changed on purpose: SKUs emptied and refilled
per stock type and per Ozon warehouse, a product removed, quantities moved without crossing 0."""

from __future__ import annotations

import time

import psycopg

from ozon_inventory import read
from ozon_inventory.tasks import stock_asset
from tests.conftest import CLIENT_ID
from tests.dags.test_account_names import asset_events
from tests.dags.test_dag_runs import env, run_dag  # noqa: F401 - the fixture is used by name
from tests.ozon_inventory.test_alerts import smtp  # noqa: F401 - the fixture is used by name

Key = tuple


def available(catalogue) -> dict[Key, int]:
    """What the catalogue has available to sell: per (type, sku, stock type, shipment type) present -
    reserved, per (warehouse, sku, warehouse name) free to sell."""
    out: dict[Key, int] = {}
    for product in catalogue.products:
        for s in product.stocks:
            out[("type", s.sku, s.type, s.shipment_type)] = max(s.present - s.reserved, 0)
    for row in catalogue.rows:
        out[("warehouse", row.sku, catalogue.ozon_warehouses[row.warehouse].name)] = row.free_to_sell
    return out


def expected_events(before: dict[Key, int], after: dict[Key, int]) -> set[tuple]:
    """Every key whose amount crossed 0 (a key absent on one side counts as 0 there)."""
    out = set()
    for key in before.keys() | after.keys():
        was, now = before.get(key, 0), after.get(key, 0)
        if (was > 0) != (now > 0):
            out.add((key, "back_in_stock" if now > 0 else "out_of_stock", was, now))
    return out


def stored_events(pg_dsn: str, run_id: str) -> set[tuple]:
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            """SELECT scope, sku, stock_type, shipment_type, warehouse_name, kind, before, after
               FROM ozon_stock_event WHERE account = 'ozon_default' AND run_id = %s""",
            (run_id,),
        ).fetchall()
    out = set()
    for scope, sku, stock_type, shipment_type, warehouse, kind, was, now in rows:
        key = ("type", sku, stock_type, shipment_type) if scope == "type" else ("warehouse", sku, warehouse)
        out.add((key, kind, was, now))
    assert len(out) == len(rows), "an event was stored twice"
    return out


def _move_fbo_row(catalogue, row, free_to_sell: int) -> None:
    """Set a warehouse row's free to sell, keeping v4's fbo present the sum of its rows."""
    catalogue.fbo_stock(row.sku).present += free_to_sell - row.free_to_sell
    row.free_to_sell = free_to_sell


def empty_some(catalogue) -> tuple[list, list]:
    """Before the first run: two non-fbo stocks and two warehouse rows with nothing to sell, so the
    next run can refill them. Returns them."""
    stocks = [
        s for p in catalogue.products[:-1] for s in p.stocks if s.type != "fbo" and s.present > s.reserved
    ]
    rows = [r for r in catalogue.rows[:-20] if r.free_to_sell > 0]
    for s in stocks[-2:]:
        s.present = s.reserved
    for row in rows[-2:]:
        _move_fbo_row(catalogue, row, 0)
    catalogue.version += 1
    return stocks[-2:], rows[-2:]


def change_on_purpose(catalogue, emptied_stocks: list, emptied_rows: list) -> None:
    """Empty and refill SKUs per type and per warehouse; move some quantities without crossing 0;
    remove the last product (its SKUs in stock go out of stock, per type and per warehouse)."""
    last = catalogue.products[-1]
    stocks = [
        s for p in catalogue.products[:-1] for s in p.stocks if s.type != "fbo" and s not in emptied_stocks
    ]
    in_stock = [s for s in stocks if s.present > s.reserved]
    assert len(in_stock) >= 6, "the catalogue needs SKUs in stock to empty"
    for s in in_stock[:3]:  # per type: out of stock (nothing left to sell)
        s.present = s.reserved
    for s in in_stock[3:6]:  # per type: more stock, still in stock: no event
        s.present += 2
    for s in emptied_stocks:  # per type: back in stock
        s.present = s.reserved + 4
    rows = [
        r
        for r in catalogue.rows
        if catalogue.product_of_sku(r.sku) is not last and r not in emptied_rows and r.free_to_sell > 0
    ]
    assert len(rows) >= 4
    for row in rows[:2]:  # per warehouse: out of stock
        _move_fbo_row(catalogue, row, 0)
    for row in rows[2:4]:  # per warehouse: moved, no event
        _move_fbo_row(catalogue, row, row.free_to_sell + 1)
    for row in emptied_rows:  # per warehouse: back in stock
        _move_fbo_row(catalogue, row, 3)
    # the product removed is one with FBO stock in a warehouse: its rows vanish from the answer
    touched = {r.sku for r in rows[:4]} | {r.sku for r in emptied_rows} | {s.sku for s in in_stock[:6]}
    gone = next(
        p
        for p in catalogue.products[:-1]
        if not {s.sku for s in p.stocks} & touched
        and any(r.free_to_sell > 0 for s in p.stocks for r in catalogue.rows_of_sku(s.sku))
    )
    catalogue.products.remove(gone)
    catalogue.products.append(gone)
    catalogue.remove_products(1)


def test_events_match_the_catalogues_changes(env, pg_dsn, simulator, smtp, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALERT_EMAIL", "ops@example.test")
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALERT_STOCK_EVENTS", "true")
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    emptied = empty_some(catalogue)
    first = run_dag(10, day=5)
    assert stored_events(pg_dsn, first.run_id) == set()  # a first snapshot has nothing to compare with
    before = available(catalogue)
    change_on_purpose(catalogue, *emptied)
    after = available(catalogue)
    expected = expected_events(before, after)
    kinds = {kind for _, kind, _, _ in expected}
    scopes = {key[0] for key, _, _, _ in expected}
    assert kinds == {"out_of_stock", "back_in_stock"} and scopes == {"type", "warehouse"}

    second = run_dag(11, day=5)
    assert stored_events(pg_dsn, second.run_id) == expected

    # the asset event carries the counts per scope and kind
    extra = asset_events(second.run_id)[stock_asset("ozon_default").uri][1]
    counted = {
        scope: {kind: sum(1 for key, k, _, _ in expected if key[0] == scope and k == kind) for kind in kinds}
        for scope in ("type", "warehouse")
    }
    assert extra["events"] == counted

    # the read API: a frame of them, newest first, filterable by kind
    frame = read.stock_events("ozon_default", run_id=second.run_id, kind="out_of_stock")
    assert len(frame) == sum(1 for _, k, _, _ in expected if k == "out_of_stock")
    assert set(frame["kind"]) == {"out_of_stock"} and (frame["after"] == 0).all()

    # the digest went out once, naming the counts
    deadline = time.monotonic() + 10
    while not any("out of stock" in m["Subject"] for m in smtp.messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    digests = [m for m in smtp.messages if "out of stock" in m["Subject"]]
    assert [m["Subject"] for m in digests] == [
        f"Ozon inventory ozon_default: {counted['type']['out_of_stock'] + counted['warehouse']['out_of_stock']} "
        f"out of stock, {counted['type']['back_in_stock'] + counted['warehouse']['back_in_stock']} back in stock"
    ]

    # the same catalogue again: no event, no digest
    third = run_dag(12, day=5)
    assert stored_events(pg_dsn, third.run_id) == set()
    zeros = {scope: dict.fromkeys(("out_of_stock", "back_in_stock"), 0) for scope in ("type", "warehouse")}
    assert asset_events(third.run_id)[stock_asset("ozon_default").uri][1]["events"] == zeros
    time.sleep(0.5)
    assert len([m for m in smtp.messages if "out of stock" in m["Subject"]]) == 1


def test_no_digest_unless_asked(env, pg_dsn, simulator, smtp):  # noqa: F811
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    run_dag(10, day=6)
    catalogue.remove_products(2)
    second = run_dag(11, day=6)
    assert stored_events(pg_dsn, second.run_id)  # the events are stored either way
    time.sleep(0.5)
    assert not [m for m in smtp.messages if "stock" in m["Subject"]]
