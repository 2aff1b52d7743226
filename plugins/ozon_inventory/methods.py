"""What the project knows about each Ozon Seller API method it calls: one frozen record per method.

The client's pagers, the fetches, validation and the DAG's params all read this table, so a change
at Ozon (a new page limit, a successor, a method switched off) is one edit here. Facts come from the
official OpenAPI documents and the project's API notes; the simulator keeps its own, independent
description of Ozon on purpose (it is the check on this table), and the contract tests hold both to
the official schemas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
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
        """The answer's rows; ``ValueError`` when the answer does not have the documented shape."""
        for path in self.rows_also_at:
            if isinstance(data, dict) and path[0] in data and self.rows_at[0] not in data:
                return self._rows_at(data, path)
        return self._rows_at(data, self.rows_at)

    @staticmethod
    def _rows_at(data: Any, path: tuple[str, ...]) -> list[Any]:
        node = data
        for key in path:
            if not isinstance(node, dict):
                raise ValueError(f"expected an object holding {key!r}")
            node = node.get(key)
            if node is None:
                return []
        if not isinstance(node, list):
            raise ValueError(f"{'.'.join(path)!r} is not an array")
        return node

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


V4_STOCKS = "/v4/product/info/stocks"
V2_STOCK_ON_WAREHOUSES = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS_STOCKS = "/v1/analytics/stocks"
V1_WAREHOUSE_LIST = "/v1/warehouse/list"
V2_WAREHOUSE_LIST = "/v2/warehouse/list"
V1_ROLES = "/v1/roles"
V1_FBO_BY_WAREHOUSE = "/v1/product/info/stocks-by-warehouse/fbo"

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
    ),
    OzonMethod(
        V2_WAREHOUSE_LIST,
        "warehouses",
        "v2",
        Paging.CURSOR_HAS_NEXT,
        200,
        ("warehouses",),
        note="the seller's own FBS/rFBS warehouses",
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
