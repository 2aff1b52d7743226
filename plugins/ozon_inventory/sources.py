"""The registry of sources: one frozen spec per source the pipeline reads, and the checks between them.

A spec says everything the stages need to know about its source, and nothing else does:

- how its rows are validated, per Ozon method (the row validator and the documented fields, keyed by
  the method's path; where the rows sit in an answer comes from ``methods.py``), and which model
  columns a method does not provide (the load keeps their previous value instead of seeing a change);
- the files validate writes for it, each a :class:`ModelFile` whose columns are declared once here:
  the validators emit values in that order, merge reads them by name, and load generates
  ``COPY tmp_<name> (<columns>) FROM STDIN`` from them (the temp tables' DDL is
  ``-- name: temp_<name>`` in ``include/sql/load.sql``, with the same column names);
- how load applies it: the history tables it keeps change-only (sections ``has_current_<file>``,
  ``first_``, ``diff_table_``, ``diff_new_``, ``diff_vanished_``, ``count_current_``, ``close_``,
  ``open_``, ``hold_``, ``has_held_``, ``confirm_``, and ``fill_``
  where a table has attributes that are filled in place) and the
  further ``load.sql`` sections it runs, in order;
- what the shrink guard counts for it, and which ledger figures its counts fill.

``validate_run``, ``merge_run``, ``load_run`` and the shrink guard iterate :data:`REGISTRY` and never
name a source. Adding a source means: its methods in ``methods.py``, one spec here (with its row
validators), and its SQL in ``include/sql``. Joins and checks that span two sources are declared
below the specs (:data:`JOINS`, :data:`CHECKS`), not buried in either.

A row validator takes one raw row and a :class:`RowSink`. It raises :class:`Reject` for a row that
breaks a rule (the engine stores it with its reason); when the row's key was readable it first emits
the key into the source's ``held_*`` file, so the row's last good value is kept (see
docs/architecture.md, "A rejected value keeps the last good one").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, Protocol

from ozon_inventory.exceptions import ConfigError
from ozon_inventory.methods import (
    METHODS,
    V1_ANALYTICS_STOCKS,
    V1_FBO_BY_WAREHOUSE,
    V1_WAREHOUSE_LIST,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
)
from ozon_inventory.rules import (
    INT64,
    NULL,
    QUANTITY,
    Missing,
    Reject,
    as_bool,
    as_int,
    as_key,
    as_label,
    is_label,
    plain_ints,
    plain_keys,
    plain_labels,
    plain_optional,
    working_days,
)

# -- the parts of a spec -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    """A COPY-ready TSV file (text format) and its columns, in order; ``folder`` in staging.

    Files in ``model/`` are loaded into ``tmp_<name>``; files in ``validated/`` are merge's inputs.
    """

    name: str
    columns: tuple[str, ...]
    folder: str = "model"

    @property
    def file(self) -> str:
        return f"{self.name}.tsv"

    @property
    def table(self) -> str:
        return f"tmp_{self.name}"

    def copy_sql(self, table: str | None = None) -> str:
        """COPY of the file into its temp table (or into ``table``), columns named."""
        return f"COPY {table or self.table} ({', '.join(self.columns)}) FROM STDIN"


class KeySet(Protocol):
    """The keys a source's rows had so far: a key seen again is a duplicate row (rejected)."""

    def __contains__(self, key: object) -> bool: ...

    def add(self, key: Hashable) -> None: ...

    def add_new(self, keys: Iterable[Hashable]) -> bool:
        """Add ``keys`` at once if none of them can have been seen (True); else add none (False)."""
        ...


class RowSink(Protocol):
    """What a row validator writes to (implemented by validate's per-source writer)."""

    #: keys seen so far in this source's run (duplicates are rejected)
    seen: KeySet
    #: what the shrink guard and the ledger count as this source's products
    products: set[Hashable]

    def emit(self, file: ModelFile, values: tuple[str, ...]) -> None:
        """One line of ``file``: COPY-escaped values in ``file.columns`` order."""

    def emit_all(self, file: ModelFile, rows: Iterable[tuple[str, ...]]) -> None:
        """Lines of ``file``, as ``emit`` writes them one at a time."""

    def keyed(self, file: ModelFile) -> dict[Hashable, tuple[Any, ...]]:
        """Lines of ``file`` by key, written when the source is done (a list value is joined with ",")."""
        ...

    def reject(self, reason: str | Reject, record: Any) -> None:
        """Store a part of the row (a v4 item's stock entry) as rejected; the rest goes on."""

    def tally(self, name: str) -> dict[int, int]:
        """A sum per key that a cross-source check reads."""
        ...

    def fields(self, kind: str, record: dict[str, Any]) -> None:
        """Count the record's fields that the method's documentation does not list."""

    def unknown_value(self, what: str) -> None:
        """Count an enum value the documentation does not list (the row is kept)."""


