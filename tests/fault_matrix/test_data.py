"""Hostile values from Ozon: text that must be stored exactly, and values that must be rejected with a reason.

A rejected row never fails the run (that would freeze the account for as long as Ozon sends it): it is
kept in ``ozon_reject`` with its reason and raw record, the row keeps its last good value, everything
else loads. Once Ozon sends a good value again, the database equals the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ozon_simulator.catalogue import Product
from tests.fault_matrix.conftest import ACCOUNT, Matrix, assert_names

# -- picking rows of the catalogue ------------------------------------------------------------------


def with_rows(matrix: Matrix, n: int = 0) -> Product:
    """A product whose FBO SKU has warehouse rows."""
    cat = matrix.catalogue
    return [p for p in cat.products if any(cat.rows_of_sku(s.sku) for s in p.stocks)][n]


def without_rows(matrix: Matrix, n: int = 0) -> Product:
    """A product with no warehouse rows (no FBO stock): its SKUs can change freely."""
    cat = matrix.catalogue
    return [p for p in cat.products if p.stocks and not any(cat.rows_of_sku(s.sku) for s in p.stocks)][n]


def type_keys(p: Product) -> set[tuple[Any, ...]]:
    return {(s.sku, s.type, s.shipment_type) for s in p.stocks}


# -- text and numbers stored exactly as Ozon sent them -------------------------------------------------


def set_offer(value: str) -> Callable[[Matrix], None]:
    def inject(matrix: Matrix) -> None:
        with_rows(matrix, 3).offer_id = value

    return inject


def set_name(value: str, raw: str | None = None) -> Callable[[Matrix], None]:
    def inject(matrix: Matrix) -> None:
        with_rows(matrix, 4).name = value
        if raw is not None:
            matrix.rewrite(value, raw)

    return inject


def set_ozon_warehouse(value: str) -> Callable[[Matrix], None]:
    def inject(matrix: Matrix) -> None:
        matrix.catalogue.ozon_warehouses[2].name = value

    return inject


def set_seller_warehouse(value: str) -> Callable[[Matrix], None]:
    def inject(matrix: Matrix) -> None:
        matrix.catalogue.seller_warehouses[1].name = value

    return inject


def int64_max_ids(matrix: Matrix) -> None:
    p = without_rows(matrix, 2)
    p.product_id = 2**63 - 1
    for s in p.stocks:
        s.sku = 2**63 - 1
    matrix.catalogue.reindex()


def int32_max_quantity(matrix: Matrix) -> None:
    stock = without_rows(matrix, 3).stocks[0]
    stock.present, stock.reserved = 2**31 - 1, 2**31 - 1


def integral_float(matrix: Matrix) -> None:
    without_rows(matrix, 4).stocks[0].present = 7.0


def sku_as_string(matrix: Matrix) -> None:
    sku = without_rows(matrix, 5).stocks[0].sku
    matrix.rewrite(sku, f'"{sku}"', field="sku")


def empty_stocks(matrix: Matrix) -> None:
    """D2: a product Ozon lists with ``stocks: []`` is still a product."""
    without_rows(matrix, 6).stocks = []
    matrix.catalogue.reindex()


STORED: dict[str, Callable[[Matrix], None]] = {
    "offer-id-newline-tab-cr": set_offer("строка 1\nstroka 2\ttab\rcr"),
    "offer-id-quotes-backslashes-copy-markers": set_offer("He said \"hi\" 'x' \\ C:\\path\\N \\. \\N"),
    "offer-id-emoji-rtl-zwj": set_offer("🧪📦 \u202eRTL\u202c שלום مرحبا \u200d👩\u200d👩\u200d👧 e\u0301"),
    "offer-id-sql-and-json": set_offer('\'); DROP TABLE ozon_product; -- {"a": [1]}'),
    "offer-id-2000-bytes": set_offer("Ж" * 1000),
    "item-name-10k-chars": set_name(("Очень длинное имя товара ✓ " * 400)[:10_000]),
    "item-name-nul": set_name("Кружка\x00с NUL"),
    "item-name-lone-surrogate": set_name("half\ufffdpair", raw='"half\\ud800pair"'),
    "warehouse-name-tab-quotes-emoji-rtl": set_ozon_warehouse('СКЛАД\t"№1" \\ 🏭 \u202eRTL'),
    "warehouse-name-copy-null-marker": set_ozon_warehouse("\\N"),
    "seller-warehouse-newline-quotes": set_seller_warehouse('Склад\n№5 "FBS"\t\\'),
    "int64-max-product-and-sku": int64_max_ids,
    "int32-max-quantities": int32_max_quantity,
    "quantity-as-integral-float": integral_float,
    "sku-as-string-of-digits": sku_as_string,
    "d2-product-with-empty-stocks": empty_stocks,
}


@pytest.mark.parametrize("case", list(STORED))
def test_hostile_value_is_stored_exactly(matrix, case):
    matrix.good_run()
    before = matrix.state()
    STORED[case](matrix)
    result = matrix.run(between=lambda _: matrix.assert_unchanged(before))
    assert result.complete, result.text
    assert result.report.rejects == 0, reject_reasons(matrix, result.run_key)
    matrix.assert_catalogue()
    again = matrix.good_run()  # the stored value reads back equal: nothing changes on the next run
    assert (again.loaded.history_opened, again.loaded.history_closed) == (0, 0)
    matrix.assert_recovered()


# -- values that must be rejected, with a reason ------------------------------------------------------


@dataclass
class Rejected:
    """What a case did: keys whose rows Ozon sent bad (checked apart), the reason, and Ozon's fix."""

    ignore: dict[str, set[Any]]
    reason: str
    fix: Callable[[], None]


