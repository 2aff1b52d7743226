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

import psycopg

from ozon_inventory.exceptions import StagingError
from ozon_inventory.sources import REGISTRY, REJECTS, ModelFile, SourceSpec
from ozon_inventory.sql import sql_dir, statements
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import LoadedState, SourceReport, ValidationReport

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20


def ensure_schema(conn: Any) -> None:
    """Create or migrate the schema; concurrent callers wait on an advisory lock."""
    ddl = (sql_dir() / "schema.sql").read_text(encoding="utf-8")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:schema'))")
        cur.execute(ddl)


def previous_counts(conn: Any, account: str) -> dict[str, LoadedState]:
    """What the account has loaded per source: as-of time, rows and products (the shrink guard's base)."""
    with conn.cursor() as cur:
        cur.execute(statements("load")["source_state"], {"account": account})
        found = {
            source: LoadedState(as_of, rows, products) for source, as_of, rows, products in cur.fetchall()
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
    result = LoadResult(
        staging.account,
        run_id,
        "complete",
        bool(report.missing),
        missing=report.missing,
        rejects=report.rejects,
        mismatches=report.mismatches,
    )
    base = {"account": staging.account, "run_id": run_id}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["lock_account"], base)
        cur.execute(sql["bulk_plans"])
        loaded = _loaded_as_of(cur, sql, base)
        cur.execute(sql["clock"])
        clock: datetime = cur.fetchone()[0]
        for spec in REGISTRY:
            source = report.sources.get(spec.name)
            if source is None or source.status != "ok":
                continue
            as_of = _as_of(spec.name, str(source.as_of), clock, staging, run_id)
            if _is_stale(spec.name, as_of, loaded.get(spec.name), staging, run_id):
                result.stale.append(spec.name)
                continue
            params = base | {"as_of": as_of, "held_as_of": loaded.get(spec.name, as_of)}
            _apply_source(cur, sql, staging, spec, source, params, result)
        _load_rejects(cur, sql, staging, base)
        result.status = "degraded" if result.degraded else ("stale" if not result.applied else "complete")
        result.counts = _counts(cur, sql, base)
        result.duration_s = round(time.monotonic() - started, 3)
        _record_run(cur, sql, base, staging.run_key, report, result, durations or {})
    _log_result(result)
    return result


def _loaded_as_of(cur: Any, sql: dict[str, str], base: dict[str, Any]) -> dict[str, datetime]:
    """The as-of time of each source the account has loaded (read under the account's lock)."""
    cur.execute(sql["source_state"], base)
    return {row[0]: row[1] for row in cur.fetchall()}


def _as_of(source: str, stamped: str, clock: datetime, staging: StagingArea, run_id: str) -> datetime:
    """The source's as-of time, but never later than the database's clock: a run stamped in the
    future (a worker's clock or Ozon's ``Date`` ahead) would make every later, correct run stale."""
    as_of = datetime.fromisoformat(stamped)
    if as_of <= clock:
        return as_of
    log.warning(
        "account %s, run %s: %s is stamped %s, ahead of the database clock %s (a clock runs ahead): "
        "stored as of %s",
        staging.account,
        run_id,
        source,
        as_of,
        clock,
        clock,
    )
    return clock


def _is_stale(
    source: str, as_of: datetime, loaded: datetime | None, staging: StagingArea, run_id: str
) -> bool:
    """A source older than what is loaded already (a backfill of an old archive) is not applied."""
    if loaded is None or loaded <= as_of:
        return False
    log.warning(
        "account %s, run %s: %s is from %s, older than the loaded %s: not applied",
        staging.account,
        run_id,
        source,
        as_of,
        loaded,
    )
    return True


def _apply_source(
    cur: Any,
    sql: dict[str, str],
    staging: StagingArea,
    spec: SourceSpec,
    source: SourceReport,
    params: dict[str, Any],
    result: LoadResult,
) -> None:
    """Copy the source's files, keep its history change-only, run its statements, record its state."""
    for file in spec.loads:
        _copy(cur, sql, staging, file)
    not_provided = sorted(spec.method_rows(str(source.method)).not_provided)
    for table in spec.history:
        _apply_history(cur, sql, table.name, params | {"not_provided": not_provided}, result)
    for name in spec.apply:
        cur.execute(sql[name], params)
    cur.execute(
        sql["upsert_source_state"],
        params
        | {
            "source": spec.name,
            "method": source.method,
            "rows": source.rows_valid,
            "products": source.products,
        },
    )
    result.applied.append(spec.name)


