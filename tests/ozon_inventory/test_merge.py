"""Merge: only the joins between two sources; the facts stay as validate wrote them."""

from __future__ import annotations

import pytest

from ozon_inventory.merge import merge_run
from ozon_inventory.methods import V2_STOCK_ON_WAREHOUSES, V4_STOCKS
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import validate_run
from tests.ozon_inventory.test_validate import item, stage, stock, tsv, v2, v2_row, v4


@pytest.fixture
def staging(tmp_path):
    return StagingArea(str(tmp_path), "acc", "20261122T100000Z")


def test_products_are_named_after_their_first_sku_the_analytics_answer_names(staging):
    stage(
        staging,
        "stocks",
        V4_STOCKS,
        v4(item(1, "A", stock(11), stock(12, "fbs")), item(2, "B", stock(21)), item(3, "C")),
    )
    stage(
        staging,
        "warehouse_stocks",
        V2_STOCK_ON_WAREHOUSES,
        v2(v2_row(12, "W", item_name="Чехол\t«Премиум»"), v2_row(11, "W", item_name=""), v2_row(99, "W")),
    )
    result = merge_run(staging, validate_run(staging))
    assert tsv(staging, "model", "products.tsv") == [
        ["1", "A", "Чехол\\t«Премиум»"],  # sku 11 has no name: the next sku's name, COPY-escaped once
        ["2", "B", "\\N"],
        ["3", "C", "\\N"],  # a product without stock rows is a product all the same
    ]
    assert result.files["products.tsv"] == 3
    assert result.files["stock_by_type.tsv"] == 3 and result.files["stock_by_warehouse.tsv"] == 3


def test_without_the_analytics_source_products_have_no_name_and_nothing_else_is_joined(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    result = merge_run(staging, validate_run(staging))
    assert tsv(staging, "model", "products.tsv") == [["1", "A", "\\N"]]
    assert "stock_by_warehouse.tsv" not in result.files


def test_without_the_stocks_source_no_products_file_is_written(staging):
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(v2_row(11, "W")))
    result = merge_run(staging, validate_run(staging))
    assert not (staging.dir("model") / "products.tsv").exists()
    assert result.files == {
        "stock_by_warehouse.tsv": 1,
        "ozon_warehouses.tsv": 1,
        "held_stock_by_warehouse.tsv": 0,
    }


def test_merge_leaves_the_facts_alone_and_can_run_again(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(v2_row(11, "W")))
    report = validate_run(staging)
    facts = (staging.dir("model") / "stock_by_type.tsv").read_bytes()
    first = merge_run(staging, report)
    again = merge_run(staging, report)
    assert first.files == again.files
    assert (staging.dir("model") / "stock_by_type.tsv").read_bytes() == facts
    assert staging.read_json("model", "merge.json")["files"] == again.files


def test_a_full_disk_names_the_file_merge_was_writing(staging, monkeypatch):
    from ozon_inventory.exceptions import StagingWriteError

    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    report = validate_run(staging)

    def full(self, folder, name):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StagingArea, "open_write", full)
    with pytest.raises(
        StagingWriteError, match=r"cannot write .*/model/products.tsv: No space left on device"
    ):
        merge_run(staging, report)
