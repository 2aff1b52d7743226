"""Fetch one source from Ozon into the staging area; return its manifest.

Each fetch streams pages to files as they arrive (memory stays flat at any catalogue size), writes
its manifest last, and follows Ozon's successors: warehouse-level stock from
``/v2/analytics/stock_on_warehouses`` or ``/v1/analytics/stocks``, the warehouse list from v1 or v2,
chosen by configuration and falling back to the successor when the old method is switched off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from ozon_inventory.client import (
    V1_ANALYTICS_STOCKS,
    V1_WAREHOUSE_LIST,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
    OzonClient,
    Page,
)
from ozon_inventory.exceptions import ConfigError, OzonMethodUnavailable, OzonSnapshotChanged
from ozon_inventory.staging import Manifest, StagingArea

log = logging.getLogger(__name__)

SNAPSHOT_PASSES = 3
WAREHOUSE_STOCK_METHODS = {
    "auto": V2_STOCK_ON_WAREHOUSES,
    "v2": V2_STOCK_ON_WAREHOUSES,
    "v1": V1_ANALYTICS_STOCKS,
}
WAREHOUSE_LIST_METHODS = {"auto": V2_WAREHOUSE_LIST, "v2": V2_WAREHOUSE_LIST, "v1": V1_WAREHOUSE_LIST}


def _stage(
    staging: StagingArea,
    source: str,
    method: str,
    client: OzonClient,
    pages: Callable[[], Iterator[Page]],
    fallback_from: str | None = None,
) -> Manifest:
    """Write every page of one pass; restart the pass when Ozon's data moved while we paged."""
    started = time.monotonic()
    for attempt in range(1, SNAPSHOT_PASSES + 1):
        folder = staging.begin(source)
        as_of = datetime.now(UTC).isoformat()
        digest = hashlib.sha256()
        manifest = Manifest(staging.account, staging.run_key, source, method, as_of, str(folder))
        manifest.fallback_from = fallback_from
        try:
            for page in pages():
                name, size = staging.write_page(source, page.number, page.raw)
                digest.update(page.raw)
                manifest.files.append(name)
                manifest.pages += 1
                manifest.rows += page.rows
                manifest.bytes += size
        except OzonSnapshotChanged as exc:
            if attempt == SNAPSHOT_PASSES:
                raise
            log.warning("%s; fetching %s again (pass %d of %d)", exc, source, attempt + 1, SNAPSHOT_PASSES)
            continue
        manifest.sha256 = digest.hexdigest()
        manifest.requests = client.summary()
        manifest.duration_s = round(time.monotonic() - started, 3)
        staging.write_manifest(manifest)
        log.info(
            "staged %s: method=%s pages=%d rows=%d bytes=%d in %s",
            source,
            method,
            manifest.pages,
            manifest.rows,
            manifest.bytes,
            folder,
        )
        return manifest
    raise AssertionError("unreachable")


def fetch_stocks(client: OzonClient, staging: StagingArea, limit: int = 1000) -> Manifest:
    """Stock by type (fbo/fbs/rfbs/fbp) of every product, from ``/v4/product/info/stocks``."""
    return _stage(staging, "stocks", V4_STOCKS, client, lambda: client.iter_product_stocks(limit=limit))


def fetch_warehouse_stocks(
    client: OzonClient,
    staging: StagingArea,
    method: str = "auto",
    limit: int = 1000,
) -> Manifest:
    """FBO stock per Ozon warehouse; ``method`` is ``auto`` (v2, then v1 if v2 is off), ``v2`` or ``v1``.

    ``/v1/analytics/stocks`` needs SKUs: they come from this run's staged v4 answers when
    ``fetch_stocks`` already staged them, else from a v4 pass of our own.
    """
    if method not in WAREHOUSE_STOCK_METHODS:
        raise ConfigError(
            f"warehouse_stock_method must be one of {sorted(WAREHOUSE_STOCK_METHODS)}, not {method!r}"
        )

    def v1(fallback_from: str | None = None) -> Manifest:
        wanted = fbo_skus_from_staging(staging) or list(fbo_skus_from_ozon(client))
        return _stage(
            staging,
            "warehouse_stocks",
            V1_ANALYTICS_STOCKS,
            client,
            lambda: client.iter_analytics_stocks(wanted),
            fallback_from,
        )

    if method == "v1":
        return v1()
    previous = staging.previous_manifest("warehouse_stocks")
    expected = previous.rows if previous is not None and previous.method == V2_STOCK_ON_WAREHOUSES else None
    try:
        return _stage(
            staging,
            "warehouse_stocks",
            V2_STOCK_ON_WAREHOUSES,
            client,
            lambda: client.iter_stock_on_warehouses(limit=limit, expected_rows=expected),
        )
    except OzonMethodUnavailable as exc:
        if method != "auto":
            raise
        log.warning("%s; falling back to its successor %s", exc, V1_ANALYTICS_STOCKS)
        return v1(fallback_from=V2_STOCK_ON_WAREHOUSES)


def fetch_warehouses(client: OzonClient, staging: StagingArea, method: str = "auto") -> Manifest:
    """The seller's own FBS/rFBS warehouses; ``auto`` uses v2 and falls back to v1 if v2 is off."""
    if method not in WAREHOUSE_LIST_METHODS:
        raise ConfigError(
            f"warehouse_list_method must be one of {sorted(WAREHOUSE_LIST_METHODS)}, not {method!r}"
        )
    first = WAREHOUSE_LIST_METHODS[method]
    pages = {V2_WAREHOUSE_LIST: client.iter_warehouses_v2, V1_WAREHOUSE_LIST: client.iter_warehouses_v1}
    try:
        return _stage(staging, "warehouses", first, client, pages[first])
    except OzonMethodUnavailable as exc:
        if method != "auto":
            raise
        other = V1_WAREHOUSE_LIST
        log.warning("%s; falling back to %s", exc, other)
        return _stage(staging, "warehouses", other, client, pages[other], fallback_from=first)


def fbo_skus_from_ozon(client: OzonClient) -> Iterator[int]:
    """FBO SKUs from a v4 pass of our own (``/v1/analytics/stocks`` needs SKUs to ask about)."""
    for page in client.iter_product_stocks():
        yield from _fbo_skus(page.data)


def fbo_skus_from_staging(staging: StagingArea) -> list[int] | None:
    """FBO SKUs from this run's staged v4 answers, when ``fetch_stocks`` already staged them."""
    manifest = staging.manifest("stocks")
    if manifest is None:
        return None
    skus: list[int] = []
    for _, raw in staging.pages(manifest):
        skus.extend(_fbo_skus(json.loads(raw)))
    return skus


def _fbo_skus(data: dict) -> Iterator[int]:
    for item in data.get("items") or []:
        for stock in (item.get("stocks") or []) if isinstance(item, dict) else []:
            if isinstance(stock, dict) and stock.get("type") == "fbo":
                try:
                    yield int(stock.get("sku"))
                except (TypeError, ValueError):
                    continue
