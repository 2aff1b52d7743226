"""What the project knows about each Ozon Seller API method it calls: one frozen record per method.

The client's pagers, the fetches, validation and the DAG's params all read this table, so a change
at Ozon (a new page limit, a successor, a method switched off) is one edit here. Facts come from the
official OpenAPI documents and the project's API notes; the simulator keeps its own, independent
description of Ozon on purpose (it is the check on this table), and the contract tests hold both to
the official schemas.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

import orjson

from ozon_inventory.exceptions import ConfigError


def parse_answer(raw: bytes) -> Any:
    """An answer's JSON: orjson, fast and strict; Python's reader where orjson refuses what Python
    accepts (``NaN``, ``1e400``, integers beyond 64 bits, lone surrogates), so such a value rejects
    its row in validation, not the page. The client and validate parse with this, so an answer
    checked as it lands and the same answer read back from staging are the same rows."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class ShapeError(ValueError):
    """An answer without the place its rows sit (absent, null, or not a list): never "no rows"."""

    def __init__(self, field: str, detail: str, fields: list[str] | None = None):
        super().__init__(detail)
        self.field = field
        self.fields = fields or []  # the field names where the rows were looked for


@dataclass(frozen=True)
class ShapeProblem:
    """What makes an answer one the pipeline must not read: the field, in words, and an example."""

    field: str
    detail: str
    example: Any  # the record (or the answer's field names) that shows it


@dataclass(frozen=True)
class Record:
    """One kind of record in a method's answers and the fields the pipeline relies on.

    A record without a ``required`` field is rejected naming it (validation); an answer where most
    records lack one, or where an ``expected`` field is gone from most while a field the documents
    do not name came instead, is a changed answer (``OzonMethod.shape_problem``). ``known`` is
    every documented field, deprecated ones included (anything else is counted as drift).
    """

    kind: str  # "stocks.item": the name validation counts unknown fields under
    what: str  # what the records are called in a message: "items", "rows"
    required: tuple[str, ...]
    expected: tuple[str, ...] = ()
    known: frozenset[str] = frozenset()
    within: str | None = None  # the field of each row that lists these records (None: the rows)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", self.known | set(self.required) | set(self.expected))

    @cached_property
    def _must(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.expected)

    def problem(self, records: list[Any]) -> ShapeProblem | None:
        """The first field most of ``records`` lack (a required one), or that vanished while an
        unknown one came (an expected one); None for records of the documented shape."""
        must = self._must
        if all(type(r) is dict and r.keys() >= must and None not in r.values() for r in records):
            return None  # the common case: one C-level check per record
        total = len(records)
        rows = [r for r in records if type(r) is dict]
        not_objects = total - len(rows)
        new = Counter(k for r in rows if not self.known.issuperset(r) for k in r if k not in self.known)
        came = [str(k) for k, count in new.most_common() if count * 2 > total]
        for name in self.required:
            absent = not_objects + [r.get(name) for r in rows].count(None)
            if absent * 2 > total:
                return self._changed(name, absent, total, records, came)
        for name in self.expected:
            absent = not_objects + sum(name not in r for r in rows)
            if absent * 2 > total and came:
                return self._changed(name, absent, total, records, came)
        return None

    def _changed(
        self, name: str, absent: int, total: int, records: list[Any], came: list[str]
    ) -> ShapeProblem:
        example = next(r for r in records if type(r) is not dict or r.get(name) is None)
        instead = (
            f", and {', '.join(map(repr, came[:3]))}, which the documents do not name, came instead"
            if came
            else ""
        )
        return ShapeProblem(name, f"{name!r} is missing in {absent} of {total} {self.what}{instead}", example)


class Paging(StrEnum):
    """How a method pages, which decides the pager the client uses for it."""

    #: ``cursor`` + ``limit``; ends on an empty page, an empty cursor or a short page (no ``has_next``).
    CURSOR = "cursor"
    #: ``cursor`` + ``limit``; ends when ``has_next`` is false.
    CURSOR_HAS_NEXT = "cursor_has_next"
    #: ``limit`` + ``offset`` with no total; ends on a short page.
    OFFSET = "offset"
    #: no paging: the request names up to ``page_limit`` SKUs, and the caller batches them.
    SKU_BATCHES = "sku_batches"
    #: one answer, no paging (account facts such as the key's roles and expiry).
    SINGLE = "single"


