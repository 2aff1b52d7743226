"""Merge the validated sources into one model: product ↔ SKU per stock type ↔ warehouse.

Reads ``validated/`` and writes ``model/``, one COPY-ready file per table, columns in table order:

- ``products.tsv``: product_id, offer_id, name (the name comes from the analytics answer);
- ``stock_by_type.tsv``: product_id, sku, stock_type, shipment_type, present, reserved;
- ``stock_by_warehouse.tsv``: sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved;
- ``warehouses.tsv``: kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name.
  Ozon's warehouses come by name from the analytics rows (with ids when ``/v1/analytics/stocks``
  gave them); the seller's own FBS/rFBS warehouses by id from the warehouse list.

Rows of different sources join on the SKU; a source missing from the run is simply absent here,
and ``load`` keeps that source's last good rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import NULL, ValidationReport

_BATCH = 5000


@dataclass
class MergeResult:
    account: str
    run_key: str
    files: dict[str, int] = field(default_factory=dict)  # model file -> rows
    ozon_warehouses: int = 0
    seller_warehouses: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rewrite(staging: StagingArea, source: str, target: str, row: Callable[[list[str]], str]) -> int:
    """Stream ``validated/source`` through ``row`` into ``model/target``; return the rows written."""
    count = 0
    with staging.open_read("validated", source) as src, staging.open_write("model", target) as out:
        lines: list[str] = []
        for line in src:
            lines.append(row(line.rstrip("\n").split("\t")))
            count += 1
            if len(lines) >= _BATCH:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
    return count


def merge_run(staging: StagingArea, report: ValidationReport) -> MergeResult:
    """Write ``model/`` from ``validated/`` for the sources the report marks ``ok``."""
    result = MergeResult(staging.account, staging.run_key)
    ok = {s for s, r in report.sources.items() if r.status == "ok"}
    names: dict[int, str] = {}
    ozon_whs: dict[str, tuple[str, str, str]] = {}

    if "warehouse_stocks" in ok:

        def warehouse_row(fields: list[str]) -> str:
            sku, wh_name, wh_id, _code, item_name, free, promised, reserved, cl_id, cl_name = fields
            if item_name:
                names.setdefault(int(sku), item_name)
            if wh_name not in ozon_whs or (wh_id != NULL and ozon_whs[wh_name][0] == NULL):
                ozon_whs[wh_name] = (wh_id, cl_id, cl_name)
            return f"{sku}\t{wh_name}\t{wh_id}\t{free}\t{promised}\t{reserved}\n"

        result.files["stock_by_warehouse.tsv"] = _rewrite(
            staging, "warehouse_stocks.tsv", "stock_by_warehouse.tsv", warehouse_row
        )

    if "stocks" in ok:
        products: dict[str, tuple[str, str]] = {}

        def type_row(fields: list[str]) -> str:
            product_id, offer_id, sku, stype, shipment, present, reserved = fields
            known = products.get(product_id)
            if known is None or (not known[1] and int(sku) in names):
                products[product_id] = (offer_id, names.get(int(sku), ""))
            return f"{product_id}\t{sku}\t{stype}\t{shipment}\t{present}\t{reserved}\n"

        result.files["stock_by_type.tsv"] = _rewrite(staging, "stocks.tsv", "stock_by_type.tsv", type_row)
        with staging.open_write("model", "products.tsv") as out:
            out.write("".join(f"{pid}\t{offer}\t{name or NULL}\n" for pid, (offer, name) in products.items()))
        result.files["products.tsv"] = len(products)

    wh_lines = []
    if "warehouse_stocks" in ok:
        for name, (wh_id, cl_id, cl_name) in ozon_whs.items():
            wh_lines.append(f"ozon\t{wh_id}\t{name}\t{NULL}\t{NULL}\t{NULL}\t{cl_id}\t{cl_name}\n")
        result.ozon_warehouses = len(ozon_whs)
    if "warehouses" in ok:
        with staging.open_read("validated", "warehouses.tsv") as src:
            for line in src:
                wh_id, name, is_rfbs, status, days = line.rstrip("\n").split("\t")
                wh_lines.append(f"seller\t{wh_id}\t{name}\t{is_rfbs}\t{status}\t{days}\t{NULL}\t{NULL}\n")
                result.seller_warehouses += 1
    if "warehouse_stocks" in ok or "warehouses" in ok:
        with staging.open_write("model", "warehouses.tsv") as out:
            out.write("".join(wh_lines))
        result.files["warehouses.tsv"] = len(wh_lines)
    staging.write_json("model", "merge.json", result.as_dict())
    return result