RowValidator = Callable[[Any, RowSink], None]
#: A whole answer's rows at once when every one is plainly valid; False (nothing written): row by row.
PageValidator = Callable[[list[Any], RowSink], bool]


@dataclass(frozen=True)
class MethodRows:
    """How the rows of one Ozon method's answers become the source's files."""

    validate: RowValidator
    #: per record kind ("stocks.item"), the fields the method's documentation lists
    known_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: model columns the method does not provide: written as NULL, and the load keeps the previous
    #: value for them instead of recording a change (a fallback to another method rewrites nothing)
    not_provided: frozenset[str] = frozenset()
    #: the same check for a whole answer, faster, where the method's rows are plain most of the time
    page: PageValidator | None = None


@dataclass(frozen=True)
class Shrink:
    """What the shrink guard compares with the account's last good snapshot."""

    count: Literal["products", "rows"]
    unit: str  # for the message: "products", "warehouse rows"


@dataclass(frozen=True)
class SourceSpec:
    """Everything the stages know about one source."""

    name: str
    #: Ozon method path -> how its rows are validated
    methods: Mapping[str, MethodRows]
    #: the file whose lines are the source's rows (``rows_valid``, the ledger, the shrink guard)
    rows: ModelFile
    #: every file validate writes for the source
    writes: tuple[ModelFile, ...]
    #: the files load copies into temp tables before applying the source, in order
    loads: tuple[ModelFile, ...]
    #: files of keys whose new value was rejected: their last good rows are kept
    holds: tuple[ModelFile, ...] = ()
    #: model files kept as change-only history tables
    history: tuple[ModelFile, ...] = ()
    #: further ``load.sql`` sections that apply the source, in order
    apply: tuple[str, ...] = ()
    shrink: Shrink | None = None
    #: ledger figure -> the ``ozon_source_state`` count that fills it ("rows" or "products")
    counts: Mapping[str, Literal["products", "rows"]] = field(default_factory=dict)

    def method_rows(self, path: str, where: str = "") -> MethodRows:
        """The row rules of ``path``; ``ConfigError`` when the source has none for it."""
        try:
            return self.methods[path]
        except KeyError:
            raise ConfigError(
                f"{where}{self.name} was fetched with {path}, which has no row rules in sources.py "
                f"(known: {sorted(self.methods)})"
            ) from None


@dataclass(frozen=True)
class Join:
    """A model file merge builds from two sources: ``base``'s lines with its ``keys`` column (a
    comma-separated list) replaced by the value ``lookup`` holds for the first key it knows, else NULL."""

    target: ModelFile
    base: ModelFile
    keys: str
    lookup: ModelFile  # two columns: key, value


@dataclass(frozen=True)
class CrossCheck:
    """Two sources' sums per key that should agree; differences are counted and logged, not fatal."""

    name: str
    expected: tuple[str, str]  # (source, tally)
    actual: tuple[str, str]
    expected_label: str
    actual_label: str
    what: str
    #: the actual source's methods the check applies to (None: whichever fetched it)
    only_with: frozenset[str] | None = None


# -- files -------------------------------------------------------------------------------------

STOCK_BY_TYPE = ModelFile(
    "stock_by_type", ("product_id", "sku", "stock_type", "shipment_type", "present", "reserved")
)
PRODUCT_SKUS = ModelFile("product_skus", ("product_id", "offer_id", "skus"), folder="validated")
PRODUCTS = ModelFile("products", ("product_id", "offer_id", "name"))
HELD_PRODUCTS = ModelFile("held_products", ("product_id",))
HELD_STOCK_BY_TYPE = ModelFile("held_stock_by_type", ("sku", "stock_type", "shipment_type"))