@dataclass(frozen=True)
class OzonMethod:
    """One Ozon method: where it is, how it pages, where its rows sit, and what replaces it."""

    path: str
    source: str  # the project's source it feeds: "stocks", "warehouse_stocks" or "warehouses"
    choice: str  # its name in the DAG's method params ("v2", "v1", ...)
    paging: Paging
    page_limit: int
    rows_at: tuple[str, ...]  # keys leading from the answer to its list of rows
    rate_limit: tuple[float, float] | None = None  # its own limit: (requests, per seconds)
    parallel: bool = False  # pages or batches may be requested several at a time
    row_key: tuple[str, ...] = ()  # fields that identify a row: one seen twice means data moved
    total_at: tuple[str, ...] = ()  # fields holding the answer's total count, preferred first
    successor: str | None = None  # the method Ozon announced to replace it
    request: Mapping[str, Any] | None = None  # fixed request fields besides paging
    note: str = ""
    #: other places the rows may sit, where the documents disagree (tried in order after ``rows_at``)
    rows_also_at: tuple[tuple[str, ...], ...] = ()
    #: fields every answer carries besides its rows (paging reads them: a missing one would end it)
    answer_fields: tuple[str, ...] = ()
    #: the records of its answers and the fields the pipeline relies on (the rows' kind first)
    records: tuple[Record, ...] = ()

    def key_of(self, row: Any) -> tuple[str, ...] | None:
        """The row's ``row_key`` values as text (None for a row that is not an object)."""
        if not isinstance(row, dict):
            return None
        return tuple(str(row.get(k)) for k in self.row_key)

    def keys_of(self, rows: list[Any]) -> list[tuple[str, ...] | None]:
        """``key_of`` of each row, a column at a time (a thousand rows per answer)."""
        if not all(type(row) is dict for row in rows):
            return [self.key_of(row) for row in rows]
        return list(zip(*([str(row.get(k)) for row in rows] for k in self.row_key), strict=True))

    def rows(self, data: Any) -> list[Any]:
        """The answer's rows; ``ShapeError`` when they are not where the documents put them (an
        answer without its rows is not an answer with none)."""
        for path in self.rows_also_at:
            if isinstance(data, dict) and path[0] in data and self.rows_at[0] not in data:
                return self._rows_at(data, path)
        return self._rows_at(data, self.rows_at)

    @staticmethod
    def _rows_at(data: Any, path: tuple[str, ...]) -> list[Any]:
        node = data
        for depth, key in enumerate(path):
            where = ".".join(path[: depth + 1])
            if not isinstance(node, dict):
                raise ShapeError(where, f"expected an object holding {where!r}")
            parent, node = node, node.get(key)
            if node is None:
                within = f"{'.'.join(path[:depth])}'s" if depth else "its"
                names = sorted(map(str, parent))[:40]
                listed = f"{within} fields: {', '.join(names)}" if names else f"{within} fields: none"
                raise ShapeError(where, f"the answer has no {where!r} ({listed})", names)
        if not isinstance(node, list):
            raise ShapeError(".".join(path), f"{'.'.join(path)!r} is not an array")
        return node

    def has_rows(self, data: dict[str, Any]) -> bool:
        """Whether an answer names the place of its rows at all (Ozon's error bodies do not)."""
        return any(path[0] in data for path in (self.rows_at, *self.rows_also_at))

    def ozon_error(self, data: dict[str, Any]) -> tuple[Any, str] | None:
        """(code, message) when an answer is Ozon's error (``code`` and ``message``, no rows), even
        under HTTP 200; None otherwise (code 0 is gRPC's OK)."""
        if "code" not in data or "message" not in data or self.has_rows(data):
            return None
        return None if data["code"] in (0, "0", "OK") else (data["code"], str(data["message"]))

    def shape_problem(self, data: dict[str, Any]) -> ShapeProblem | None:
        """Why this answer must not be read as the method's rows, or None: its rows are not where
        they sit, a field paging reads is gone, or most records lack a field (``Record``)."""
        try:
            rows = self.rows(data)
        except ShapeError as exc:
            return ShapeProblem(exc.field, str(exc), exc.fields)
        for name in self.answer_fields:
            if data.get(name) is None:
                return ShapeProblem(
                    name, f"the answer has no {name!r}{_fields_of(data)}", sorted(map(str, data))[:40]
                )
        for record in self.records:
            if record.within is None:
                records = rows
            else:
                records = [
                    child
                    for row in rows
                    if type(row) is dict and type(row.get(record.within)) is list
                    for child in row[record.within]
                ]
            if records and (problem := record.problem(records)) is not None:
                return problem
        return None

    def known_fields(self) -> dict[str, frozenset[str]]:
        """Per record kind, every field the documents name (validation counts the others)."""
        return {record.kind: record.known for record in self.records}

    def total(self, data: dict[str, Any]) -> int | None:
        """The total an answer states (the first field of ``total_at`` that it carries)."""
        for key in self.total_at:
            value = data.get(key)
            if value is not None:
                try:
                    number = int(value)
                except (TypeError, ValueError):
                    return None
                return number if number >= 0 else None
        return None

    def check_limit(self, limit: int) -> int:
        if not 1 <= int(limit) <= self.page_limit:
            raise ValueError(f"page limit for {self.path} must be 1..{self.page_limit}, got {limit}")
        return int(limit)


