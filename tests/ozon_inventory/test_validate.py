"""Validation rules on hand-made answers: tolerant parsing, rejects with reasons, no character rules."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ozon_inventory.exceptions import ConfigError, ShrinkGuardError, StagingError
from ozon_inventory.methods import (
    V1_ANALYTICS_STOCKS,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
)
from ozon_inventory.rules import KEY_MAX_CHARS, as_key, as_label, record_json
from ozon_inventory.staging import Manifest, StagingArea
from ozon_inventory.validate import LoadedState, Reject, as_int, as_text, validate_run, working_days

AS_OF = "2026-11-22T10:00:00+00:00"


def stage(staging: StagingArea, source: str, method: str, *answers: dict | str, as_of: str = AS_OF) -> None:
    """Stage answers as a fetch would (a str is the raw JSON text, for what json.dumps cannot write)."""
    staging.begin(source)
    manifest = Manifest(staging.account, staging.run_key, source, method, as_of, "")
    digest = hashlib.sha256()
    for number, answer in enumerate(answers, start=1):
        raw = (answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)).encode(
            "utf-8", "surrogatepass"
        )
        name, _ = staging.write_page(source, number, raw)
        digest.update(raw)
        manifest.files.append(name)
    manifest.sha256 = digest.hexdigest()
    staging.write_manifest(manifest)


def item(product_id: Any, offer_id: Any, *stocks: dict) -> dict:
    return {"product_id": product_id, "offer_id": offer_id, "stocks": list(stocks)}


def stock(sku: Any, type_: str = "fbo", present: Any = 5, reserved: Any = 1, **more: Any) -> dict:
    return {"sku": sku, "type": type_, "present": present, "reserved": reserved} | more


def v4(*items: dict) -> dict:
    return {"items": list(items), "cursor": "", "total_items": len(items)}


def v2_row(
    sku: Any, warehouse: Any, free: Any = 4, promised: Any = 0, reserved: Any = 1, **more: Any
) -> dict:
    row = {"sku": sku, "warehouse_name": warehouse, "item_code": f"code-{sku}", "item_name": f"Товар {sku}"}
    return (
        row | {"free_to_sell_amount": free, "promised_amount": promised, "reserved_amount": reserved} | more
    )


def v2(*rows: dict) -> dict:
    return {"result": {"rows": list(rows)}}


def v1_row(sku: Any, warehouse: str, warehouse_id: int, available: int = 4, **more: Any) -> dict:
    return {
        "sku": sku,
        "offer_id": f"offer-{sku}",
        "name": f"Товар {sku}",
        "warehouse_id": warehouse_id,
        "warehouse_name": warehouse,
        "cluster_id": 7,
        "cluster_name": "Москва",
        "available_stock_count": available,
        "requested_stock_count": 0,
        "transit_stock_count": 0,
    } | more


def v1(*rows: dict) -> dict:
    return {"items": list(rows)}


def seller_list(*warehouses: dict) -> dict:
    return {"warehouses": list(warehouses), "has_next": False}


def tsv(staging: StagingArea, folder: str, name: str) -> list[list[str]]:
    text = (staging.dir(folder) / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()]


def rejects(staging: StagingArea) -> list[tuple[str, str, Any]]:
    """(source, reason, record) of validated/rejects.tsv; the record must be standard JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant} in a reject record")

    out = []
    for source, reason, record in tsv(staging, "validated", "rejects.tsv"):
        unescaped = record.replace("\\\\", "\\")  # COPY's escape of a backslash
        out.append((source, reason, json.loads(unescaped, parse_constant=refuse)))
    return out


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


# -- integers: only Reject, never a crash (D4) ------------------------------------------------------


@pytest.mark.parametrize("bad", ["--5", "²", "٣", "1e3", "+5", "5-", "", " ", "0x10", "1_000", "9" * 5000])
def test_int_parsing_raises_only_the_reject_it_means(bad):
    with pytest.raises(Reject, match="present"):
        as_int(bad, "present", (0, 2**31 - 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e300, [], {}, False])