STOCK_BY_WAREHOUSE = ModelFile(
    "stock_by_warehouse", ("sku", "warehouse_name", "warehouse_id", "free_to_sell", "promised", "reserved")
)
OZON_WAREHOUSES = ModelFile("ozon_warehouses", ("name", "warehouse_id", "cluster_id", "cluster_name"))
ITEM_NAMES = ModelFile("item_names", ("sku", "name"), folder="validated")
HELD_STOCK_BY_WAREHOUSE = ModelFile("held_stock_by_warehouse", ("sku", "warehouse_name"))

SELLER_WAREHOUSES = ModelFile(
    "seller_warehouses", ("warehouse_id", "name", "is_rfbs", "status", "working_days")
)
HELD_SELLER_WAREHOUSES = ModelFile("held_seller_warehouses", ("warehouse_id",))

#: every source's rejects, loaded into ``ozon_reject`` by every load
REJECTS = ModelFile("rejects", ("source", "reason", "record"), folder="validated")

# -- stocks: /v4/product/info/stocks ------------------------------------------------------------

STOCK_TYPES = frozenset({"fbo", "fbs", "rfbs", "fbp"})
SHIPMENT_TYPES = frozenset({"SHIPMENT_TYPE_GENERAL", "SHIPMENT_TYPE_BOX", "SHIPMENT_TYPE_PALLET"})
FBO_AVAILABLE = "fbo_available"  # per SKU: v4 fbo present - reserved
FBO_PRESENT = "fbo_present"  # per SKU: v4 fbo present
FBO_RESERVED = "fbo_reserved"  # per SKU: v4 fbo reserved


def _stock_key(stock: Any, out: RowSink | None = None) -> tuple[str, str, str]:
    """(sku, type, shipment_type) of a v4 ``stocks[]`` entry."""
    if not isinstance(stock, dict):
        raise Reject("stocks[] entry is not an object")
    if out is not None:
        out.fields("stocks.stock", stock)
    sku = str(as_int(stock.get("sku"), "sku", INT64))
    stock_type = as_key(stock.get("type"), "type")
    shipment = as_key(stock.get("shipment_type") or "SHIPMENT_TYPE_GENERAL", "shipment_type")
    if out is not None:
        if stock_type not in STOCK_TYPES:
            out.unknown_value(f"type={stock_type}")
        if shipment not in SHIPMENT_TYPES:
            out.unknown_value(f"shipment_type={shipment}")
    return sku, stock_type, shipment


def v4_item(item: Any, out: RowSink) -> None:
    """A v4 item: the product (kept even when it has no stock rows) and its stock rows, each on its own."""
    if not isinstance(item, dict):
        raise Reject("item is not an object")
    out.fields("stocks.item", item)
    product_id = str(as_int(item.get("product_id"), "product_id", INT64))
    try:
        offer_id = as_key(item.get("offer_id"), "offer_id")
        stocks = item.get("stocks")
        if stocks is None:  # not "no stock rows": the product and its current rows are held
            raise Missing("stocks")
        if not isinstance(stocks, list):
            raise Reject("stocks is not an array")
    except Reject:
        _hold_item(product_id, item, out)
        raise
    products = out.keyed(PRODUCT_SKUS)
    known = products.get(product_id)
    if known is None:
        skus: list[str] = []
        products[product_id] = (product_id, offer_id, skus)
        out.products.add(product_id)
    else:
        skus = known[2]
    fbo = out.tally(FBO_AVAILABLE)
    fbo_present, fbo_reserved = out.tally(FBO_PRESENT), out.tally(FBO_RESERVED)
    for stock in stocks:
        try:
            key = _stock_key(stock, out)
            try:
                present = as_int(stock.get("present"), "present", QUANTITY)
                reserved = as_int(stock.get("reserved"), "reserved", QUANTITY)
            except Reject:
                out.emit(HELD_STOCK_BY_TYPE, key)
                raise
            if key in out.seen:
                raise Reject(f"duplicate stock entry for sku {key[0]}, type {key[1]}, {key[2]}")
        except Reject as exc:
            record = {"product_id": item.get("product_id"), "offer_id": item.get("offer_id"), "stock": stock}
            out.reject(exc, record)
            continue
        out.seen.add(key)
        sku, stock_type, shipment = key
        if stock_type == "fbo":
            number = int(sku)
            fbo[number] = fbo.get(number, 0) + present - reserved
            fbo_present[number] = fbo_present.get(number, 0) + present
            fbo_reserved[number] = fbo_reserved.get(number, 0) + reserved
        out.emit(STOCK_BY_TYPE, (product_id, sku, stock_type, shipment, str(present), str(reserved)))
        skus.append(sku)