MARK = 1_357_913  # a quantity no catalogue holds: rewritten into the hostile value


def bad_quantity(raw: str, reason: str) -> Callable[[Matrix], Rejected]:
    def inject(matrix: Matrix) -> Rejected:
        p = without_rows(matrix, 1)
        stock = p.stocks[0]
        good, stock.present = stock.present, MARK
        matrix.rewrite(MARK, raw, field="present")

        def fix() -> None:
            stock.present = good

        return Rejected({"stock_by_type": {(stock.sku, stock.type, stock.shipment_type)}}, reason, fix)

    return inject


def bad_free_to_sell(raw: str, reason: str) -> Callable[[Matrix], Rejected]:
    def inject(matrix: Matrix) -> Rejected:
        cat = matrix.catalogue
        row = cat.rows[7]
        good, row.free_to_sell = row.free_to_sell, MARK
        matrix.rewrite(MARK, raw, field="free_to_sell_amount")

        def fix() -> None:
            row.free_to_sell = good

        return Rejected(
            {"stock_by_warehouse": {(row.sku, cat.ozon_warehouses[row.warehouse].name)}}, reason, fix
        )

    return inject


def bad_offer(raw: str, reason: str) -> Callable[[Matrix], Rejected]:
    def inject(matrix: Matrix) -> Rejected:
        p = with_rows(matrix, 5)
        good, p.offer_id = p.offer_id, "@@HOSTILE-OFFER@@"
        matrix.rewrite(p.offer_id, raw)

        def fix() -> None:
            p.offer_id = good

        return Rejected(
            {"stock_by_type": type_keys(p), "products": {p.product_id}, "skus": {s.sku for s in p.stocks}},
            reason,
            fix,
        )

    return inject


def bad_warehouse_name(value: str, reason: str) -> Callable[[Matrix], Rejected]:
    def inject(matrix: Matrix) -> Rejected:
        cat = matrix.catalogue
        wh = cat.ozon_warehouses[3]
        good, wh.name = wh.name, value
        keys = {(r.sku, value) for r in cat.rows if r.warehouse == 3}
        names = {p.product_id for p in cat.products for s in p.stocks if (s.sku, value) in keys}

        def fix() -> None:
            wh.name = good

        return Rejected(
            {"stock_by_warehouse": keys, "ozon_warehouses": {("ozon", value)}, "products": names}, reason, fix
        )

    return inject


def every_stock_rejected(matrix: Matrix) -> Rejected:
    """D2: a product whose every stock row is rejected is still a product."""
    p = without_rows(matrix, 7)
    goods = [(s, s.present) for s in p.stocks]
    for s in p.stocks:
        s.present = -1

    def fix() -> None:
        for s, good in goods:
            s.present = good

    return Rejected({"stock_by_type": type_keys(p)}, r"present out of range 0\.\.2147483647: -1", fix)


