"""
### ozon_inventory_sync

Keeps each Ozon seller account's stock in PostgreSQL: per product, per fulfilment type
(fbo/fbs/rfbs/fbp) and per Ozon warehouse, with history of every change.

Per account (mapped over the `accounts` param / `ozon_inventory_accounts` Variable):
`fetch_stocks`, `fetch_warehouse_stocks`, `fetch_warehouses` → `validate` → `merge` → `load` → `report`.

- Raw Ozon answers are staged per account and run; XCom carries only manifests.
- A failed source does not stop the others: they are loaded, the run is **degraded** (ledger
  `ozon_sync_run.degraded`), `report` fails. Clear the failed fetch task *with downstream* to complete it.
- A backfill reprocesses archived answers; dates with no archive are skipped with the reason.

Settings: connections `ozon_default` (Client-Id as login, Api-Key as password) and `ozon_postgres`;
params below; environment `OZON_INVENTORY_SCHEDULE`, `OZON_INVENTORY_POOL`, `OZON_INVENTORY_RETRIES`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task_group

from ozon_inventory.methods import choices
from ozon_inventory.tasks import (
    DAG_SETTINGS,
    accounts,
    fetch_stocks,
    fetch_warehouse_stocks,
    fetch_warehouses,
    load,
    merge,
    report,
    validate,
)

with DAG(
    dag_id="ozon_inventory_sync",
    schedule=DAG_SETTINGS.schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=pendulum.duration(hours=3),
    tags=["ozon", "inventory"],
    doc_md=__doc__,
    params={
        "accounts": Param(
            None, type=["null", "array"], description="Ozon connection ids; default: Variable or ozon_default"
        ),
        "postgres_conn_id": Param(
            None, type=["null", "string"], description="target PostgreSQL connection (ozon_postgres)"
        ),
        "staging": Param(None, type=["null", "string"], description="staging folder or fsspec URL"),
        "shrink_threshold": Param(
            None, type=["null", "number"], description="fail validate when a snapshot shrinks by more (0.5)"
        ),
        "allow_shrink": Param(
            None, type=["null", "boolean"], description="load a snapshot the shrink guard stopped"
        ),
        "warehouse_stock_method": Param(
            None,
            type=["null", "string"],
            enum=[None, *choices("warehouse_stocks")],
            description="warehouse-level stock method: auto (falls back to the successor) or a pinned one",
        ),
        "warehouse_list_method": Param(
            None,
            type=["null", "string"],
            enum=[None, *choices("warehouses")],
            description="seller warehouse list method: auto (falls back) or a pinned one",
        ),
        "retention_days": Param(
            None, type=["null", "number"], description="days to keep staged answers (30)"
        ),
        "key_warn_days": Param(
            None, type=["null", "number"], description="warn this many days before an Api-Key expires (14)"
        ),
    },
) as dag:

    @task_group(group_id="account")
    def account_sync(account: str) -> None:
        """One seller account: its tasks fail or succeed on their own."""
        fetched = [fetch_stocks(account), fetch_warehouse_stocks(account), fetch_warehouses(account)]
        checked = validate(account)
        loaded = load(account)
        fetched >> checked >> merge(account) >> loaded
        [*fetched, loaded] >> report(account)

    account_sync.expand(account=accounts())