def _hold_item(product_id: str, item: dict[str, Any], out: RowSink) -> None:
    """A rejected item with a readable product id keeps its product and its stock rows' last values."""
    out.emit(HELD_PRODUCTS, (product_id,))
    stocks = item.get("stocks")
    for stock in stocks if isinstance(stocks, list) else ():
        try:
            out.emit(HELD_STOCK_BY_TYPE, _stock_key(stock))
        except Reject:
            continue


STOCKS = SourceSpec(
    name="stocks",
    methods={
        V4_STOCKS: MethodRows(v4_item, known_fields=METHODS[V4_STOCKS].known_fields()),
    },
    rows=STOCK_BY_TYPE,
    writes=(STOCK_BY_TYPE, PRODUCT_SKUS, HELD_PRODUCTS, HELD_STOCK_BY_TYPE),
    loads=(STOCK_BY_TYPE, PRODUCTS, HELD_PRODUCTS, HELD_STOCK_BY_TYPE),
    holds=(HELD_PRODUCTS, HELD_STOCK_BY_TYPE),
    history=(STOCK_BY_TYPE,),
    apply=("upsert_products", "delete_vanished_products", "upsert_skus", "delete_vanished_skus"),
    shrink=Shrink("products", "products"),
    counts={"products": "products", "stock_rows": "rows"},
)

# -- warehouse_stocks: /v2/analytics/stock_on_warehouses or /v1/analytics/stocks ---------------

FBO_FREE_TO_SELL = "fbo_free_to_sell"  # per SKU: the warehouse rows' free_to_sell sum
WAREHOUSES_PRESENT = "warehouses_present"  # per SKU: /v1/product/info/stocks-by-warehouse/fbo present sum
WAREHOUSES_RESERVED = "warehouses_reserved"  # per SKU: its reserved sum


def _warehouse_row(
    out: RowSink,
    sku: str,
    name: str,
    warehouse_id: str,
    item_name: str,
    free: int,
    promised: int | None,
    reserved: str,
    cluster: tuple[str, str],
    original_name: Any,
) -> None:
    if (sku, name) in out.seen:
        raise Reject(f"duplicate row for sku {sku} in warehouse {original_name!r}")
    out.seen.add((sku, name))
    out.products.add(sku)
    number = int(sku)
    free_to_sell = out.tally(FBO_FREE_TO_SELL)
    free_to_sell[number] = free_to_sell.get(number, 0) + free
    shown = NULL if promised is None else str(promised)
    out.emit(STOCK_BY_WAREHOUSE, (sku, name, warehouse_id, str(free), shown, reserved))
    if item_name:
        names = out.keyed(ITEM_NAMES)
        if sku not in names:
            names[sku] = (sku, item_name)
    warehouses = out.keyed(OZON_WAREHOUSES)
    known = warehouses.get(name)
    if known is None or (warehouse_id != NULL and known[1] == NULL):
        warehouses[name] = (name, warehouse_id, *cluster)


def _warehouse_key(row: Any, kind: str, out: RowSink) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise Reject("row is not an object")
    out.fields(kind, row)
    return str(as_int(row.get("sku"), "sku", INT64)), as_key(row.get("warehouse_name"), "warehouse_name")


V2_KIND = "warehouse_stocks.v2"
V2_FIELDS = METHODS[V2_STOCK_ON_WAREHOUSES].known_fields()[V2_KIND]
V2_REQUIRED = frozenset(METHODS[V2_STOCK_ON_WAREHOUSES].records[0].required)