def _copy(cur: Any, sql: dict[str, str], staging: StagingArea, file: ModelFile) -> None:
    """Create ``file``'s temp table and COPY the file into it, columns named from its declaration.

    A file that is gone or that PostgreSQL refuses fails the load with ``StagingError`` (permanent:
    loading it again fails the same way) naming the file, the account and the run.
    """
    cur.execute(sql[f"temp_{file.name}"])
    target = staging.file(file.folder, file.file)
    try:
        with staging.open_binary(file.folder, file.file) as handle, cur.copy(file.copy_sql()) as copy:
            while chunk := handle.read(_COPY_CHUNK):
                copy.write(chunk)
    except FileNotFoundError:
        raise StagingError(
            f"account {staging.account}, run {staging.run_key}: {target} is missing: "
            "run validate and merge again (clear validate with its downstream tasks)"
        ) from None
    except psycopg.errors.DataError as exc:
        raise StagingError(
            f"account {staging.account}, run {staging.run_key}: {target} does not load into {file.table} "
            f"({str(exc).splitlines()[0]}): run validate and merge again; nothing was loaded"
        ) from exc
    # No ANALYZE: with nested loops off (``bulk_plans``) every join is hashed or merged whatever the
    # statistics say, and the planner sizes a never-analyzed table from its pages; the ANALYZEs of a
    # 100,000-product load took 0.3 s for no better plan.


def _apply_history(
    cur: Any, sql: dict[str, str], name: str, params: dict[str, Any], result: LoadResult
) -> None:
    """Close the current rows that changed or vanished and open rows for the new values.

    The first snapshot of an account opens every row straight from the temp table; later ones
    diff against the current rows once and touch only what changed. Held keys (their new value was
    rejected) keep their current row, marked; a held row confirmed by this run is unmarked.
    """
    cur.execute(sql[f"has_current_{name}"], params)
    if not cur.fetchone()[0]:
        cur.execute(sql[f"first_{name}"], params)
        result.history_opened += cur.rowcount
        return
    cur.execute(sql[f"has_held_{name}"], params)
    if cur.fetchone()[0]:
        cur.execute(sql[f"confirm_{name}"], params)
    cur.execute(sql[f"diff_{name}"], params)
    cur.execute(sql["tid_plans"])  # close by the row addresses the diff found: no scan of the history
    cur.execute(sql[f"close_{name}"], params)
    result.history_closed += cur.rowcount
    cur.execute(sql["scan_plans"])
    cur.execute(sql[f"open_{name}"], params)
    result.history_opened += cur.rowcount
    if f"fill_{name}" in sql:  # attributes learned for unchanged rows, filled in place
        cur.execute(sql[f"fill_{name}"], params)
    cur.execute(sql[f"hold_{name}"], params)


def _load_rejects(cur: Any, sql: dict[str, str], staging: StagingArea, base: dict[str, Any]) -> None:
    """Replace the run's rejects (a repeated load of the run stores them once)."""
    cur.execute(sql["delete_run_rejects"], base)
    _copy(cur, sql, staging, REJECTS)
    cur.execute(sql["insert_rejects"], base)


def _counts(cur: Any, sql: dict[str, str], base: dict[str, Any]) -> dict[str, int]:
    """The account's current snapshot sizes: each source's ledger figures from its loaded state
    (no scan of the big tables), and the warehouses."""
    cur.execute(sql["source_state"], base)
    state = {source: {"rows": rows, "products": products} for source, _, rows, products in cur.fetchall()}
    counts = {figure: 0 for spec in REGISTRY for figure in spec.counts}
    for spec in REGISTRY:
        for figure, kind in spec.counts.items():
            counts[figure] = state.get(spec.name, {}).get(kind, 0)
    cur.execute(sql["count_warehouses"], base)
    counts.update(zip((column.name for column in cur.description), cur.fetchone(), strict=True))
    return counts


def _record_run(
    cur: Any,
    sql: dict[str, str],
    base: dict[str, Any],
    run_key: str,
    report: ValidationReport,
    result: LoadResult,
    durations: dict[str, float],
) -> None:
    """The run's ledger row (one per account and run; a repeated load updates it)."""
    sources = {s: asdict(r) for s, r in report.sources.items()}
    cur.execute(
        sql["upsert_run"],
        base
        | {
            "run_key": run_key,
            "status": result.status,
            "degraded": result.degraded,
            "missing": result.missing,
            "applied": result.applied,
            "stale": result.stale,
            **result.counts,  # the ledger's figures: products, stock_rows, warehouse_rows, warehouses
            "rejects": result.rejects,
            "mismatches": result.mismatches,
            "history_opened": result.history_opened,
            "history_closed": result.history_closed,
            "sources": json.dumps(sources, ensure_ascii=False),
            "durations": json.dumps(durations | {"load": result.duration_s}),
        },
    )


def _log_result(result: LoadResult) -> None:
    log.info(
        "loaded account %s run %s: %s, applied %s, stale %s, missing %s, history +%d/-%d, counts %s",
        result.account,
        result.run_id,
        result.status,
        result.applied,
        result.stale,
        result.missing,
        result.history_opened,
        result.history_closed,
        result.counts,
    )
