"""Load one account's merged run into PostgreSQL in a single transaction.

Why one transaction: readers never see half a snapshot, a failed load leaves the previous snapshot
whole, and a retried or repeated load finds nothing left to change (history rows are written only
for changes, so the same data twice writes nothing). Rows are COPYed into temp tables and applied
with set statements from ``include/sql/load.sql``:

- each source present in the run replaces that source's current rows (stock that vanished from Ozon
  is closed in history, not kept); a source missing from the run keeps its last good rows and
  their as-of time, and the run is marked degraded in the ledger;
- a source whose as-of time is older than what is loaded already (a backfill reprocessing an old
  archive) is not applied, so a past run never overwrites newer data.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ozon_inventory.sql import sql_dir, statements
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import ValidationReport

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20


def ensure_schema(conn: Any) -> None:
    """Create or migrate the schema; concurrent callers wait on an advisory lock."""
    ddl = (sql_dir() / "schema.sql").read_text(encoding="utf-8")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:schema'))")
        cur.execute(ddl)


def previous_counts(conn: Any, account: str) -> dict[str, int]:
    """Rows of the account's last good snapshot per source (products for ``stocks``)."""
    with conn.cursor() as cur:
        cur.execute("SELECT source, rows, products FROM ozon_source_state WHERE account = %s", (account,))
        found = {
            source: (products if source == "stocks" else rows) for source, rows, products in cur.fetchall()
        }
    conn.commit()
    return found


@dataclass
class LoadResult:
    account: str
    run_id: str
    status: str
    degraded: bool
    applied: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    history_opened: int = 0
    history_closed: int = 0
    rejects: int = 0
    mismatches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _copy(cur: Any, table: str, staging: StagingArea, folder: str, name: str) -> None:
    with staging.open_binary(folder, name) as handle, cur.copy(f"COPY {table} FROM STDIN") as copy:
        while chunk := handle.read(_COPY_CHUNK):
            copy.write(chunk)
    cur.execute(f"ANALYZE {table}")


def load_run(
    conn: Any,
    staging: StagingArea,
    report: ValidationReport,
    run_id: str,
    durations: dict[str, float] | None = None,
) -> LoadResult:
    """Apply the run's model files for ``staging.account``; commit once, or not at all."""
    started = time.monotonic()
    sql = statements("load")
    account = staging.account
    ok = [s for s, r in report.sources.items() if r.status == "ok"]
    result = LoadResult(account, run_id, "complete", False, missing=report.missing, rejects=report.rejects)
    result.mismatches = report.mismatches
    with conn.transaction(), conn.cursor() as cur:
        base = {"account": account, "run_id": run_id}
        cur.execute(sql["lock_account"], base)
        cur.execute(sql["bulk_plans"])
        cur.execute(sql["source_state"], base)
        state = {row[0]: row[1] for row in cur.fetchall()}
        for source in ok:
            as_of = datetime.fromisoformat(report.sources[source].as_of)
            if source in state and state[source] > as_of:
                result.stale.append(source)
                log.warning(
                    "%s of run %s is from %s, older than the loaded %s: not applied",
                    source,
                    run_id,
                    as_of,
                    state[source],
                )
                continue
            params = base | {"as_of": as_of}
            if source == "stocks":
                _apply_stocks(cur, sql, staging, params, result)
            elif source == "warehouse_stocks":
                _apply_warehouse_stocks(cur, sql, staging, params, result)
            else:
                _apply_warehouses(cur, sql, staging, params, "seller")
            src = report.sources[source]
            cur.execute(
                sql["upsert_source_state"],
                params
                | {"source": source, "method": src.method, "rows": src.rows_valid, "products": src.products},
            )
            result.applied.append(source)

        cur.execute(sql["delete_run_rejects"], base)
        cur.execute(sql["temp_rejects"])
        _copy(cur, "tmp_rejects", staging, "validated", "rejects.tsv")
        cur.execute(sql["insert_rejects"], base)

        result.degraded = bool(result.missing)
        result.status = "degraded" if result.degraded else ("stale" if not result.applied else "complete")
        result.counts = _counts(cur, account)
        result.duration_s = round(time.monotonic() - started, 3)
        sources = {s: asdict(r) for s, r in report.sources.items()}
        cur.execute(
            sql["upsert_run"],
            base
            | {
                "run_key": staging.run_key,
                "status": result.status,
                "degraded": result.degraded,
                "missing": result.missing,
                "applied": result.applied,
                "stale": result.stale,
                "products": result.counts["products"],
                "stock_rows": result.counts["stock_rows"],
                "warehouse_rows": result.counts["warehouse_rows"],
                "warehouses": result.counts["warehouses"],
                "rejects": result.rejects,
                "mismatches": result.mismatches,
                "history_opened": result.history_opened,
                "history_closed": result.history_closed,
                "sources": json.dumps(sources, ensure_ascii=False),
                "durations": json.dumps((durations or {}) | {"load": result.duration_s}),
            },
        )
    log.info(
        "loaded account %s run %s: %s, applied %s, stale %s, missing %s, history +%d/-%d, counts %s",
        account,
        run_id,
        result.status,
        result.applied,
        result.stale,
        result.missing,
        result.history_opened,
        result.history_closed,
        result.counts,
    )
    return result