def test_non_finite_and_odd_numbers_are_rejected(bad):
    with pytest.raises(Reject):
        as_int(bad, "present", (0, 2**31 - 1))


def test_digit_strings_with_spaces_and_integral_floats_still_parse():
    assert as_int(" 12 ", "present", (0, 100)) == 12
    assert as_int("007", "present", (0, 100)) == 7
    assert as_int(3.0, "present", (0, 100)) == 3
    with pytest.raises(Reject, match="out of range 0..100: -1"):
        as_int("-1", "present", (0, 100))


# -- text: keys refused when they cannot be stored or indexed (D5, D9), labels repaired ------------


def test_key_text_is_bounded_before_it_reaches_an_index():
    assert as_key("Я" * KEY_MAX_CHARS, "warehouse_name") == "Я" * KEY_MAX_CHARS  # 2,000 bytes: fits
    with pytest.raises(Reject, match="warehouse_name is longer than 1000 characters: 10000"):
        as_key("x" * 10_000, "warehouse_name")
    with pytest.raises(Reject, match="warehouse_name is longer than 2000 bytes of UTF-8: 2400 bytes"):
        as_key("📦" * 600, "warehouse_name")


def test_a_lone_surrogate_rejects_a_key_and_is_replaced_in_a_label():
    with pytest.raises(Reject, match="offer_id holds a lone surrogate"):
        as_key("bad\ud800x", "offer_id")
    assert as_label("bad\ud800x", "item_name") == "bad\ufffdx"
    assert as_label("a\x00b\tc", "item_name") == "a\ufffdb\\tc"
    with pytest.raises(Reject, match="offer_id holds a NUL"):
        as_key("a\x00b", "offer_id")
    for blank in ("", "   ", "\t"):
        with pytest.raises(Reject, match="is empty"):
            as_key(blank, "offer_id")


def test_reject_records_are_standard_json_jsonb_accepts():
    raw = record_json({"present": float("nan"), "q": [float("inf"), -float("inf")], "o": "a\ud800b\x00"})
    assert json.loads(raw, parse_constant=lambda c: pytest.fail(c)) == {
        "present": "NaN",
        "q": ["Infinity", "-Infinity"],
        "o": "a\\ud800b\\u0000",  # both stay visible as their escape's characters
    }
    raw.encode("utf-8")  # no lone surrogate left to crash a writer


def test_nan_and_huge_numbers_in_an_answer_reject_their_rows_only(staging):
    answer = (
        '{"items": [{"product_id": 1, "offer_id": "A", "stocks": ['
        '{"sku": 11, "type": "fbo", "present": NaN, "reserved": 0},'
        '{"sku": 12, "type": "fbo", "present": 1e400, "reserved": 0},'
        '{"sku": 13, "type": "fbo", "present": -Infinity, "reserved": 0},'
        '{"sku": 14, "type": "fbo", "present": 2, "reserved": 0}]}], "cursor": ""}'
    )
    stage(staging, "stocks", V4_STOCKS, answer)
    report = validate_run(staging)
    assert (report.sources["stocks"].rows_valid, report.sources["stocks"].rejects) == (1, 3)
    found = rejects(staging)
    assert [r[1] for r in found] == [
        "present is not an integer: nan",
        "present is not an integer: inf",
        "present is not an integer: -inf",
    ]
    assert [r[2]["stock"]["present"] for r in found] == ["NaN", "Infinity", "-Infinity"]


def test_malformed_integers_in_an_answer_reject_their_rows(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11, present="--5"), stock(12, present="²"))))
    report = validate_run(staging)
    assert report.sources["stocks"].rejects == 2
    assert [r[1] for r in rejects(staging)] == [
        "present is not an integer: '--5'",
        "present is not an integer: '²'",
    ]


