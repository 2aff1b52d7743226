"""
### ozon_inventory_sync

Keeps each Ozon seller account's stock in PostgreSQL: per product, per fulfilment type
(fbo/fbs/rfbs/fbp) and per Ozon warehouse, with history of every change.

First `migrate` brings the target database's schema to this code's version (once per version).
Then per account (mapped over the `accounts` param / `ozon_inventory_accounts` Variable):
`fetch_stocks`, `fetch_warehouse_stocks`, `fetch_warehouses` → `validate` → `approve_shrink` → `merge` → `load` → `report`.
`approve_shrink` asks an operator (Browse → Required Actions) only when the shrink guard stopped the run.

- Raw Ozon answers are staged per account and run; XCom carries only manifests.
- A failed source does not stop the others: they are loaded, the run is **degraded** (ledger
  `ozon_sync_run.degraded`), `report` fails. Clear the failed fetch task *with downstream* to complete it.
- A backfill reprocesses archived answers; dates with no archive are skipped with the reason.
- `load` emits an Asset event per account that got fresh stock: `Asset("ozon-inventory://<name>")`
  (through the alias `ozon-inventory`), so downstream DAGs can be scheduled on it. `<name>` is the
  account's name (`ozon_inventory.naming.account_name`): the id itself when it has only `a-z0-9_-`,
  else each other character as `~` and its UTF-8 bytes in hex (`shop:1` → `shop~3A1`); staging
  folders are named the same way.
- Grid labels name the account; `report` adds "degraded: <sources> failed" to its label.

Settings: connections `ozon_default` (Client-Id as login, Api-Key as password) and `ozon_postgres`;
params below; environment `OZON_INVENTORY_SCHEDULE`, `OZON_INVENTORY_POOL`, `OZON_INVENTORY_RETRIES`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task_group

from ozon_inventory.approval import ShrinkApproval
from ozon_inventory.methods import AUTO_ORDER, choices, method
from ozon_inventory.tasks import (
    DAG_SETTINGS,
    MAP_LABEL,
    accounts,
    fetch_stocks,
    fetch_warehouse_stocks,
    fetch_warehouses,
    load,
    merge,
    migrate,
    report,
    validate,
)


def _method_param(name: str, source: str, what: str) -> Param:
    """A method choice: ``auto`` (the Variable if set, else fall back automatically) or one method."""
    shown = {"auto": "auto (Variable, else the first method that works)"}
    shown |= {method(p).choice: f"{method(p).choice}: only {p}" for p in AUTO_ORDER[source]}
    return Param(
        "auto",
        type="string",
        enum=choices(source),
        values_display={c: shown.get(c, c) for c in choices(source)},
        description=f"method for {what}: auto uses the Variable ozon_inventory_{name} if set, else falls "
        "back to the successor when Ozon switches a method off; a named one pins that method for this run",
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
        # Every param has a real default: an empty field (or "auto", or off) defers to the Variable
        # ozon_inventory_<name>, then to the default in brackets; no choice list offers "null".
        "accounts": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Ozon connection ids to sync, one per line; empty: Variable ozon_inventory_accounts, "
            "else [ozon_default]",
        ),
        "postgres_conn_id": Param(
            None,
            type=["null", "string"],
            description="target PostgreSQL connection id; empty: Variable ozon_inventory_postgres_conn_id, "
            "else ozon_postgres",
        ),
        "migrate_conn_id": Param(
            None,
            type=["null", "string"],
            description="connection the migrate task changes the schema through (its owner); empty: Variable "
            "ozon_inventory_migrate_conn_id, else the postgres_conn_id",
        ),
        "staging": Param(
            None,
            type=["null", "string"],
            description="staging folder or fsspec URL (s3://conn@bucket/prefix); empty: Variable "
            "ozon_inventory_staging, else $AIRFLOW_HOME/ozon_inventory_staging",
        ),
        "shrink_threshold": Param(
            None,
            type=["null", "number"],
            description="fail validate when a snapshot has fewer than (1 - t) × the last good one's rows; "
            "empty: Variable ozon_inventory_shrink_threshold, else 0.5",
        ),
        "allow_shrink": Param(
            False,
            type="boolean",
            description="on: load a snapshot the shrink guard stopped; off: Variable "
            "ozon_inventory_allow_shrink decides (default off)",
        ),
        "alert_stock_events": Param(
            False,
            type="boolean",
            description="on: send a digest of the run's stock events (SKUs out of stock, back in stock) "
            "through the alert channels; off: Variable ozon_inventory_alert_stock_events decides (default off)",
        ),
        "warehouse_stock_method": _method_param(
            "warehouse_stock_method", "warehouse_stocks", "warehouse-level FBO stock"
        ),
        "warehouse_list_method": _method_param(
            "warehouse_list_method", "warehouses", "the seller's warehouse list"
        ),
        "retention_days": Param(
            None,
            type=["null", "number"],
            description="days to keep staged answers; empty: Variable ozon_inventory_retention_days, else 30",
        ),
        "retention_mb_per_account": Param(
            None,
            type=["null", "number"],
            description="MB of staged runs to keep per account, the oldest loaded runs removed first; empty: "
            "Variable ozon_inventory_retention_mb_per_account, else 2048",
        ),
        "key_warn_days": Param(
            None,
            type=["null", "number"],
            description="warn this many days before an Api-Key expires; empty: Variable "
            "ozon_inventory_key_warn_days, else 14",
        ),
        "alert_email": Param(
            None,
            type=["null", "string"],
            description="comma-separated e-mail recipients of this run's alerts (SmtpNotifier, connection "
            "smtp_default); empty: Variable ozon_inventory_alert_email, else no e-mail",
        ),
        "alert_notifier": Param(
            None,
            type=["null", "string"],
            description='any Airflow notifier for this run\'s alerts, JSON {"class": "dotted.path", "kwargs": '
            '{...}, "text_field": "text"}; empty: Variable ozon_inventory_alert_notifier, else none',
        ),
    },
) as dag:

    @task_group(group_id="account")
    def account_sync(account: str) -> None:
        """One seller account: its tasks fail or succeed on their own."""
        fetched = [fetch_stocks(account), fetch_warehouse_stocks(account), fetch_warehouses(account)]
        checked = validate(account)
        approved = ShrinkApproval(
            task_id="approve_shrink",
            account=account,
            hours=DAG_SETTINGS.shrink_approval_hours,
            map_index_template=MAP_LABEL,
        )
        loaded = load(account)
        fetched >> checked >> approved >> merge(account) >> loaded
        [*fetched, loaded] >> report(account)

    migrate() >> account_sync.expand(account=accounts())