def v2_warehouse_row(row: Any, out: RowSink) -> None:
    """A /v2/analytics/stock_on_warehouses row: free to sell, promised and reserved by warehouse name."""
    sku, name = _warehouse_key(row, V2_KIND, out)
    try:
        is_label(row.get("item_code"), "item_code")
        item_name = as_label(row.get("item_name"), "item_name")
        free = as_int(row.get("free_to_sell_amount"), "free_to_sell_amount", QUANTITY)
        promised = as_int(row.get("promised_amount"), "promised_amount", QUANTITY)
        reserved = str(as_int(row.get("reserved_amount"), "reserved_amount", QUANTITY))
    except Reject:
        out.emit(HELD_STOCK_BY_WAREHOUSE, (sku, name))
        raise
    _warehouse_row(
        out, sku, name, NULL, item_name, free, promised, reserved, (NULL, NULL), row["warehouse_name"]
    )


def v2_warehouse_page(rows: list[Any], out: RowSink) -> bool:
    """A whole /v2/analytics/stock_on_warehouses answer at once, column by column, when every row is
    plainly valid: what ``v2_warehouse_row`` writes for each row, in the same order, for less CPU (the
    warehouse fetch of 100,000 products, 850 answers of 1,000 rows, took 10.6 CPU-seconds row by row
    and 5.0 with this and the client's page keys taken a column at a time). Any row that is not (a
    field the documents do not list, a value a rule would change or refuse, a key that may have come
    before) returns False with nothing written: the rows then go one by one, each with its reason.
    """
    if not all(type(row) is dict and V2_FIELDS.issuperset(row) and row.keys() >= V2_REQUIRED for row in rows):
        return False
    skus, names = [row["sku"] for row in rows], [row["warehouse_name"] for row in rows]
    free, promised, reserved = (
        [row[column] for row in rows]
        for column in ("free_to_sell_amount", "promised_amount", "reserved_amount")
    )
    item_names = [row.get("item_name") for row in rows]
    if not (
        plain_ints(skus, INT64)
        and plain_keys(names)
        and plain_ints(free, QUANTITY)
        and plain_ints(promised, QUANTITY)
        and plain_ints(reserved, QUANTITY)
        and plain_optional([row.get("item_code") for row in rows])
        and plain_labels(item_names)
    ):
        return False
    sku_text = list(map(str, skus))
    if not out.seen.add_new(zip(sku_text, names, strict=True)):
        return False
    out.products.update(sku_text)
    sums = out.tally(FBO_FREE_TO_SELL)
    for number, amount in zip(skus, free, strict=True):
        sums[number] = sums.get(number, 0) + amount
    out.emit_all(
        STOCK_BY_WAREHOUSE,
        zip(
            sku_text,
            names,
            repeat(NULL, len(rows)),
            map(str, free),
            map(str, promised),
            map(str, reserved),
            strict=True,
        ),
    )
    kept = out.keyed(ITEM_NAMES)
    for sku, item_name in zip(sku_text, item_names, strict=True):
        if item_name and sku not in kept:
            kept[sku] = (sku, item_name)
    warehouses = out.keyed(OZON_WAREHOUSES)
    for name in dict.fromkeys(names):  # in the order the rows first name them, as row by row
        if name not in warehouses:
            warehouses[name] = (name, NULL, NULL, NULL)
    return True


def v1_analytics_row(row: Any, out: RowSink) -> None:
    """A /v1/analytics/stocks row: available and requested + in-transit stock by warehouse id; no reserved."""
    sku, name = _warehouse_key(row, "warehouse_stocks.v1", out)
    try:
        warehouse_id = str(as_int(row.get("warehouse_id"), "warehouse_id", INT64))
        is_label(row.get("offer_id"), "offer_id")
        item_name = as_label(row.get("name"), "name")
        free = as_int(row.get("available_stock_count"), "available_stock_count", QUANTITY)
        promised = as_int(row.get("requested_stock_count"), "requested_stock_count", QUANTITY) + as_int(
            row.get("transit_stock_count"), "transit_stock_count", QUANTITY
        )
        cluster_id = str(as_int(row["cluster_id"], "cluster_id", INT64)) if row.get("cluster_id") else NULL
        cluster_name = as_label(row.get("cluster_name"), "cluster_name") or NULL
    except Reject:
        out.emit(HELD_STOCK_BY_WAREHOUSE, (sku, name))
        raise
    cluster = (cluster_id, cluster_name)
    _warehouse_row(
        out, sku, name, warehouse_id, item_name, free, promised, NULL, cluster, row["warehouse_name"]
    )


