"""Data that moves or repeats while it is paged: rows removed or inserted mid-fetch, rows Ozon lists twice."""

from __future__ import annotations

import copy

import pytest

from ozon_inventory.methods import V2_STOCK_ON_WAREHOUSES, V4_STOCKS
from ozon_simulator import Fault
from ozon_simulator.server import OzonSimulator
from tests.fault_matrix.conftest import assert_names

#: Two pages of v4 (1,000 products each) and three of warehouse rows.
pytestmark = pytest.mark.parametrize("sim_size", [{"products": 1200, "rows_per_sku": 1.2}])


def remove_head(catalogue, products: int = 0, rows: int = 0) -> None:
    """Rows vanish from the part of the answer already read: later offsets shift back."""
    gone = {s.sku for p in catalogue.products[:products] for s in p.stocks}
    del catalogue.products[:products]
    kept = [r for r in catalogue.rows if r.sku not in gone]
    del kept[10 : 10 + rows]
    catalogue.rows[:] = kept
    catalogue.version += 1
    catalogue.reindex()


def after_first_answer(monkeypatch, handler_name: str, change) -> None:
    """Change the catalogue once, right after the method's first answer (between pages)."""
    original = getattr(OzonSimulator, handler_name)
    done = []

    def answer(self, catalogue, body):
        out = original(self, catalogue, body)
        if not done:
            done.append(True)
            change(catalogue)
        return out

    monkeypatch.setattr(OzonSimulator, handler_name, answer)


def test_d1_rows_removed_while_warehouse_rows_are_paged_by_offset(matrix, monkeypatch):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=6)
    before = matrix.state()
    after_first_answer(monkeypatch, "stock_on_warehouses", lambda c: remove_head(c, rows=3))
    result = matrix.run(client=matrix.client(workers=1), between=lambda _: matrix.assert_unchanged(before))
    assert result.complete, result.text
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(
        r"/v2/analytics/stock_on_warehouses: rows moved while paging \(the page at offset 999 does not start "
        r"where the previous one ended\); fetching warehouse_stocks again \(pass 2 of 3\)",
        warned,
    )
    matrix.assert_catalogue()  # the second pass saw the catalogue without the three rows
    matrix.good_run()
    matrix.assert_recovered()


def test_products_removed_while_v4_is_paged_by_cursor(matrix, monkeypatch):
    matrix.good_run()
    before = matrix.state()
    after_first_answer(monkeypatch, "v4_stocks", lambda c: remove_head(c, products=3))
    result = matrix.run(between=lambda _: matrix.assert_unchanged(before))
    assert result.complete, result.text
    warned = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname == "WARNING")
    assert_names(
        r"/v4/product/info/stocks: the data changed while paging \(1197 rows against the total of 1200 that the "
        r"first page stated\); fetching stocks again \(pass 2 of 3\)",
        warned,
    )
    matrix.assert_catalogue()
    matrix.good_run()
    matrix.assert_recovered()
    assert len(matrix.catalogue.products) == 1197


def test_product_inserted_at_the_head_on_every_page_fails_after_three_passes(matrix):
    """Ozon's data keeps moving: three passes, then a clear error; the last good rows stay."""
    matrix.good_run()
    before = matrix.state()
    matrix.fault(Fault(V4_STOCKS, "mutate", times=-1))
    result = matrix.run()
    error = result.fetch_errors["stocks"]
    assert_names(
        r"Ozon /v4/product/info/stocks: 1 rows came more than once across pages .*the data changed while paging.*"
        r"in each of 3 passes; Ozon's data kept changing while stocks was paged",
        str(error),
    )
    assert result.degraded
    matrix.assert_unchanged(before, ("stock_by_type", "products", "skus"))
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()


def test_a_product_ozon_lists_twice_across_pages_is_not_reported_as_moving_data(matrix):
    """The same product at the end of page 1 and the start of page 2 in every pass: Ozon's duplicate."""
    matrix.good_run()
    catalogue = matrix.catalogue
    twice = catalogue.products[999]
    catalogue.products.insert(1000, twice)
    catalogue.change_stock(0.05, seed=7)
    result = matrix.run()
    assert result.complete, result.text
    log = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname in ("WARNING", "ERROR"))
    assert_names(
        rf"Ozon /v4/product/info/stocks lists the same 1 rows more than once in two whole passes in a row "
        rf"\(product_id={twice.product_id}\): a duplicate in Ozon's answer, not data that moved",
        log,
    )
    assert log.count("changed while paging") <= 1, log
    matrix.assert_catalogue()
    catalogue.products.pop(1000)  # Ozon fixes its answer
    matrix.good_run()
    matrix.assert_recovered()


def test_a_warehouse_row_ozon_lists_twice_is_kept_once(matrix):
    matrix.good_run()
    catalogue = matrix.catalogue
    twice = catalogue.rows[500]
    catalogue.rows.insert(501, copy.copy(twice))
    result = matrix.run()
    assert result.complete, result.text
    log = "\n".join(r.getMessage() for r in matrix.caplog.records if r.levelname in ("WARNING", "ERROR"))
    assert_names(
        rf"Ozon /v2/analytics/stock_on_warehouses lists the same 1 rows more than once in two whole passes "
        rf"in a row \(sku={twice.sku} warehouse_name=\S+\): a duplicate in Ozon's answer",
        log,
    )
    matrix.assert_catalogue()
    del catalogue.rows[501]
    matrix.good_run()
    matrix.assert_recovered()
    assert V2_STOCK_ON_WAREHOUSES