def test_a_lone_surrogate_in_an_answer_rejects_the_row_naming_the_field(staging):
    answer = (
        '{"items": [{"product_id": 1, "offer_id": "bad\\ud800x", "stocks": []},'
        ' {"product_id": 2, "offer_id": "ok", "stocks": []}], "cursor": ""}'
    )
    stage(staging, "stocks", V4_STOCKS, answer)
    stage(
        staging,
        "warehouse_stocks",
        V2_STOCK_ON_WAREHOUSES,
        '{"result": {"rows": [{"sku": 5, "warehouse_name": "W", "item_name": "n\\udc00", '
        '"free_to_sell_amount": 1, "promised_amount": 0, "reserved_amount": 0}]}}',
    )
    report = validate_run(staging)
    assert report.sources["stocks"].rejects == 1
    (reject,) = rejects(staging)
    assert reject[1] == "offer_id holds a lone surrogate, which is not valid Unicode text"
    assert reject[2]["offer_id"] == "bad\\ud800x"
    assert tsv(staging, "validated", "item_names.tsv") == [["5", "n\ufffd"]]
    assert [r[0] for r in tsv(staging, "validated", "product_skus.tsv")] == ["2"]


def test_a_very_long_warehouse_name_is_rejected_with_its_reason(staging):
    stage(
        staging,
        "warehouse_stocks",
        V2_STOCK_ON_WAREHOUSES,
        v2(v2_row(1, "W" * 10_000), v2_row(2, "Склад_" + "Я" * 900)),
    )
    report = validate_run(staging)
    assert (report.sources["warehouse_stocks"].rows_valid, report.sources["warehouse_stocks"].rejects) == (
        1,
        1,
    )
    assert rejects(staging)[0][1] == "warehouse_name is longer than 1000 characters: 10000"


# -- what validate writes ----------------------------------------------------------------------------


def test_products_come_from_the_items_not_from_the_surviving_stock_rows(staging):
    stage(
        staging,
        "stocks",
        V4_STOCKS,
        v4(
            item(1, "no-stock"),
            item(2, "all-rejected", stock(21, present=-1), stock(22, reserved="x")),
            item(3, "fine", stock(31), stock(32, "fbs")),
        ),
    )
    report = validate_run(staging)
    src = report.sources["stocks"]
    assert (src.products, src.rows_valid, src.rejects, src.held) == (3, 2, 2, 2)
    assert tsv(staging, "validated", "product_skus.tsv") == [
        ["1", "no-stock", ""],
        ["2", "all-rejected", ""],
        ["3", "fine", "31,32"],
    ]
    assert tsv(staging, "model", "held_stock_by_type.tsv") == [
        ["21", "fbo", "SHIPMENT_TYPE_GENERAL"],
        ["22", "fbo", "SHIPMENT_TYPE_GENERAL"],
    ]
    assert tsv(staging, "model", "stock_by_type.tsv") == [
        ["3", "31", "fbo", "SHIPMENT_TYPE_GENERAL", "5", "1"],
        ["3", "32", "fbs", "SHIPMENT_TYPE_GENERAL", "5", "1"],
    ]


def test_a_rejected_item_with_a_readable_product_id_holds_its_product_and_stock_keys(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(7, "bad\x00offer", stock(71), stock("x"))))
    report = validate_run(staging)
    assert report.sources["stocks"].held == 2
    assert tsv(staging, "model", "held_products.tsv") == [["7"]]
    assert tsv(staging, "model", "held_stock_by_type.tsv") == [["71", "fbo", "SHIPMENT_TYPE_GENERAL"]]


