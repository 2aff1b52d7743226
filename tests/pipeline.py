"""All stages of one account's run in one process: what the DAG's tasks do, in order.

The DAG runs each stage as its own task; this is for the benchmark and the tests of the stages,
so that both exercise exactly the functions the tasks call.
"""

from __future__ import annotations

import time
from typing import Any

from ozon_inventory.client import OzonClient
from ozon_inventory.fetch import fetch_stocks, fetch_warehouse_stocks, fetch_warehouses
from ozon_inventory.load import load_run, previous_counts
from ozon_inventory.merge import merge_run
from ozon_inventory.schema import migrate
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import validate_run


def sync_account(
    client: OzonClient,
    staging: StagingArea,
    conn: Any,
    run_id: str,
    warehouse_stock_method: str = "auto",
    warehouse_list_method: str = "auto",
    shrink_threshold: float = 0.5,
    allow_shrink: bool = False,
) -> dict[str, Any]:
    """Fetch, validate, merge and load one account; return the figures of each stage."""
    timings: dict[str, float] = {}

    def timed(name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            timings[name] = round(time.monotonic() - started, 3)

    timed("fetch_stocks", fetch_stocks, client, staging)
    timed("fetch_warehouse_stocks", fetch_warehouse_stocks, client, staging, warehouse_stock_method)
    timed("fetch_warehouses", fetch_warehouses, client, staging, warehouse_list_method)
    migrate(conn)
    report = timed(
        "validate",
        validate_run,
        staging,
        previous_counts(conn, staging.account),
        shrink_threshold,
        allow_shrink,
    )
    merged = timed("merge", merge_run, staging, report)
    loaded = timed("load", load_run, conn, staging, report, run_id, dict(timings))
    return {"report": report, "merged": merged, "loaded": loaded, "timings": timings}