def _fields_of(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    names = ", ".join(sorted(map(str, data))[:20])
    return f" (its fields: {names})" if names else " (it is empty)"


V4_STOCKS = "/v4/product/info/stocks"
V2_STOCK_ON_WAREHOUSES = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS_STOCKS = "/v1/analytics/stocks"
V1_WAREHOUSE_LIST = "/v1/warehouse/list"
V2_WAREHOUSE_LIST = "/v2/warehouse/list"
V1_ROLES = "/v1/roles"
V1_FBO_BY_WAREHOUSE = "/v1/product/info/stocks-by-warehouse/fbo"

#: what the pipeline stores of a seller warehouse, in both list methods (a missing flag is not false)
_SELLER_WAREHOUSE = ("warehouse_id", "name", "is_rfbs", "working_days")

_TABLE = (
    OzonMethod(
        V4_STOCKS,
        "stocks",
        "v4",
        Paging.CURSOR,
        1000,
        ("items",),
        row_key=("product_id",),
        total_at=("total_items", "total"),  # `total` is switched off on 23 Nov 2026
        request={"filter": {"visibility": "ALL"}},
        note="stock by type (fbo/fbs/rfbs/fbp) per product",
        answer_fields=("cursor",),
        records=(
            Record("stocks.item", "items", ("product_id", "offer_id", "stocks")),
            Record(
                "stocks.stock",
                "stocks[] entries",
                ("sku", "type", "present", "reserved"),
                expected=("shipment_type",),  # documented default SHIPMENT_TYPE_GENERAL
                known=frozenset({"warehouse_ids"}),  # deprecated 18 Dec 2025
                within="stocks",
            ),
        ),
    ),
    OzonMethod(
        V2_STOCK_ON_WAREHOUSES,
        "warehouse_stocks",
        "v2",
        Paging.OFFSET,
        1000,
        ("result", "rows"),
        parallel=True,
        row_key=("sku", "warehouse_name"),
        successor=V1_ANALYTICS_STOCKS,
        request={"warehouse_type": "ALL"},
        note="deprecated without a date; free to sell, promised and reserved per SKU and Ozon warehouse name",
        records=(
            Record(
                "warehouse_stocks.v2",
                "rows",
                ("sku", "warehouse_name", "free_to_sell_amount", "promised_amount", "reserved_amount"),
                expected=("item_code", "item_name"),
                known=frozenset({"idc"}),  # removed 28 Apr 2025, still in an example
            ),
        ),
    ),
    OzonMethod(
        V1_ANALYTICS_STOCKS,
        "warehouse_stocks",
        "v1",
        Paging.SKU_BATCHES,
        100,
        ("items",),
        parallel=True,
        note="available, requested and in-transit stock per SKU and Ozon warehouse id; no reserved",
        records=(
            Record(
                "warehouse_stocks.v1",
                "items",
                (
                    "sku",
                    "warehouse_name",
                    "warehouse_id",
                    "available_stock_count",
                    "requested_stock_count",
                    "transit_stock_count",
                ),
                expected=("offer_id", "name", "cluster_id", "cluster_name"),
                known=frozenset(
                    {
                        "macrolocal_cluster_id",
                        "valid_stock_count",
                        "waiting_docs_stock_count",
                        "expiring_stock_count",
                        "transit_defect_stock_count",
                        "stock_defect_stock_count",
                        "excess_stock_count",
                        "other_stock_count",
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
            ),
        ),
    ),
    OzonMethod(
        V1_FBO_BY_WAREHOUSE,
        "warehouse_stocks",
        "fbo",
        Paging.CURSOR_HAS_NEXT,
        1000,
        ("products",),
        rows_also_at=(("items",),),  # the schema is UNCONFIRMED: a generated SDK says products
        row_key=("sku", "warehouse_id"),
        note="beta since 2 Jul 2026; FBO present and reserved per SKU and Ozon warehouse id (no name)",
        answer_fields=("has_next",),
        records=(
            Record(
                "warehouse_stocks.fbo",
                "products",
                ("sku", "warehouse_id", "present", "reserved"),
                expected=("offer_id", "product_id"),
            ),
        ),
    ),
    OzonMethod(
        V2_WAREHOUSE_LIST,
        "warehouses",
        "v2",
        Paging.CURSOR_HAS_NEXT,
        200,
        ("warehouses",),
        note="the seller's own FBS/rFBS warehouses",
        answer_fields=("has_next",),
        records=(
            Record(
                "warehouses.v2",
                "warehouses",
                _SELLER_WAREHOUSE,
                expected=("status",),
                known=frozenset(
                    {
                        "warehouse_type",
                        "is_kgt",
                        "is_express",
                        "is_comfort",
                        "is_auto_assembly",
                        "is_waybill_enabled",
                        "with_item_list",
                        "has_entrusted_acceptance",
                        "has_postings_limit",
                        "postings_limit",
                        "min_postings_limit",
                        "cut_in_time",
                        "sla_cut_in",
                        "phone",
                        "courier_comment",
                        "courier_phones",
                        "carriage_label_type",
                        "first_mile",
                        "address_info",
                        "timetable",
                        "created_at",
                        "updated_at",
                    }
                ),
            ),
        ),
    ),
    OzonMethod(
        V1_WAREHOUSE_LIST,
        "warehouses",
        "v1",
        Paging.OFFSET,
        200,
        ("result",),
        rate_limit=(1, 60.0),
        successor=V2_WAREHOUSE_LIST,
        note="deprecated (switch-off announced for 7 Apr 2026); 1 request a minute",
        records=(
            Record(
                "warehouses.v1",
                "warehouses",
                _SELLER_WAREHOUSE,
                expected=("status",),
                known=frozenset(
                    {
                        "has_entrusted_acceptance",
                        "first_mile_type",
                        "is_kgt",
                        "can_print_act_in_advance",
                        "min_working_days",
                        "is_karantin",
                        "has_postings_limit",
                        "postings_limit",
                        "min_postings_limit",
                        "is_timetable_editable",
                        "is_economy",
                        "is_able_to_set_price",  # only in the RU-2026-10 example
                        "is_presorted",  # only in the RU-2026-10 example
                    }
                ),
            ),
        ),
    ),
    OzonMethod(
        V1_ROLES,
        "account",
        "v1",
        Paging.SINGLE,
        1,
        ("roles",),
        note="the Api-Key's roles and its expiry (`expires_at`, News 2 Sep 2026; keys live 3 months)",
    ),
)

METHODS: dict[str, OzonMethod] = {m.path: m for m in _TABLE}

#: Per source, the methods ``auto`` tries in order: the preferred one first, then what to fall back to
#: when it is switched off or down.
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "stocks": (V4_STOCKS,),
    # v2 gives free to sell, promised and reserved by warehouse name (deprecated, no date); v1 is
    # Ozon's announced successor (names and ids; no reserved); the beta fbo method gives present and
    # reserved by warehouse id only, so it comes last and its rows are keyed by id.
    "warehouse_stocks": (V2_STOCK_ON_WAREHOUSES, V1_ANALYTICS_STOCKS, V1_FBO_BY_WAREHOUSE),
    "warehouses": (V2_WAREHOUSE_LIST, V1_WAREHOUSE_LIST),
}


def method(path: str) -> OzonMethod:
    """The record of one method."""
    try:
        return METHODS[path]
    except KeyError:
        raise ConfigError(f"unknown Ozon method {path!r}; known: {sorted(METHODS)}") from None


def choices(source: str) -> list[str]:
    """The values a method param of ``source`` accepts: ``auto`` and each method's choice name."""
    return ["auto", *(method(p).choice for p in AUTO_ORDER[source])]


def plan(source: str, choice: str) -> tuple[OzonMethod, ...]:
    """The methods to try, in order, for a param value: ``auto`` falls back, a pinned choice does not."""
    order = tuple(method(p) for p in AUTO_ORDER[source])
    if choice == "auto":
        return order
    picked = tuple(m for m in order if m.choice == choice)
    if not picked:
        raise ConfigError(f"{source} method must be one of {choices(source)}, not {choice!r}")
    return picked


def method_limits() -> dict[str, tuple[float, float]]:
    """The methods with a limit of their own (the rate budget adds them to the per-Client-Id one)."""
    return {m.path: m.rate_limit for m in _TABLE if m.rate_limit is not None}
