"""Validation rules on hand-made answers: tolerant parsing, rejects with reasons, no character rules."""

from __future__ import annotations

import hashlib
import json

import pytest

from ozon_inventory.staging import Manifest, StagingArea
from ozon_inventory.validate import Reject, as_int, as_text, validate_run, working_days


def stage(staging: StagingArea, source: str, method: str, *answers: dict) -> None:
    staging.begin(source)
    manifest = Manifest(staging.account, staging.run_key, source, method, "2026-11-22T10:00:00+00:00", "")
    digest = hashlib.sha256()
    for number, answer in enumerate(answers, start=1):
        raw = json.dumps(answer, ensure_ascii=False).encode()
        name, _ = staging.write_page(source, number, raw)
        digest.update(raw)
        manifest.files.append(name)
    manifest.sha256 = digest.hexdigest()
    staging.write_manifest(manifest)


@pytest.fixture
def staging(tmp_path):
    return StagingArea(str(tmp_path), "acc", "20261122T100000Z")


def test_int64_as_numbers_or_strings():
    assert as_int(9_223_372_036_854_775_807, "sku", (1, 2**63 - 1)) == 2**63 - 1
    assert as_int("3000000017", "sku", (1, 2**63 - 1)) == 3_000_000_017
    for bad in (True, "12a", 1.5, None, 0):
        with pytest.raises(Reject):
            as_int(bad, "sku", (1, 2**63 - 1))


def test_any_unicode_text_is_valid():
    for text in ("САНКТ_ПЕТЕРБУРГ_РФЦ", "SKU*1*NEW", 'Чехол "Премиум", 5', "ёлка_№1", "emoji 📦"):
        assert as_text(text, "name") == text
    assert as_text("a\tb\\c\nd", "name") == "a\\tb\\\\c\\nd"  # escaped for COPY, not rejected


def test_working_days_ints_strings_or_names():
    assert working_days([1, 2, 3]) == "1,2,3"
    assert working_days(["1", "7"]) == "1,7"
    assert working_days(["MONDAY", "SUNDAY", "UNSPECIFIED"]) == "1,7"
    with pytest.raises(Reject):
        working_days([8])


def test_unknown_fields_and_values_are_kept_and_counted(staging):
    stage(
        staging,
        "stocks",
        "/v4/product/info/stocks",
        {
            "items": [
                {
                    "offer_id": "A",
                    "product_id": "11",
                    "new_field": 1,
                    "stocks": [
                        {"sku": "101", "type": "crossborder", "present": "5", "reserved": 0, "zone": "x"},
                        {
                            "sku": 102,
                            "type": "fbo",
                            "present": 3,
                            "reserved": 1,
                            "shipment_type": "SHIPMENT_TYPE_NEW",
                        },
                    ],
                }
            ],
            "cursor": "",
            "total_items": 1,
        },
    )
    report = validate_run(staging)
    src = report.sources["stocks"]
    assert (src.rows_valid, src.rejects) == (2, 0)
    assert src.unknown_fields == {"stocks.item.new_field": 1, "stocks.stock.zone": 1}
    assert src.unknown_values == {"type=crossborder": 1, "shipment_type=SHIPMENT_TYPE_NEW": 1}
    assert report.missing == ["warehouse_stocks", "warehouses"]


def test_bad_rows_rejected_with_reasons_others_kept(staging):
    stage(
        staging,
        "warehouse_stocks",
        "/v2/analytics/stock_on_warehouses",
        {
            "result": {
                "rows": [
                    {
                        "sku": 1,
                        "warehouse_name": "ХОРУГВИНО_РФЦ",
                        "free_to_sell_amount": 5,
                        "promised_amount": 0,
                        "reserved_amount": 1,
                    },
                    {
                        "sku": 1,
                        "warehouse_name": "ХОРУГВИНО_РФЦ",
                        "free_to_sell_amount": 6,
                        "promised_amount": 0,
                        "reserved_amount": 1,
                    },
                    {"sku": "x", "warehouse_name": "A", "free_to_sell_amount": 1},
                    {"sku": 2, "warehouse_name": "", "free_to_sell_amount": 1},
                    {"sku": 3, "warehouse_name": "B", "free_to_sell_amount": 1.5},
                    "not a row",
                ]
            }
        },
    )
    report = validate_run(staging)
    src = report.sources["warehouse_stocks"]
    assert (src.rows_in, src.rows_valid, src.rejects) == (6, 1, 5)
    rejects = (staging.dir("validated") / "rejects.tsv").read_text().splitlines()
    reasons = [line.split("\t")[1] for line in rejects]
    assert reasons == [
        "duplicate row for sku 1 in warehouse 'ХОРУГВИНО_РФЦ'",
        "sku is not an integer: 'x'",
        "warehouse_name is empty",
        "free_to_sell_amount is not an integer: 1.5",
        "row is not an object",
    ]