def fbo_by_warehouse_row(row: Any, out: RowSink) -> None:
    """A /v1/product/info/stocks-by-warehouse/fbo row: present and reserved per SKU and Ozon warehouse id.

    It names no warehouse, so its rows are keyed by ``#<warehouse_id>`` (a method switch from a
    method that names warehouses therefore rewrites their history once). Free to sell is
    ``present - reserved``; promised is not provided.
    """
    if not isinstance(row, dict):
        raise Reject("row is not an object")
    out.fields("warehouse_stocks.fbo", row)
    sku = str(as_int(row.get("sku"), "sku", INT64))
    warehouse_id = str(as_int(row.get("warehouse_id"), "warehouse_id", INT64))
    name = f"#{warehouse_id}"
    try:
        is_label(row.get("offer_id"), "offer_id")
        present = as_int(row.get("present"), "present", QUANTITY)
        reserved = as_int(row.get("reserved"), "reserved", QUANTITY)
        if reserved > present:
            raise Reject(f"reserved {reserved} is more than present {present}")
    except Reject:
        out.emit(HELD_STOCK_BY_WAREHOUSE, (sku, name))
        raise
    number = int(sku)
    for tally, value in ((WAREHOUSES_PRESENT, present), (WAREHOUSES_RESERVED, reserved)):
        sums = out.tally(tally)
        sums[number] = sums.get(number, 0) + value
    _warehouse_row(
        out, sku, name, warehouse_id, "", present - reserved, None, str(reserved), (NULL, NULL), name
    )


WAREHOUSE_STOCKS = SourceSpec(
    name="warehouse_stocks",
    methods={
        V2_STOCK_ON_WAREHOUSES: MethodRows(
            v2_warehouse_row,
            known_fields={V2_KIND: V2_FIELDS},
            not_provided=frozenset({"warehouse_id"}),
            page=v2_warehouse_page,
        ),
        V1_ANALYTICS_STOCKS: MethodRows(
            v1_analytics_row,
            known_fields=METHODS[V1_ANALYTICS_STOCKS].known_fields(),
            not_provided=frozenset({"reserved"}),
        ),
        V1_FBO_BY_WAREHOUSE: MethodRows(
            fbo_by_warehouse_row,
            known_fields=METHODS[V1_FBO_BY_WAREHOUSE].known_fields(),
            not_provided=frozenset({"promised"}),
        ),
    },
    rows=STOCK_BY_WAREHOUSE,
    writes=(STOCK_BY_WAREHOUSE, OZON_WAREHOUSES, ITEM_NAMES, HELD_STOCK_BY_WAREHOUSE),
    loads=(STOCK_BY_WAREHOUSE, OZON_WAREHOUSES, HELD_STOCK_BY_WAREHOUSE),
    holds=(HELD_STOCK_BY_WAREHOUSE,),
    history=(STOCK_BY_WAREHOUSE,),
    apply=("upsert_ozon_warehouses", "delete_vanished_ozon_warehouses"),
    shrink=Shrink("rows", "warehouse rows"),
    counts={"warehouse_rows": "rows"},
)

# -- warehouses: /v2/warehouse/list or /v1/warehouse/list ---------------------------------------

WAREHOUSE_STATUSES = frozenset({"new", "created", "disabled", "blocked", "disabled_due_to_limit", "error"})


def _seller_warehouse(kind: str) -> RowValidator:
    """``seller_warehouse`` counting the fields the list method ``kind`` does not document."""

    def validate(row: Any, out: RowSink) -> None:
        if isinstance(row, dict):
            out.fields(kind, row)
        seller_warehouse(row, out)

    return validate


def seller_warehouse(row: Any, out: RowSink) -> None:
    """One of the seller's own FBS/rFBS warehouses (both list methods give the same fields)."""
    if not isinstance(row, dict):
        raise Reject("warehouse is not an object")
    warehouse_id = str(as_int(row.get("warehouse_id"), "warehouse_id", INT64))
    try:
        name = as_key(row.get("name"), "name")
        status = as_label(row.get("status") or "", "status").lower()
        if status and status not in WAREHOUSE_STATUSES:
            out.unknown_value(f"status={status}")
        is_rfbs = as_bool(row.get("is_rfbs"), "is_rfbs")
        days = working_days(row.get("working_days"))
    except Reject:
        out.emit(HELD_SELLER_WAREHOUSES, (warehouse_id,))
        raise
    if warehouse_id in out.seen:
        raise Reject(f"duplicate warehouse {warehouse_id}")
    out.seen.add(warehouse_id)
    out.emit(SELLER_WAREHOUSES, (warehouse_id, name, "t" if is_rfbs else "f", status or NULL, days))


