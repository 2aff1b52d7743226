"""A deterministic seller catalogue that the Ozon simulator serves.

The same seed and sizes always give the same products, SKUs, warehouses and quantities, so tests
and benchmarks can compare runs. The catalogue is consistent across methods, as Ozon's is meant
to be: for every FBO SKU, the warehouse rows of the analytics methods add up to its v4 stock
(``sum(free_to_sell_amount) == present - reserved`` and ``sum(reserved_amount) == reserved``), and
the FBO-by-warehouse entries, one per warehouse row, to it exactly (``sum(present) == present``,
``sum(reserved) == reserved``), with the warehouse ids ``/v1/analytics/stocks`` gives.

Values are chosen to exercise the parsing rules of the real API: int64 SKUs above 2**32, offer ids
with Cyrillic, commas, quotes, backslashes, tabs and spaces, and Ozon-style warehouse names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Ozon FBO warehouse names in the style Ozon uses (Cyrillic, underscores, mixed case).
OZON_WAREHOUSE_NAMES: tuple[str, ...] = (
    "ХОРУГВИНО_РФЦ",
    "САНКТ_ПЕТЕРБУРГ_РФЦ",
    "СПБ_БУГРЫ_РФЦ",
    "СПБ_КОЛПИНО_РФЦ",
    "МИНСК_МПСЦ",
    "ЕРЕВАН_МРФЦ",
    "ДОМОДЕДОВО_РФЦ",
    "НОГИНСК_РФЦ",
    "ПУШКИНО_1_РФЦ",
    "ПУШКИНО_2_РФЦ",
    "ЖУКОВСКИЙ_РФЦ",
    "ГРИВНО_РФЦ",
    "ПЕТРОВСКОЕ_РФЦ",
    "ТВЕРЬ_РФЦ",
    "ЕКАТЕРИНБУРГ_РФЦ_НОВЫЙ",
    "КАЗАНЬ_РФЦ_НОВЫЙ",
    "НОВОСИБИРСК_РФЦ_НОВЫЙ",
    "САМАРА_РФЦ",
    "ТЮМЕНЬ_РФЦ",
    "УФА_РФЦ",
    "ВОРОНЕЖ_2_РФЦ",
    "РОСТОВ_НА_ДОНУ_РФЦ",
    "КРАСНОДАР_РФЦ",
    "НЕВИННОМЫССК_РФЦ",
    "ХАБАРОВСК_2_РФЦ",
    "КРАСНОЯРСК_МРФЦ",
    "Санкт_Петербург_РФЦ",
    "ОМСК_РФЦ",
    "ЧЕЛЯБИНСК_РФЦ",
    "ПЕРМЬ_РФЦ",
    "АЛМАТЫ_МРФЦ",
    "АСТАНА_РФЦ",
)

#: Clusters group warehouses; ids and names as ``/v1/analytics/stocks`` reports them.
_CLUSTERS: tuple[str, ...] = (
    "Москва, МО и Дальние регионы",
    "Санкт-Петербург и СЗО",
    "Урал",
    "Сибирь",
    "Юг",
    "Поволжье",
    "Беларусь",
    "Армения",
    "Казахстан",
    "Дальний Восток",
)

_NAME_WORDS = ("Кружка", "Футболка", "Чехол", "Набор", "Лампа", "Рюкзак", "Кабель", "Крем", "Игрушка")
_OFFER_STYLES = (
    "ART-{i:06d}",
    "арт_{i}",
    "SKU*{i}*NEW",
    "Кружка, синяя {i}",
    'Чехол "Премиум" {i}',
    "path\\to\\{i}",
    "tab\there {i}",
    "  spaced {i}  ",
    "ёлка_№{i}",
)
STOCK_TYPES: tuple[str, ...] = ("fbo", "fbs", "rfbs", "fbp")
SHIPMENT_TYPES: tuple[str, ...] = ("SHIPMENT_TYPE_GENERAL", "SHIPMENT_TYPE_BOX", "SHIPMENT_TYPE_PALLET")


@dataclass
class Stock:
    """One entry of ``items[].stocks[]`` in ``/v4/product/info/stocks``."""

    type: str
    sku: int
    present: int
    reserved: int
    shipment_type: str = "SHIPMENT_TYPE_GENERAL"


@dataclass
class Product:
    product_id: int
    offer_id: str
    name: str
    visibility: str
    stocks: list[Stock]


@dataclass
class WarehouseRow:
    """FBO stock of one SKU in one Ozon warehouse (analytics and FBO-by-warehouse methods)."""

    sku: int
    warehouse: int  # index into Catalogue.ozon_warehouses
    free_to_sell: int
    promised: int
    reserved: int

    @property
    def present(self) -> int:
        """On hand in this warehouse: free to sell plus reserved, so the rows of a SKU add up to
        v4's fbo ``present`` (promised stock is not there yet)."""
        return self.free_to_sell + self.reserved


@dataclass
class OzonWarehouse:
    warehouse_id: int
    name: str
    cluster_id: int
    cluster_name: str
    macrolocal_cluster_id: int
    express: bool