def sku_past_int64(matrix: Matrix) -> Rejected:
    p = without_rows(matrix, 8)
    stock = p.stocks[0]
    good, stock.sku = stock.sku, 2**63
    matrix.catalogue.reindex()

    def fix() -> None:
        stock.sku = good
        matrix.catalogue.reindex()

    ignore = {"stock_by_type": {(2**63, stock.type, stock.shipment_type)}, "skus": {2**63}}
    return Rejected(ignore, r"sku out of range 1\.\.9223372036854775807: 9223372036854775808", fix)


REJECTED: dict[str, tuple[Callable[[Matrix], Rejected], str | None]] = {
    "d3-quantity-nan": (bad_quantity("NaN", r"present is not an integer: nan"), "D3"),
    "d3-quantity-1e400": (bad_quantity("1e400", r"present is not an integer: inf"), "D3"),
    "d3-free-to-sell-nan": (bad_free_to_sell("NaN", r"free_to_sell_amount is not an integer: nan"), "D3"),
    "d3-quantity-minus-infinity": (bad_quantity("-Infinity", r"present is not an integer: -inf"), "D3"),
    "d4-free-to-sell-double-minus": (
        bad_free_to_sell('"--5"', r"free_to_sell_amount is not an integer: '--5'"),
        "D4",
    ),
    "d4-quantity-superscript-two": (bad_quantity('"²"', r"present is not an integer: '²'"), "D4"),
    "quantity-true": (bad_quantity("true", r"present is not an integer: True"), None),
    "quantity-past-int32": (
        bad_quantity("2147483648", r"present out of range 0\.\.2147483647: 2147483648"),
        None,
    ),
    "d5-offer-id-lone-surrogate": (
        bad_offer('"bad\\ud800x"', r"offer_id holds a lone surrogate, which is not valid Unicode text"),
        "D5",
    ),
    "offer-id-nul": (bad_offer('"bad\\u0000x"', r"offer_id holds a NUL character"), None),
    "d9-warehouse-name-10k-chars": (
        bad_warehouse_name(
            ("Склад_" * 1700)[:10_000], r"warehouse_name is longer than 1000 characters: 10000"
        ),
        "D9",
    ),
    "warehouse-name-nul": (bad_warehouse_name("СКЛАД\x00NUL", r"warehouse_name holds a NUL character"), None),
    "d2-every-stock-row-rejected": (every_stock_rejected, "D2"),
    "sku-past-int64": (sku_past_int64, None),
}


def reject_reasons(matrix: Matrix, run_key: str) -> list[str]:
    with matrix.connect() as conn:
        rows = conn.execute(
            "SELECT source, reason, record::text FROM ozon_reject WHERE account = %s AND run_id = %s",
            (ACCOUNT, f"run-{run_key}"),
        ).fetchall()
    return [f"{source}: {reason} | {record}" for source, reason, record in rows]


@pytest.mark.parametrize("case", list(REJECTED))
def test_bad_value_is_rejected_with_its_reason_and_nothing_else_is_lost(matrix, case):
    matrix.good_run()
    before = matrix.state()
    rejected = REJECTED[case][0](matrix)
    result = matrix.run(between=lambda _: matrix.assert_unchanged(before))
    assert result.complete, result.text  # a bad row never fails the run: the account is not frozen
    reasons = reject_reasons(matrix, result.run_key)
    assert_names(rejected.reason, "\n".join(reasons))
    matrix.assert_catalogue(ignore=rejected.ignore)
    now = matrix.state()
    for table in ("stock_by_type", "stock_by_warehouse"):  # a key Ozon sent bad keeps its last good value
        for key in rejected.ignore.get(table, ()):
            if key in before[table]:
                assert now[table].get(key) == before[table][key], f"{table} {key}: last good value lost"
    matrix.assert_history()
    matrix.assert_no_secret()

    rejected.fix()  # Ozon sends good values again
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()


def test_quantity_nan_does_not_freeze_later_runs(matrix):
    """D3 as the attacker saw it: Ozon keeps sending NaN; every later run still loads the rest."""
    matrix.good_run()
    rejected = bad_quantity("NaN", r"present is not an integer: nan")(matrix)
    for seed in (21, 22):
        matrix.catalogue.change_stock(0.05, seed=seed)
        result = matrix.run()
        assert result.complete, result.text
        matrix.assert_catalogue(ignore=rejected.ignore)
    rejected.fix()
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()
    assert re.search(r"nan", "\n".join(reject_reasons(matrix, result.run_key)))