WAREHOUSES = SourceSpec(
    name="warehouses",
    methods={
        V2_WAREHOUSE_LIST: MethodRows(
            _seller_warehouse("warehouses.v2"), known_fields=METHODS[V2_WAREHOUSE_LIST].known_fields()
        ),
        V1_WAREHOUSE_LIST: MethodRows(
            _seller_warehouse("warehouses.v1"), known_fields=METHODS[V1_WAREHOUSE_LIST].known_fields()
        ),
    },
    rows=SELLER_WAREHOUSES,
    writes=(SELLER_WAREHOUSES, HELD_SELLER_WAREHOUSES),
    loads=(SELLER_WAREHOUSES, HELD_SELLER_WAREHOUSES),
    holds=(HELD_SELLER_WAREHOUSES,),
    apply=("upsert_seller_warehouses", "delete_vanished_seller_warehouses"),
)

# -- the registry ------------------------------------------------------------------------------

#: Every source, in the order validate and load take them.
REGISTRY: tuple[SourceSpec, ...] = (STOCKS, WAREHOUSE_STOCKS, WAREHOUSES)
SOURCES: tuple[str, ...] = tuple(spec.name for spec in REGISTRY)

#: Products are named from the analytics rows: the first of a product's SKUs that has a name.
JOINS: tuple[Join, ...] = (Join(target=PRODUCTS, base=PRODUCT_SKUS, keys="skus", lookup=ITEM_NAMES),)

CHECKS: tuple[CrossCheck, ...] = (
    CrossCheck(
        name="fbo_stock",
        expected=(STOCKS.name, FBO_AVAILABLE),
        actual=(WAREHOUSE_STOCKS.name, FBO_FREE_TO_SELL),
        expected_label="v4_available",
        actual_label="warehouses_free_to_sell",
        what="FBO SKUs differ between v4 present - reserved and the warehouse rows' free_to_sell",
    ),
    # /v1/product/info/stocks-by-warehouse/fbo carries present and reserved like v4: exact per SKU
    CrossCheck(
        name="fbo_present",
        expected=(STOCKS.name, FBO_PRESENT),
        actual=(WAREHOUSE_STOCKS.name, WAREHOUSES_PRESENT),
        expected_label="v4_present",
        actual_label="warehouses_present",
        what="FBO SKUs differ between v4 present and the sum of present per warehouse",
        only_with=frozenset({V1_FBO_BY_WAREHOUSE}),
    ),
    CrossCheck(
        name="fbo_reserved",
        expected=(STOCKS.name, FBO_RESERVED),
        actual=(WAREHOUSE_STOCKS.name, WAREHOUSES_RESERVED),
        expected_label="v4_reserved",
        actual_label="warehouses_reserved",
        what="FBO SKUs differ between v4 reserved and the sum of reserved per warehouse",
        only_with=frozenset({V1_FBO_BY_WAREHOUSE}),
    ),
)


def spec(name: str) -> SourceSpec:
    """The spec of source ``name``."""
    for candidate in REGISTRY:
        if candidate.name == name:
            return candidate
    raise ConfigError(f"unknown source {name!r}; known: {list(SOURCES)}")


def owner(file: ModelFile) -> str:
    """The source whose validation writes ``file``."""
    for candidate in REGISTRY:
        if file in candidate.writes:
            return candidate.name
    raise ConfigError(f"no source writes {file.file}")


def _check_registry() -> None:
    """Every method a spec names is in methods.py and feeds that source; every file has one writer."""
    for candidate in REGISTRY:
        for path in candidate.methods:
            if path not in METHODS or METHODS[path].source != candidate.name:
                raise ConfigError(f"source {candidate.name}: {path} is not one of its methods in methods.py")
    names = [f.name for s in REGISTRY for f in s.writes]
    if len(names) != len(set(names)):
        raise ConfigError(f"a model file is written by two sources: {sorted(names)}")


_check_registry()