@dataclass
class SellerWarehouse:
    """A seller's own FBS / rFBS warehouse (``/v1/warehouse/list``, ``/v2/warehouse/list``)."""

    warehouse_id: int
    name: str
    is_rfbs: bool
    status: str
    working_days: list[int]


@dataclass
class Catalogue:
    """Products, their stock by type, and the FBO stock per Ozon warehouse."""

    products: list[Product]
    rows: list[WarehouseRow]
    ozon_warehouses: list[OzonWarehouse]
    seller_warehouses: list[SellerWarehouse]
    seed: int = 0
    version: int = 0
    _by_sku: dict[int, Product] = field(default_factory=dict, repr=False)
    _rows_by_sku: dict[int, list[WarehouseRow]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild lookups and put rows in answer order (by SKU, then warehouse)."""
        self.rows.sort(key=lambda r: (r.sku, r.warehouse))
        self._by_sku = {s.sku: p for p in self.products for s in p.stocks}
        self._rows_by_sku = {}
        for row in self.rows:
            self._rows_by_sku.setdefault(row.sku, []).append(row)

    def rows_of_sku(self, sku: int) -> list[WarehouseRow]:
        return self._rows_by_sku.get(sku, [])

    def product_of_sku(self, sku: int) -> Product | None:
        return self._by_sku.get(sku)

    def seller_stocks(self, warehouse_id: int) -> list[tuple[Product, Stock, int, int]]:
        """The stock in one of the seller's own warehouses (``/v1/product/info/warehouse/stocks``):
        ``(product, v4 stock, present, reserved)`` per SKU, in answer order (by SKU).

        v4's ``fbs`` totals are split over the seller's FBS warehouses and ``rfbs`` over the rFBS
        ones, evenly, the remainder going to the warehouses from the SKU's turn on, so that per
        SKU and type the warehouses always add up to v4's figures, however the stock changes.
        """
        warehouse = next((w for w in self.seller_warehouses if w.warehouse_id == warehouse_id), None)
        if warehouse is None:
            return []
        kind = "rfbs" if warehouse.is_rfbs else "fbs"
        peers = [w.warehouse_id for w in self.seller_warehouses if w.is_rfbs == warehouse.is_rfbs]
        place = peers.index(warehouse_id)
        out = []
        for product in self.products:
            for s in product.stocks:
                if s.type != kind:
                    continue
                turn = (place - s.sku) % len(peers)  # this warehouse's turn for the SKU's remainder
                present = s.present // len(peers) + (turn < s.present % len(peers))
                reserved = s.reserved // len(peers) + (turn < s.reserved % len(peers))
                if present or reserved:
                    out.append((product, s, present, reserved))
        out.sort(key=lambda entry: entry[1].sku)
        return out

    def fbo_stock(self, sku: int) -> Stock | None:
        product = self._by_sku.get(sku)
        if product is None:
            return None
        return next((s for s in product.stocks if s.type == "fbo" and s.sku == sku), None)

    # -- changes between runs ------------------------------------------------------------------

    def change_stock(self, fraction: float, seed: int = 1) -> int:
        """Change the quantities of ``fraction`` of the warehouse rows, keeping v4 consistent.

        Returns the number of warehouse rows changed (each changes its SKU's fbo stock too).
        """
        rng = random.Random(seed)
        count = max(1, round(len(self.rows) * fraction)) if self.rows else 0
        changed = rng.sample(range(len(self.rows)), count)
        for index in changed:
            row = self.rows[index]
            delta = rng.choice((-1, 1)) * rng.randint(1, 5)
            if row.free_to_sell + delta < 0:
                delta = -delta
            row.free_to_sell += delta
            stock = self.fbo_stock(row.sku)
            if stock is not None:
                stock.present += delta
        self.version += 1
        return count

    def remove_products(self, count: int) -> list[int]:
        """Take the last ``count`` products (and their warehouse rows) out of the catalogue."""
        removed = self.products[len(self.products) - count :]
        del self.products[len(self.products) - count :]
        gone = {s.sku for p in removed for s in p.stocks}
        self.rows = [r for r in self.rows if r.sku not in gone]
        self.version += 1
        self.reindex()
        return [p.product_id for p in removed]

    def insert_product_first(self) -> Product:
        """Add a product at the head of the answer order: shifts every later page by one."""
        template = self.products[0]
        product_id = min(p.product_id for p in self.products) - 1
        sku = min(s.sku for p in self.products for s in p.stocks) - 1
        product = Product(
            product_id=product_id,
            offer_id=f"NEW-{product_id}",
            name=template.name,
            visibility="VISIBLE",
            stocks=[Stock("fbs", sku, 1, 0)],
        )
        self.products.insert(0, product)
        self.version += 1
        self.reindex()
        return product


def build_catalogue(
    products: int = 175,
    warehouses: int = 27,
    seed: int = 42,
    rows_per_sku: float | None = None,
    analytics_rows: int | None = None,
    seller_warehouses: int = 3,
) -> Catalogue:
    """Build a deterministic catalogue.

    ``rows_per_sku`` is the mean number of Ozon warehouses an FBO SKU is stocked in;
    ``analytics_rows`` instead fixes the exact number of SKU × warehouse rows (the old system's
    dataset has 175 products, 27 warehouses and 511 rows: ``build_catalogue(175, 27,
    analytics_rows=511)``).
    """
    if products < 1 or warehouses < 1:
        raise ValueError("a catalogue needs at least one product and one warehouse")
    rng = random.Random(seed)
    names = list(OZON_WAREHOUSE_NAMES)
    while len(names) < warehouses:
        names.append(f"СКЛАД_{len(names) + 1}_РФЦ")
    ozon_whs = []
    for i, name in enumerate(names[:warehouses]):
        cluster = i % len(_CLUSTERS)
        ozon_whs.append(
            OzonWarehouse(
                warehouse_id=1_020_000_000_000 + i * 1_000 + 7,
                name=name,
                cluster_id=4_000 + cluster,
                cluster_name=_CLUSTERS[cluster],
                macrolocal_cluster_id=9_000 + cluster,
                express=i % 9 == 8,
            )
        )

    product_list: list[Product] = []
    fbo_skus: list[int] = []
    for i in range(products):
        product_id = 700_000_000 + i * 13 + rng.randint(0, 9)
        sku = 3_000_000_000 + i * 17 + rng.randint(0, 9)  # above 2**31: must be int64
        offer_id = _OFFER_STYLES[i % len(_OFFER_STYLES)].format(i=i)
        name = f"{_NAME_WORDS[i % len(_NAME_WORDS)]} «{i}», арт. {i % 97}"
        stocks: list[Stock] = []
        has_fbo = rng.random() < 0.85 or i == 0
        if has_fbo:
            stocks.append(Stock("fbo", sku, 0, 0))
            fbo_skus.append(sku)
        if rng.random() < 0.5 or not has_fbo:
            present = rng.randint(0, 40)
            stocks.append(Stock("fbs", sku, present, rng.randint(0, present), rng.choice(SHIPMENT_TYPES)))
        if rng.random() < 0.1:
            present = rng.randint(0, 20)
            stocks.append(Stock("rfbs", sku, present, rng.randint(0, present)))
        if rng.random() < 0.05:
            stocks.append(Stock("fbp", sku + 1, rng.randint(0, 10), 0))
        visibility = "ARCHIVED" if rng.random() < 0.03 else "VISIBLE"
        product_list.append(Product(product_id, offer_id, name, visibility, stocks))

    rows = _warehouse_rows(rng, fbo_skus, len(ozon_whs), rows_per_sku, analytics_rows)
    catalogue = Catalogue(
        products=product_list,
        rows=rows,
        ozon_warehouses=ozon_whs,
        seller_warehouses=_seller_warehouses(seller_warehouses),
        seed=seed,
    )
    for row in catalogue.rows:
        stock = catalogue.fbo_stock(row.sku)
        assert stock is not None
        stock.present += row.free_to_sell + row.reserved
        stock.reserved += row.reserved
    return catalogue


def _warehouse_rows(
    rng: random.Random,
    fbo_skus: list[int],
    warehouses: int,
    rows_per_sku: float | None,
    analytics_rows: int | None,
) -> list[WarehouseRow]:
    """Spread FBO SKUs over warehouses: a count per SKU, then distinct warehouses for it."""
    if not fbo_skus:
        return []
    if analytics_rows is not None:
        if analytics_rows > len(fbo_skus) * warehouses:
            raise ValueError("more analytics rows than SKU × warehouse pairs")
        counts = [0] * len(fbo_skus)
        for _ in range(analytics_rows):
            while True:
                k = rng.randrange(len(fbo_skus))
                if counts[k] < warehouses:
                    counts[k] += 1
                    break
    else:
        mean = rows_per_sku if rows_per_sku is not None else min(3.0, warehouses)
        counts = [max(1, min(warehouses, round(rng.gauss(mean, max(1.0, mean / 3))))) for _ in fbo_skus]
    rows = []
    for sku, count in zip(fbo_skus, counts, strict=True):
        for wh in rng.sample(range(warehouses), count):
            rows.append(
                WarehouseRow(
                    sku=sku,
                    warehouse=wh,
                    free_to_sell=rng.randint(0, 60),
                    promised=rng.choice((0, 0, 0, rng.randint(1, 30))),
                    reserved=rng.choice((0, 0, rng.randint(0, 5))),
                )
            )
    return rows


def _seller_warehouses(count: int) -> list[SellerWarehouse]:
    names = ("Основной склад (Москва)", "Склад_FBS_Казань", "rFBS*Екатеринбург", "Склад №4")
    statuses = ("created", "created", "disabled", "new", "blocked", "disabled_due_to_limit")
    return [
        SellerWarehouse(
            warehouse_id=17_777_777_788_000 + i * 1_000,
            name=names[i % len(names)] if i < len(names) else f"Склад {i + 1}",
            is_rfbs=i % 3 == 2,
            status=statuses[i % len(statuses)],
            working_days=[1, 2, 3, 4, 5] if i % 2 else [1, 2, 3, 4, 5, 6, 7],
        )
        for i in range(count)
    ]