def test_each_method_writes_the_columns_its_file_declares(staging):
    from ozon_inventory.sources import OZON_WAREHOUSES, SELLER_WAREHOUSES, STOCK_BY_WAREHOUSE

    stage(
        staging, "warehouse_stocks", V1_ANALYTICS_STOCKS, v1(v1_row(5, "Хоругвино", 9001, reserved_amount=3))
    )
    stage(
        staging,
        "warehouses",
        V2_WAREHOUSE_LIST,
        seller_list(
            {"warehouse_id": 3, "name": "rFBS*Екатеринбург", "is_rfbs": True, "working_days": ["MONDAY"]}
        ),
    )
    validate_run(staging)
    (row,) = tsv(staging, "model", STOCK_BY_WAREHOUSE.file)
    assert dict(zip(STOCK_BY_WAREHOUSE.columns, row, strict=True)) == {
        "sku": "5",
        "warehouse_name": "Хоругвино",
        "warehouse_id": "9001",
        "free_to_sell": "4",
        "promised": "0",
        "reserved": "\\N",  # /v1/analytics/stocks gives no reserved: NULL, not 0
    }
    (wh,) = tsv(staging, "model", OZON_WAREHOUSES.file)
    assert dict(zip(OZON_WAREHOUSES.columns, wh, strict=True)) == {
        "name": "Хоругвино",
        "warehouse_id": "9001",
        "cluster_id": "7",
        "cluster_name": "Москва",
    }
    (seller,) = tsv(staging, "model", SELLER_WAREHOUSES.file)
    assert dict(zip(SELLER_WAREHOUSES.columns, seller, strict=True)) == {
        "warehouse_id": "3",
        "name": "rFBS*Екатеринбург",
        "is_rfbs": "t",
        "status": "\\N",
        "working_days": "1",
    }


def test_a_rejected_warehouse_value_holds_its_key(staging):
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(v2_row(1, "A", free=-3), v2_row("x", "B")))
    report = validate_run(staging)
    assert report.sources["warehouse_stocks"].held == 1
    assert tsv(staging, "model", "held_stock_by_warehouse.tsv") == [["1", "A"]]


def test_the_cross_source_check_compares_fbo_available_with_warehouse_free_to_sell(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11, present=5, reserved=1), stock(12, "fbs"))))
    stage(
        staging,
        "warehouse_stocks",
        V2_STOCK_ON_WAREHOUSES,
        v2(v2_row(11, "W1", free=3), v2_row(11, "W2", free=2)),
    )
    report = validate_run(staging)
    assert (report.mismatches, report.cross_checked_skus) == (1, 1)
    assert report.mismatch_examples == [{"sku": 11, "v4_available": 4, "warehouses_free_to_sell": 5}]


def test_an_answer_that_is_not_json_names_its_file_account_and_run(staging):
    stage(staging, "stocks", V4_STOCKS, "{not json")
    with pytest.raises(StagingError, match=r"account acc, run 20261122T100000Z: staged answer .*page-000001"):
        validate_run(staging)


def test_a_method_without_row_rules_is_a_config_error_naming_it(staging):
    stage(staging, "stocks", V2_WAREHOUSE_LIST, v4())
    with pytest.raises(
        ConfigError, match=r"account acc, run 20261122T100000Z: stocks was fetched with /v2/warehouse/list"
    ):
        validate_run(staging)


# -- the shrink guard -------------------------------------------------------------------------------


def loaded(as_of: str, rows: int, products: int) -> LoadedState:
    return LoadedState(datetime.fromisoformat(as_of), rows, products)


def test_the_shrink_guard_counts_products_for_stocks_and_rows_for_warehouse_stocks(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(v2_row(11, "W")))
    earlier = "2026-11-22T09:00:00+00:00"
    with pytest.raises(
        ShrinkGuardError, match=r"account acc, run 20261122T100000Z: .*stocks: 1 products against 10"
    ):
        validate_run(staging, {"stocks": loaded(earlier, 1, 10)})
    with pytest.raises(ShrinkGuardError, match=r"warehouse_stocks: 1 warehouse rows against 10"):
        validate_run(staging, {"warehouse_stocks": loaded(earlier, 10, 1)})
    validate_run(staging, {"stocks": loaded(earlier, 1, 10)}, allow_shrink=True)
    validate_run(staging, {"stocks": loaded(earlier, 1, 2)})  # half is within the default threshold


def test_a_source_older_than_what_is_loaded_is_stale_not_a_shrink(staging):
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    later = datetime(2026, 11, 23, tzinfo=UTC).isoformat()
    report = validate_run(staging, {"stocks": loaded(later, 100, 100)})
    assert report.sources["stocks"].status == "ok"  # the load marks it stale and does not apply it


