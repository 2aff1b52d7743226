"""Validate the staged answers of one account's run: typed, COPY-ready rows plus rejects with reasons.

The rules are about values, not characters: SKUs and ids are int64 (JSON numbers or strings),
quantities non-negative integers; offer ids, item names and warehouse names may hold any Unicode,
punctuation, underscores or asterisks and are never flagged for "special characters". A row that
breaks a rule goes to ``rejects.tsv`` with its source, reason and raw record; it is never dropped
silently and never fails the run. Unknown fields and enum values are kept and counted.

Two checks look at the whole snapshot: the shrink guard (far fewer products or rows than the
account's last good snapshot fails, so a partial answer never wipes good data) and the cross-source
check (per FBO SKU, warehouse-level stock against v4 stock; counted, not fatal).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from ozon_inventory.exceptions import ShrinkGuardError, StagingError
from ozon_inventory.methods import V1_ANALYTICS_STOCKS, V1_WAREHOUSE_LIST
from ozon_inventory.staging import SOURCES, Manifest, StagingArea

log = logging.getLogger(__name__)

INT64 = (1, 2**63 - 1)
QUANTITY = (0, 2**31 - 1)
STOCK_TYPES = frozenset({"fbo", "fbs", "rfbs", "fbp"})
SHIPMENT_TYPES = frozenset({"SHIPMENT_TYPE_GENERAL", "SHIPMENT_TYPE_BOX", "SHIPMENT_TYPE_PALLET"})
WAREHOUSE_STATUSES = frozenset({"new", "created", "disabled", "blocked", "disabled_due_to_limit", "error"})
_DAYS = {"MONDAY": 1, "TUESDAY": 2, "WEDNESDAY": 3, "THURSDAY": 4, "FRIDAY": 5, "SATURDAY": 6, "SUNDAY": 7}

KNOWN_FIELDS = {
    "stocks.item": frozenset({"offer_id", "product_id", "stocks"}),
    "stocks.stock": frozenset({"present", "reserved", "shipment_type", "sku", "type", "warehouse_ids"}),
    "warehouse_stocks.v2": frozenset(
        {
            "sku",
            "warehouse_name",
            "item_code",
            "item_name",
            "promised_amount",
            "free_to_sell_amount",
            "reserved_amount",
            "idc",
        }
    ),
    "warehouse_stocks.v1": frozenset(
        {
            "sku",
            "offer_id",
            "name",
            "warehouse_id",
            "warehouse_name",
            "cluster_id",
            "cluster_name",
            "macrolocal_cluster_id",
            "available_stock_count",
            "valid_stock_count",
            "waiting_docs_stock_count",
            "expiring_stock_count",
            "transit_defect_stock_count",
            "stock_defect_stock_count",
            "excess_stock_count",
            "other_stock_count",
            "requested_stock_count",
            "transit_stock_count",
            "return_from_customer_stock_count",
            "return_to_seller_stock_count",
            "ads",
            "ads_cluster",
            "idc",
            "idc_cluster",
            "days_without_sales",
            "days_without_sales_cluster",
            "turnover_grade",
            "turnover_grade_cluster",
            "item_tags",
        }
    ),
}

_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


class Reject(ValueError):
    """A row that breaks a rule; the message is the reason stored with it."""


def as_int(value: Any, name: str, bounds: tuple[int, int]) -> int:
    """An integer from a JSON number or a string of digits, within ``bounds``."""
    if type(value) is int:
        number = value
    elif (isinstance(value, str) and value.strip().lstrip("-").isdigit()) or (
        isinstance(value, float) and value.is_integer()
    ):
        number = int(value)
    else:
        raise Reject(f"{name} is not an integer: {value!r}")
    if not bounds[0] <= number <= bounds[1]:
        raise Reject(f"{name} out of range {bounds[0]}..{bounds[1]}: {number}")
    return number


def as_text(value: Any, name: str, required: bool = True) -> str:
    """Text for a COPY field: any Unicode is fine; only a missing value or a NUL byte is not."""
    if value is None:
        if required:
            raise Reject(f"{name} is missing")
        return ""
    if not isinstance(value, str):
        raise Reject(f"{name} is not a string: {value!r}")
    if required and not value.strip():
        raise Reject(f"{name} is empty")
    if "\x00" in value:
        if required:  # a key field: storing it altered would mis-key the row
            raise Reject(f"{name} holds a NUL character, which PostgreSQL text cannot store")
        value = value.replace("\x00", "\ufffd")  # descriptive text: keep the row, mark the spot
    return value.translate(_ESCAPE)


def working_days(value: Any) -> str:
    """``working_days`` as ints, digit strings or day names (v2) → "1,2,3"."""
    if value is None:
        return ""
    if not isinstance(value, list):
        raise Reject(f"working_days is not an array: {value!r}")
    days = []
    for day in value:
        if isinstance(day, str) and day.upper() in _DAYS:
            days.append(_DAYS[day.upper()])
        elif isinstance(day, str) and day.upper() == "UNSPECIFIED":
            continue
        else:
            days.append(as_int(day, "working_days[]", (1, 7)))
    return ",".join(str(d) for d in sorted(set(days)))


@dataclass
class SourceReport:
    status: str  # "ok", "missing" (the fetch did not complete) or "skipped" (nothing archived)
    method: str | None = None
    as_of: str | None = None
    fallback_from: str | None = None
    rows_in: int = 0
    rows_valid: int = 0
    rejects: int = 0
    products: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    unknown_values: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    account: str
    run_key: str
    sources: dict[str, SourceReport]
    mismatches: int = 0
    mismatch_examples: list[dict[str, Any]] = field(default_factory=list)
    cross_checked_skus: int = 0

    @property
    def missing(self) -> list[str]:
        return [s for s, r in self.sources.items() if r.status != "ok"]

    @property
    def rejects(self) -> int:
        return sum(r.rejects for r in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["missing"] = self.missing
        out["rejects"] = self.rejects
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        sources = {k: SourceReport(**v) for k, v in data["sources"].items()}
        keep = {k: data[k] for k in ("mismatches", "mismatch_examples", "cross_checked_skus") if k in data}
        return cls(data["account"], data["run_key"], sources, **keep)


class _Writer:
    """Collects valid lines and rejects of one source, counting unknown fields and values."""

    def __init__(self, out: TextIO, rejects: TextIO, source: str, report: SourceReport):
        self.out, self.rejects_out, self.source, self.report = out, rejects, source, report
        self.unknown_fields: Counter[str] = Counter()
        self.unknown_values: Counter[str] = Counter()

    def reject(self, reason: str, record: Any) -> None:
        self.report.rejects += 1
        # jsonb cannot hold \u0000: keep it visible as the six characters instead
        raw = json.dumps(record, ensure_ascii=False, default=str).replace("\\u0000", "\\\\u0000")
        self.rejects_out.write(f"{self.source}\t{reason.translate(_ESCAPE)}\t{raw.translate(_ESCAPE)}\n")

    def fields(self, kind: str, record: dict[str, Any]) -> None:
        known = KNOWN_FIELDS[kind]
        if known.issuperset(record):  # the common case costs one C-level check
            return
        for key in record:
            if key not in known:
                self.unknown_fields[f"{kind}.{key}"] += 1

    def finish(self) -> None:
        self.report.unknown_fields = dict(self.unknown_fields)
        self.report.unknown_values = dict(self.unknown_values)
        if self.unknown_fields or self.unknown_values:
            log.info(
                "%s: kept unknown fields %s and values %s",
                self.source,
                self.report.unknown_fields,
                self.report.unknown_values,
            )


def _each_record(staging: StagingArea, manifest: Manifest, extract: Callable[[dict], list[Any]]):
    for number, (name, raw) in enumerate(staging.pages(manifest)):
        try:
            data = json.loads(raw)
            records = extract(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StagingError(
                f"staged answer {name} of {manifest.source} is not a valid answer: {exc}"
            ) from exc
        # pages after the first repeat the previous page's last rows (offset paging's overlap)
        yield from records[manifest.overlap :] if number else records


def _validate_stocks(staging, manifest, w: _Writer, fbo_expected: dict[int, int]) -> None:
    seen: set[tuple[int, str, str]] = set()
    products: set[int] = set()
    out_lines: list[str] = []
    for item in _each_record(staging, manifest, lambda d: d.get("items") or []):
        w.report.rows_in += 1
        try:
            if not isinstance(item, dict):
                raise Reject("item is not an object")
            w.fields("stocks.item", item)
            product_id = as_int(item.get("product_id"), "product_id", INT64)
            offer_id = as_text(item.get("offer_id"), "offer_id")
            stocks = item.get("stocks") or []
            if not isinstance(stocks, list):
                raise Reject("stocks is not an array")
        except Reject as exc:
            w.reject(str(exc), item)
            continue
        products.add(product_id)
        for stock in stocks:
            try:
                if not isinstance(stock, dict):
                    raise Reject("stocks[] entry is not an object")
                w.fields("stocks.stock", stock)
                sku = as_int(stock.get("sku"), "sku", INT64)
                stype = as_text(stock.get("type"), "type")
                if stype not in STOCK_TYPES:
                    w.unknown_values[f"type={stype}"] += 1
                shipment = stock.get("shipment_type") or "SHIPMENT_TYPE_GENERAL"
                shipment = as_text(shipment, "shipment_type")
                if shipment not in SHIPMENT_TYPES:
                    w.unknown_values[f"shipment_type={shipment}"] += 1
                present = as_int(stock.get("present", 0), "present", QUANTITY)
                reserved = as_int(stock.get("reserved", 0), "reserved", QUANTITY)
                key = (sku, stype, shipment)
                if key in seen:
                    raise Reject(f"duplicate stock entry for sku {sku}, type {stype}, {shipment}")
            except Reject as exc:
                w.reject(
                    str(exc),
                    {"product_id": item.get("product_id"), "offer_id": item.get("offer_id"), "stock": stock},
                )
                continue
            seen.add(key)
            if stype == "fbo":
                fbo_expected[sku] = fbo_expected.get(sku, 0) + present - reserved
            out_lines.append(f"{product_id}\t{offer_id}\t{sku}\t{stype}\t{shipment}\t{present}\t{reserved}\n")
            w.report.rows_valid += 1
        if len(out_lines) >= 5000:
            w.out.write("".join(out_lines))
            out_lines.clear()
    w.out.write("".join(out_lines))
    w.report.products = len(products)


def _validate_warehouse_stocks(staging, manifest, w: _Writer, fbo_actual: dict[int, int]) -> None:
    v1 = manifest.method == V1_ANALYTICS_STOCKS
    kind = "warehouse_stocks.v1" if v1 else "warehouse_stocks.v2"
    extract = (
        (lambda d: d.get("items") or []) if v1 else (lambda d: (d.get("result") or {}).get("rows") or [])
    )
    seen: set[tuple[int, str]] = set()
    out_lines: list[str] = []
    for row in _each_record(staging, manifest, extract):
        w.report.rows_in += 1
        try:
            if not isinstance(row, dict):
                raise Reject("row is not an object")
            w.fields(kind, row)
            sku = as_int(row.get("sku"), "sku", INT64)
            name = as_text(row.get("warehouse_name"), "warehouse_name")
            if v1:
                wh_id = str(as_int(row.get("warehouse_id"), "warehouse_id", INT64))
                code = as_text(row.get("offer_id"), "offer_id", required=False)
                item_name = as_text(row.get("name"), "name", required=False)
                free = as_int(row.get("available_stock_count", 0), "available_stock_count", QUANTITY)
                promised = as_int(
                    row.get("requested_stock_count", 0), "requested_stock_count", QUANTITY
                ) + as_int(row.get("transit_stock_count", 0), "transit_stock_count", QUANTITY)
                reserved = NULL
                cluster_id = (
                    str(as_int(row["cluster_id"], "cluster_id", INT64)) if row.get("cluster_id") else NULL
                )
                cluster_name = as_text(row.get("cluster_name"), "cluster_name", required=False) or NULL
            else:
                wh_id = NULL
                code = as_text(row.get("item_code"), "item_code", required=False)
                item_name = as_text(row.get("item_name"), "item_name", required=False)
                free = as_int(row.get("free_to_sell_amount", 0), "free_to_sell_amount", QUANTITY)
                promised = as_int(row.get("promised_amount", 0), "promised_amount", QUANTITY)
                reserved = str(as_int(row.get("reserved_amount", 0), "reserved_amount", QUANTITY))
                cluster_id = cluster_name = NULL
            if (sku, name) in seen:
                raise Reject(f"duplicate row for sku {sku} in warehouse {row.get('warehouse_name')!r}")
        except Reject as exc:
            w.reject(str(exc), row)
            continue
        seen.add((sku, name))
        fbo_actual[sku] = fbo_actual.get(sku, 0) + free
        out_lines.append(
            f"{sku}\t{name}\t{wh_id}\t{code}\t{item_name}\t{free}\t{promised}\t{reserved}\t{cluster_id}\t{cluster_name}\n"
        )
        w.report.rows_valid += 1
        if len(out_lines) >= 5000:
            w.out.write("".join(out_lines))
            out_lines.clear()
    w.out.write("".join(out_lines))
    w.report.products = len({sku for sku, _ in seen})


def _validate_warehouses(staging, manifest, w: _Writer) -> None:
    v1 = manifest.method == V1_WAREHOUSE_LIST
    extract = (lambda d: d.get("result") or []) if v1 else (lambda d: d.get("warehouses") or [])
    seen: set[int] = set()
    for row in _each_record(staging, manifest, extract):
        w.report.rows_in += 1
        try:
            if not isinstance(row, dict):
                raise Reject("warehouse is not an object")
            wh_id = as_int(row.get("warehouse_id"), "warehouse_id", INT64)
            name = as_text(row.get("name"), "name")
            status = as_text(row.get("status") or "", "status", required=False).lower()
            if status and status not in WAREHOUSE_STATUSES:
                w.unknown_values[f"status={status}"] += 1
            is_rfbs = bool(row.get("is_rfbs"))
            days = working_days(row.get("working_days"))
            if wh_id in seen:
                raise Reject(f"duplicate warehouse {wh_id}")
        except Reject as exc:
            w.reject(str(exc), row)
            continue
        seen.add(wh_id)
        w.out.write(f"{wh_id}\t{name}\t{'t' if is_rfbs else 'f'}\t{status or NULL}\t{days}\n")
        w.report.rows_valid += 1


def validate_run(
    staging: StagingArea,
    previous_rows: dict[str, int] | None = None,
    shrink_threshold: float = 0.5,
    allow_shrink: bool = False,
    skipped: set[str] | None = None,
) -> ValidationReport:
    """Validate every staged source of the run and write ``validated/``.

    ``previous_rows`` are the row counts of the account's last good snapshot per source (products
    for ``stocks``); a source below ``(1 - shrink_threshold)`` of it raises ``ShrinkGuardError``
    unless ``allow_shrink``.
    """
    report = ValidationReport(staging.account, staging.run_key, {})
    fbo_expected: dict[int, int] = {}
    fbo_actual: dict[int, int] = {}
    with staging.open_write("validated", "rejects.tsv") as rejects:
        for source in SOURCES:
            manifest = staging.manifest(source)
            if manifest is None:
                status = "skipped" if skipped and source in skipped else "missing"
                report.sources[source] = SourceReport(status)
                continue
            src = SourceReport(
                "ok", manifest.method, manifest.as_of, manifest.fallback_from, requests=manifest.requests
            )
            report.sources[source] = src
            with staging.open_write("validated", f"{source}.tsv") as out:
                writer = _Writer(out, rejects, source, src)
                if source == "stocks":
                    _validate_stocks(staging, manifest, writer, fbo_expected)
                elif source == "warehouse_stocks":
                    _validate_warehouse_stocks(staging, manifest, writer, fbo_actual)
                else:
                    _validate_warehouses(staging, manifest, writer)
                writer.finish()
    if report.sources["stocks"].status == "ok" and report.sources["warehouse_stocks"].status == "ok":
        _cross_check(report, fbo_expected, fbo_actual)
    staging.write_json("validated", "report.json", report.as_dict())
    _shrink_guard(report, previous_rows or {}, shrink_threshold, allow_shrink)
    return report


def _cross_check(report: ValidationReport, expected: dict[int, int], actual: dict[int, int]) -> None:
    """Per FBO SKU: v4 ``present - reserved`` against the warehouse rows' ``free_to_sell`` sum."""
    examples = []
    mismatches = 0
    skus = expected.keys() | actual.keys()
    for sku in skus:
        want, got = expected.get(sku, 0), actual.get(sku, 0)
        if want != got:
            mismatches += 1
            if len(examples) < 10:
                examples.append({"sku": sku, "v4_available": want, "warehouses_free_to_sell": got})
    report.mismatches = mismatches
    report.mismatch_examples = sorted(examples, key=lambda e: e["sku"])
    report.cross_checked_skus = len(skus)
    if mismatches:
        log.warning(
            "cross-source check: %d of %d FBO SKUs differ between v4 and warehouse stock, e.g. %s",
            mismatches,
            len(skus),
            report.mismatch_examples[:3],
        )


def _shrink_guard(report: ValidationReport, previous: dict[str, int], threshold: float, allow: bool) -> None:
    problems = []
    for source in ("stocks", "warehouse_stocks"):
        src = report.sources.get(source)
        before = previous.get(source)
        if src is None or src.status != "ok" or not before:
            continue
        now = src.products if source == "stocks" else src.rows_valid
        if now < before * (1 - threshold):
            unit = "products" if source == "stocks" else "warehouse rows"
            problems.append(f"{source}: {now} {unit} against {before} in the last good snapshot")
    if problems and not allow:
        raise ShrinkGuardError(
            f"account {report.account}, run {report.run_key}: snapshot shrank by more than "
            f"{threshold:.0%} ({'; '.join(problems)}); nothing was loaded. If the catalogue really "
            "shrank, trigger the run again with the param allow_shrink=true."
        )
    if problems:
        log.warning("shrink guard overridden by allow_shrink: %s", "; ".join(problems))