def _apply_stocks(
    cur: Any, sql: dict[str, str], staging: StagingArea, params: dict, result: LoadResult
) -> None:
    cur.execute(sql["temp_stock_by_type"])
    cur.execute(sql["temp_products"])
    _copy(cur, "tmp_stock_by_type", staging, "model", "stock_by_type.tsv")
    _copy(cur, "tmp_products", staging, "model", "products.tsv")
    _apply_history(cur, sql, "stock_by_type", params, result)
    cur.execute(sql["upsert_products"], params)
    cur.execute(sql["delete_vanished_products"], params)
    cur.execute(sql["upsert_skus"], params)
    cur.execute(sql["delete_vanished_skus"], params)


def _apply_warehouse_stocks(
    cur: Any, sql: dict[str, str], staging: StagingArea, params: dict, result: LoadResult
) -> None:
    cur.execute(sql["temp_stock_by_warehouse"])
    _copy(cur, "tmp_stock_by_warehouse", staging, "model", "stock_by_warehouse.tsv")
    _apply_history(cur, sql, "stock_by_warehouse", params, result)
    _apply_warehouses(cur, sql, staging, params, "ozon")


def _apply_history(cur: Any, sql: dict[str, str], name: str, params: dict, result: LoadResult) -> None:
    """Close the current rows that changed or vanished and open rows for the new values.

    The first snapshot of an account opens every row straight from the temp table; later ones
    diff against the current rows once and touch only what changed.
    """
    cur.execute(sql[f"has_current_{name}"], params)
    if not cur.fetchone()[0]:
        cur.execute(sql[f"first_{name}"], params)
        result.history_opened += cur.rowcount
        return
    cur.execute(sql[f"diff_{name}"], params)
    cur.execute(sql[f"close_{name}"], params)
    result.history_closed += cur.rowcount
    cur.execute(sql[f"open_{name}"], params)
    result.history_opened += cur.rowcount


def _apply_warehouses(cur: Any, sql: dict[str, str], staging: StagingArea, params: dict, kind: str) -> None:
    cur.execute("SELECT to_regclass('pg_temp.tmp_warehouses') IS NOT NULL")
    if not cur.fetchone()[0]:
        cur.execute(sql["temp_warehouses"])
        _copy(cur, "tmp_warehouses", staging, "model", "warehouses.tsv")
    cur.execute(sql["upsert_warehouses"], params | {"kind": kind})
    cur.execute(sql["delete_vanished_warehouses"], params | {"kind": kind})


def _counts(cur: Any, account: str) -> dict[str, int]:
    """The account's current snapshot sizes, from the per-source state (no scan of the big tables)."""
    cur.execute(
        """
        SELECT coalesce(max(products) FILTER (WHERE source = 'stocks'), 0),
               coalesce(max(rows) FILTER (WHERE source = 'stocks'), 0),
               coalesce(max(rows) FILTER (WHERE source = 'warehouse_stocks'), 0),
               (SELECT count(*) FROM ozon_warehouse WHERE account = %(a)s),
               (SELECT count(*) FROM ozon_warehouse WHERE account = %(a)s AND kind = 'ozon')
        FROM ozon_source_state WHERE account = %(a)s
        """,
        {"a": account},
    )
    products, stock_rows, warehouse_rows, warehouses, ozon = cur.fetchone()
    return {
        "products": products,
        "stock_rows": stock_rows,
        "warehouse_rows": warehouse_rows,
        "warehouses": warehouses,
        "ozon_warehouses": ozon,
    }