def test_a_full_disk_names_the_file_validate_was_writing(staging, monkeypatch):
    from ozon_inventory.exceptions import StagingWriteError

    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11))))
    real = StagingArea.open_write

    def full(self, folder, name):
        handle = real(self, folder, name)
        if name == "stock_by_type.tsv":

            def write(_text):
                raise OSError(28, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr(StagingArea, "open_write", full)
    with pytest.raises(
        StagingWriteError, match=r"cannot write .*/acc/20261122T100000Z/model/stock_by_type.tsv: No space"
    ) as caught:
        validate_run(staging)
    assert not caught.value.permanent  # a retry succeeds once space is freed


def test_a_cross_check_compares_every_key_of_either_source_and_shows_the_smallest_first():
    from ozon_inventory.sources import CHECKS
    from ozon_inventory.validate import ValidationReport, _cross_check, _tally

    check = CHECKS[0]
    report = ValidationReport("acc", "run", {})
    expected = _tally({5: 3, 1: 2, 9: 0, 7: 4, 2**62: 1})
    actual = _tally({1: 2, 5: 4, 8: 1, 7: 4})  # 8 only here; 9 (sum 0) and 2**62 only there
    _cross_check(report, check, expected, actual)
    assert report.mismatches == 3
    assert report.checks[check.name] == {"skus": 6, "mismatches": 3}
    assert [(e["sku"], e[check.expected_label], e[check.actual_label]) for e in report.mismatch_examples] == [
        (5, 3, 4),
        (8, 0, 1),
        (2**62, 1, 0),
    ]


# -- a whole answer at once: the same files as row by row -------------------------------------------


def _plain_v2_rows(first_sku: int, count: int) -> list[dict]:
    warehouses = ["ХОРУГВИНО_РФЦ", "Тверь_РФЦ", "PUSHKINO_2_RFC"]
    return [
        v2_row(sku, warehouses[sku % 3], free=sku % 7, promised=sku % 3, reserved=sku % 2)
        for sku in range(first_sku, first_sku + count)
    ]


#: one row of a plain answer changed; the answer then goes row by row, kept or rejected as ever
_NOT_PLAIN = {
    "sku as digits": {"sku": "105"},
    "sku zero": {"sku": 0},
    "sku a bool": {"sku": True},
    "sku a float": {"sku": 105.0},
    "sku past int64": {"sku": 2**63},
    "an unknown field": {"новое_поле": 1},
    "a name to escape": {"warehouse_name": "A\tB"},
    "a blank name": {"warehouse_name": "  "},
    "a long name": {"warehouse_name": "Ж" * 600},
    "a lone surrogate": {"warehouse_name": "A\ud800"},
    "an item name to escape": {"item_name": "a\\b\nc"},
    "an item name with NUL": {"item_name": "a\x00b"},
    "an item name that is a number": {"item_name": 5},
    "an item code that is a number": {"item_code": 5},
    "a negative amount": {"reserved_amount": -1},
    "an amount past int32": {"promised_amount": 2**31},
    "an amount that is null": {"free_to_sell_amount": None},
}


def _outputs(staging: StagingArea) -> dict[str, bytes]:
    """Every file validate wrote, and its report without timings."""
    files = {
        f"{folder}/{path.name}": path.read_bytes()
        for folder in ("validated", "model")
        for path in sorted(staging.dir(folder).iterdir())
        if path.name != "report.json"
    }
    report = json.loads((staging.dir("validated") / "report.json").read_text())
    for source in report["sources"].values():
        source.pop("check_s", None)
    files["report"] = json.dumps(report, sort_keys=True).encode()
    return files


def test_a_plain_answer_is_checked_at_once_and_writes_what_row_by_row_writes(tmp_path, monkeypatch):
    """Answers that are plain (taken at once), not plain in each way a row can fail to be (row by
    row), and rows repeated within and across answers: the same files, rejects and report either way."""
    from dataclasses import replace

    from ozon_inventory.sources import WAREHOUSE_STOCKS, v2_warehouse_page

    answers = [v2(*_plain_v2_rows(100, 40)), v2(*_plain_v2_rows(140, 40), *_plain_v2_rows(150, 2))]
    for number, change in enumerate(_NOT_PLAIN.values()):
        rows = _plain_v2_rows(1000 + 10 * number, 5)
        rows[2] = rows[2] | change
        answers.append(v2(*rows))
    answers.append(v2(*_plain_v2_rows(120, 1), {"sku": 5000, "warehouse_name": "Без сумм"}))
    answers.append(v2())
    path = "/v2/analytics/stock_on_warehouses"
    rules = WAREHOUSE_STOCKS.methods[path]
    taken: list[bool] = []

    def page(rows, out):
        taken.append(v2_warehouse_page(rows, out))
        return taken[-1]

    results = {}
    for way, page_rule in (("at once", page), ("row by row", None)):
        monkeypatch.setitem(WAREHOUSE_STOCKS.methods, path, replace(rules, page=page_rule))
        staging = StagingArea(str(tmp_path / way), "acc", "20261122T100000Z")
        stage(staging, "warehouse_stocks", path, *answers)
        report = validate_run(staging)
        results[way] = _outputs(staging)
    # the first pass, then the pass that resolves the repeated keys (row by row, as it must)
    first = taken[: len(answers)]
    assert first == [True, True, *[False] * len(_NOT_PLAIN), False, True]  # a row without amounts
    assert not any(taken[len(answers) :])
    # SKU "105" and 105.0 are readable: they repeat SKU 105 of the first answer
    assert [reason for _, reason, _ in rejects(staging)] == [
        "duplicate row for sku 150 in warehouse 'ХОРУГВИНО_РФЦ'",
        "duplicate row for sku 151 in warehouse 'Тверь_РФЦ'",
        "duplicate row for sku 105 in warehouse 'ХОРУГВИНО_РФЦ'",
        "sku out of range 1..9223372036854775807: 0",
        "sku is not an integer: True",
        "duplicate row for sku 105 in warehouse 'ХОРУГВИНО_РФЦ'",
        "sku out of range 1..9223372036854775807: 9223372036854775808",
        "warehouse_name is empty",
        "warehouse_name holds a lone surrogate, which is not valid Unicode text",
        "item_name is not a string: 5",
        "item_code is not a string: 5",
        "reserved_amount out of range 0..2147483647: -1",
        "promised_amount out of range 0..2147483647: 2147483648",
        "free_to_sell_amount is missing",
        "duplicate row for sku 120 in warehouse 'ХОРУГВИНО_РФЦ'",
        "free_to_sell_amount is missing",  # never read as 0
    ]
    rows_in = sum(len(answer["result"]["rows"]) for answer in answers)
    assert report.sources["warehouse_stocks"].rows_valid == rows_in - 16
    assert report.sources["warehouse_stocks"].missing_fields == {"free_to_sell_amount": 2}
    assert results["at once"] == results["row by row"]


# -- a field the source needs: missing is a reason, never 0, false or "no stock rows" ---------------

_GOOD_ROWS = {
    V4_STOCKS: lambda n: item(n, f"offer-{n}", stock(10 * n)),
    V2_STOCK_ON_WAREHOUSES: lambda n: v2_row(n, "W"),
    V1_ANALYTICS_STOCKS: lambda n: v1_row(n, "W", 9),
    "/v1/product/info/stocks-by-warehouse/fbo": lambda n: {
        "sku": n,
        "warehouse_id": 9,
        "present": 3,
        "reserved": 1,
        "offer_id": f"offer-{n}",
        "product_id": 500 + n,
    },
    V2_WAREHOUSE_LIST: lambda n: {
        "warehouse_id": n,
        "name": f"Склад {n}",
        "is_rfbs": False,
        "status": "created",
        "working_days": ["MONDAY"],
    },
    "/v1/warehouse/list": lambda n: {
        "warehouse_id": n,
        "name": f"Склад {n}",
        "is_rfbs": True,
        "status": "created",
        "working_days": [1, 2],
    },
}


def _answer(path: str, rows: list[dict]) -> dict:
    from ozon_inventory.methods import method

    answer: dict[str, Any] = {"cursor": "", "has_next": False}
    node = answer
    at = method(path).rows_at
    for key in at[:-1]:
        node = node.setdefault(key, {})
    node[at[-1]] = rows
    return answer


def _required_fields() -> list[tuple[str, str | None, str]]:
    from ozon_inventory.methods import METHODS

    return [
        (path, record.within, name)
        for path in _GOOD_ROWS
        for record in METHODS[path].records
        for name in record.required
    ]


@pytest.mark.parametrize(("path", "within", "name"), _required_fields())
def test_a_row_without_a_field_its_source_needs_is_rejected_naming_it(staging, path, within, name):
    """Every field methods.py calls required: absent or null, the row is rejected with the field's
    name and counted, the other rows load; a readable key is held (its last good value kept)."""
    from ozon_inventory.methods import method

    source = method(path).source
    for value in ("absent", None):
        good, bad = _GOOD_ROWS[path](1), _GOOD_ROWS[path](2)
        target = bad[within][0] if within else bad
        if value == "absent":
            del target[name]
        else:
            target[name] = None
        stage(staging, source, path, _answer(path, [good, bad]))
        report = validate_run(staging).sources[source]
        assert report.rejects == 1 and report.rows_valid == 1, (value, rejects(staging))
        assert [reason for _, reason, _ in rejects(staging)] == [f"{name} is missing"]
        assert report.missing_fields == {name: 1}


def test_an_item_without_stocks_holds_its_product_instead_of_having_no_stock(staging):
    without = item(2, "B")
    del without["stocks"]
    stage(staging, "stocks", V4_STOCKS, v4(item(1, "A", stock(11)), without))
    report = validate_run(staging)
    assert (report.sources["stocks"].products, report.sources["stocks"].rejects) == (1, 1)
    assert tsv(staging, "model", "held_products.tsv") == [["2"]]
    assert rejects(staging)[0][1] == "stocks is missing"


def test_a_seller_warehouse_flag_is_a_boolean_never_a_guess(staging):
    rows = [_GOOD_ROWS[V2_WAREHOUSE_LIST](n) for n in (1, 2, 3)]
    rows[1]["is_rfbs"], rows[2]["is_rfbs"] = "true", "yes"
    stage(staging, "warehouses", V2_WAREHOUSE_LIST, seller_list(*rows))
    validate_run(staging)
    assert [r[2] for r in tsv(staging, "model", "seller_warehouses.tsv")] == ["f", "t"]
    assert rejects(staging)[0][1] == "is_rfbs is not a boolean: 'yes'"


def test_a_shrink_that_comes_with_missing_fields_is_a_changed_answer_not_a_shrink(staging):
    """Issue 29: the guard never advises allow_shrink when the rows are gone because Ozon's answer
    changed shape; that error comes first, and allow_shrink cannot load it."""
    from ozon_inventory.exceptions import OzonSchemaChanged

    renamed = [v2_row(n, "W") for n in range(1, 9)]
    for row in renamed[:6]:
        row["free_to_sell_qty"] = row.pop("free_to_sell_amount")
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(*renamed))
    before = {"warehouse_stocks": loaded("2026-11-22T09:00:00+00:00", 8, 8)}
    for allow in (False, True):
        with pytest.raises(OzonSchemaChanged) as caught:
            validate_run(staging, before, allow_shrink=allow)
        text = str(caught.value)
        assert caught.value.field == "free_to_sell_amount" and caught.value.permanent
        assert "6 of 8 rows lack 'free_to_sell_amount'" in text and "2 warehouse rows against 8" in text
        assert "allow_shrink" not in text and "rejects.tsv" in text
    stage(staging, "warehouse_stocks", V2_STOCK_ON_WAREHOUSES, v2(*[v2_row(n, "W") for n in range(1, 3)]))
    with pytest.raises(ShrinkGuardError, match="allow_shrink=true"):  # a real shrink: the advice stays
        validate_run(staging, before)
