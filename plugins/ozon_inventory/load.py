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

Given a way to open a second connection, the load prepares its largest history source there while
it applies the others (:class:`_Ahead`): COPY into unlogged tables and the diff against the current
rows, the two slowest steps, run on the second core. The transaction still applies everything, so
nothing about atomicity changes; whatever goes wrong ahead, the load does that source itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from queue import SimpleQueue
from typing import Any

import psycopg

from ozon_inventory.exceptions import StagingError
from ozon_inventory.hooks.postgres import Database, as_database
from ozon_inventory.schema import give_way, set_lock_timeout
from ozon_inventory.sources import REGISTRY, REJECTS, ModelFile, SourceSpec
from ozon_inventory.sql import statements
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import LoadedState, SourceReport, ValidationReport

log = logging.getLogger(__name__)

#: What ``ozon_stock_event`` holds: the amount available to sell crossing 0, per stock type or warehouse.
EVENT_SCOPES = ("type", "warehouse")
EVENT_KINDS = ("out_of_stock", "back_in_stock")

_COPY_CHUNK = 1 << 20
#: the last chunk's diff takes 50 ms; a differ this far behind is slower than the load's own diff
_DIFF_WAIT_S = 10.0
#: How long a load waits for a table lock another session holds (a ``LOCK TABLE``, a ``VACUUM FULL``,
#: a row a reader locked ``FOR UPDATE``) before giving way and trying again; readers never wait on a
#: load, which takes only row-exclusive locks, so only such sessions can be in its way.
LOAD_LOCK_TIMEOUT_S = 5.0
LOAD_ATTEMPTS = 3
#: The lock modes a load's ROW EXCLUSIVE conflicts with.
_BLOCKS_WRITES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


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
    #: the run's stock events per scope and kind (``EVENT_SCOPES`` × ``EVENT_KINDS``, zeros included)
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_run(
    conn: Any,
    staging: StagingArea,
    report: ValidationReport,
    run_id: str,
    durations: dict[str, float] | None = None,
    connect: Callable[[], Any] | None = None,
    shrink_decision: dict[str, Any] | None = None,
) -> LoadResult:
    """Apply the run's model files for ``staging.account``; commit once, or not at all.

    ``connect`` opens another connection to the same database: the largest history source is then
    prepared on it, in parallel (:class:`_Ahead`). ``shrink_decision``: an operator's approval of a
    load the shrink guard stopped, for the ledger.
    """
    started = time.monotonic()
    result = give_way(
        lambda: _load_once(conn, staging, report, run_id, durations or {}, connect, shrink_decision),
        conn,
        _BLOCKS_WRITES,
        LOAD_ATTEMPTS,
        f"account {staging.account}: load",
        lambda held: (
            f"account {staging.account}, run {run_id}: the load waited {LOAD_LOCK_TIMEOUT_S:g} s for a lock "
            f"held by {held}, in each of {LOAD_ATTEMPTS} attempts; nothing was loaded and the previous "
            "snapshot is untouched. End that session (or wait for it) and clear the load task"
        ),
        time.sleep,
    )
    result.duration_s = round(time.monotonic() - started, 3)
    _log_result(result)
    return result


def _load_once(
    conn: Any,
    staging: StagingArea,
    report: ValidationReport,
    run_id: str,
    durations: dict[str, float],
    connect: Callable[[], Any] | None,
    shrink_decision: dict[str, Any] | None,
) -> LoadResult:
    """One attempt: everything in one transaction, which a lock not granted in time rolls back."""
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
        cur.execute(sql["lock_account"], base)  # another load of the account: wait for it to end
        set_lock_timeout(cur, LOAD_LOCK_TIMEOUT_S)
        cur.execute(sql["bulk_plans"])
        loaded = _loaded_as_of(cur, sql, base)
        cur.execute(sql["clock"])
        clock: datetime = cur.fetchone()[0]
        applying: list[tuple[SourceSpec, SourceReport, dict[str, Any]]] = []
        for spec in REGISTRY:
            source = report.sources.get(spec.name)
            if source is None or source.status != "ok":
                continue
            as_of = _as_of(spec.name, str(source.as_of), clock, staging, run_id)
            if _is_stale(spec.name, as_of, loaded.get(spec.name), staging, run_id):
                result.stale.append(spec.name)
                continue
            params = base | {"as_of": as_of, "held_as_of": loaded.get(spec.name, as_of)}
            applying.append((spec, source, params))
        # under the account's lock: no other load changes what the second connection reads
        ahead = _Ahead.start(connect, sql, staging, applying) if connect is not None else None
        try:
            for spec, source, params in applying:
                prepared = ahead.take(cur, spec) if ahead is not None else None
                _apply_source(cur, sql, staging, spec, source, params, result, prepared)
        finally:
            if ahead is not None:
                ahead.close()
        if ahead is not None:
            ahead.drop(cur)
        drop_prestaged(cur, staging.account, staging.run_key)  # read (or not needed): gone with the commit
        _load_rejects(cur, sql, staging, base)
        result.status = "degraded" if result.degraded else ("stale" if not result.applied else "complete")
        result.counts = _counts(cur, sql, base)
        result.events = _events(cur, sql, base)
        result.duration_s = round(time.monotonic() - started, 3)
        _record_run(cur, sql, base, staging.run_key, report, result, durations, shrink_decision)
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
    prepared: _Prepared | None = None,
) -> None:
    """Copy the source's files, keep its history change-only, run its statements, record its state."""
    streamed = set(prepared.streamed) if prepared is not None else set()
    if prepared is None:
        for file in spec.loads:
            if (table := _prestaged(cur, source, file)) is not None:
                _read_as(cur, file.table, table)
                streamed.add(file.name)
            else:
                _copy(cur, sql, staging, file)
    history = params | {"not_provided": not_provided(spec, str(source.method)), "source": spec.name}
    for file in spec.history:
        ready = prepared.history.get(file.name) if prepared is not None else None
        vanished = False
        if (
            ready is None
            and file.name in streamed
            and (fetched := _fetched_diff(cur, sql, file, source, history))
        ):
            ready, vanished = fetched
        _apply_history(cur, sql, file, history, result, ready, vanished, source.files.get(file.file))
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


def _copy(
    cur: Any, sql: dict[str, str], staging: StagingArea, file: ModelFile, table: str | None = None
) -> None:
    """Create ``file``'s temp table and COPY the file into it, columns named from its declaration
    (``table``: into that table, made already, instead).

    A file that is gone or that PostgreSQL refuses fails the load with ``StagingError`` (permanent:
    loading it again fails the same way) naming the file, the account and the run.
    """
    if table is None:
        cur.execute(sql[f"temp_{file.name}"])
    target = staging.file(file.folder, file.file)
    try:
        with staging.open_binary(file.folder, file.file) as handle, cur.copy(file.copy_sql(table)) as copy:
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
    # No ANALYZE: with nested loops and merge joins off (``bulk_plans``) every join is hashed whatever the
    # statistics say, and the planner sizes a never-analyzed table from its pages; the ANALYZEs of a
    # 100,000-product load took 0.3 s for no better plan.


def _create_unlogged(cur: Any, sql: dict[str, str], file: ModelFile, table: str) -> None:
    """An unlogged table shaped as ``file``'s temp table (its columns' types declared once, in load.sql)."""
    cur.execute(sql[f"temp_{file.name}"])
    cur.execute(f"CREATE UNLOGGED TABLE {table} (LIKE {file.table})")
    cur.execute(f"DROP TABLE {file.table}")


def _read_as(cur: Any, name: str, table: str) -> None:
    """A temp view ``name`` of ``table``: the load's statements read a prepared table by the name they use."""
    cur.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {table}")


def prestaged_table(account: str, run_key: str, file: ModelFile) -> str:
    """The unlogged table a fetch streams ``file`` of the account's run into (``Prestage``)."""
    key = hashlib.sha256(f"{account}\0{run_key}".encode()).hexdigest()[:16]
    return f"ozon_pre_{key}_{file.name}"


def prestaged_diff(account: str, run_key: str, file: ModelFile) -> str:
    """The unlogged table a fetch diffs ``file`` of the account's run into (``_Differ``)."""
    return prestaged_table(account, run_key, file).replace("_pre_", "_prediff_", 1)


def drop_prestaged(cur: Any, account: str, run_key: str) -> None:
    """Drop the tables the run's fetches streamed into and diffed into (and any view on them)."""
    names = [
        name(account, run_key, spec.rows) for spec in REGISTRY for name in (prestaged_table, prestaged_diff)
    ]
    cur.execute(f"DROP TABLE IF EXISTS {', '.join(names)} CASCADE")


class Prestage:
    """A source's rows file streamed into the target database while the fetch writes it, and, for a
    history file, diffed there against the account's current rows as it lands.

    The fetch waits for Ozon's rate budget most of the time; the database parses the rows then, on
    the other core, instead of in the load after the last page (0.5 s at 850,000 rows). The rows go
    in chunks of ``CHUNK_ROWS``, each COPYed into its own unlogged table inheriting the source's
    table (``prestaged_table``), so that the load reads them all under one name. A history file's
    chunks are diffed as they commit (:class:`_Differ`), which leaves the load only its last part.

    The load reads the table when it holds exactly the rows of the file it was told of
    (``SourceReport.prestaged``), and else copies the file as ever; it uses the diff only when the
    current rows are provably those the diff was made against (``SourceReport.diffed``); it drops
    the tables in its transaction, and ``report`` drops what a failed run left.
    """

    CHUNK_ROWS = 20_000  # the last chunk is diffed after the last page: 50 ms at this size

    def __init__(self, database: Database | str, staging: StagingArea, spec: SourceSpec, method: str):
        self.file, self._db = spec.rows, as_database(database)
        self.table = prestaged_table(staging.account, staging.run_key, spec.rows)
        self.rows, self._chunks, self._chunk_rows = 0, 0, 0
        self._differ: _Differ | None = None
        self.conn = self._db.connect("ozon_inventory prestage")
        try:
            self.cur = self.conn.cursor()
            diff = prestaged_diff(staging.account, staging.run_key, spec.rows)
            with self.conn.transaction():
                self.cur.execute(f"DROP TABLE IF EXISTS {self.table}, {diff} CASCADE")
                _create_unlogged(self.cur, statements("load"), self.file, self.table)
                self.cur.execute("SELECT %s::regclass::oid", (self.table,))
                ((self.oid,),) = self.cur.fetchall()
            if spec.rows in spec.history:
                self._differ = _Differ(self._db, staging.account, spec, method, diff)
            self._open_chunk()
        except BaseException:
            self._close()
            raise

    def _open_chunk(self) -> None:
        self._chunks += 1
        self._chunk = f"{self.table}_{self._chunks}"
        self.cur.execute(f"CREATE UNLOGGED TABLE {self._chunk} () INHERITS ({self.table})")
        self._stream = self.cur.copy(self.file.copy_sql(self._chunk))
        self._copy = self._stream.__enter__()
        self._chunk_rows = 0

    def _close_chunk(self) -> None:
        """End the chunk's COPY (committing it) and hand it to the differ."""
        self._stream.__exit__(None, None, None)
        self.rows += self.cur.rowcount
        if self._differ is not None:
            self._differ.add(self._chunk)

    def write(self, text: str) -> None:
        self._copy.write(text)
        self._chunk_rows += text.count("\n")  # COPY text escapes a newline inside a value
        if self._chunk_rows >= self.CHUNK_ROWS:
            self._close_chunk()
            self._open_chunk()

    def finish(self) -> tuple[list[Any], dict[str, Any] | None]:
        """End the last COPY; the table, its rows and oid, and the diff (None: none was made)."""
        try:
            self._close_chunk()
            return [self.table, self.rows, self.oid], self._differ.finish(self.rows) if self._differ else None
        finally:
            self._close()

    def abandon(self) -> None:
        """Stop streaming and drop the tables (best effort: the load ignores a table it was not told of)."""
        if self._differ is not None:
            self._differ.cancel()
        self._close()  # ends the COPY, which the server then rolls back
        try:
            with self._db.connect("ozon_inventory prestage") as conn:
                names = [self.table, *([self._differ.table] if self._differ else [])]
                conn.execute(f"DROP TABLE IF EXISTS {', '.join(names)} CASCADE")
        except psycopg.Error:  # left for report (or the run's next fetch) to drop
            log.debug("dropping %s", self.table, exc_info=True)

    def _close(self) -> None:
        if self._differ is not None:
            self._differ.stop()
        self.conn.close()


class _Differ:
    """A history file's diff against the account's current rows (``diff_new_<file>``), made chunk by
    chunk on its own connection and thread while the fetch streams the rows, into an unlogged table.

    It is made outside the load's transaction, so the load uses it only if nothing could have
    changed the current rows since: the ``history_version`` read before the first chunk and after
    the last one must be equal (no load of the source committed while the chunks were diffed), and
    the load finds it equal again under the account's lock. A first snapshot or held rows (the load
    rewrites them before its diff) leave the diff to the load. Any failure only costs the advance:
    the load then makes the diff itself.
    """

    def __init__(self, database: Database, account: str, spec: SourceSpec, method: str, table: str):
        self.table, self._db = table, database
        self._name = spec.rows.name
        self._params = {
            "account": account,
            "source": spec.name,
            "history": history_table(spec.rows),
            "not_provided": not_provided(spec, method),
        }
        self._queue: SimpleQueue[str | None] = SimpleQueue()
        self._conn: psycopg.Connection[Any] | None = None
        self._outcome: dict[str, Any] | None = None
        self._why = "not finished"
        self._thread = threading.Thread(target=self._run, name="ozon-prestage-diff", daemon=True)
        self._thread.start()

    def add(self, chunk: str) -> None:
        self._queue.put(chunk)

    def stop(self) -> None:
        self._queue.put(None)

    def cancel(self) -> None:
        """Stop the statement the differ runs: a server goes on with a query whose client is gone,
        and the load would wait for its locks."""
        self.stop()
        if (conn := self._conn) is not None:
            try:
                conn.cancel()
            except psycopg.Error:
                log.debug("cancelling the diff of %s", self._name, exc_info=True)

    def finish(self, rows: int) -> dict[str, Any] | None:
        """Wait for the last chunk's diff; what the load needs to check and use it, or None."""
        self.stop()
        self._thread.join(_DIFF_WAIT_S)
        if self._thread.is_alive():
            self.cancel()
            self._why = f"still diffing after {_DIFF_WAIT_S:g} s"
        outcome = self._outcome
        if self._thread.is_alive() or outcome is None:
            log.info("%s: no diff made while fetching (%s); the load makes it", self._name, self._why)
            return None
        current, new_keys = outcome.pop("current"), outcome.pop("new_keys")
        # the run's keys are unique: each of the others matched one current row
        return outcome | {"vanished": current - (rows - new_keys)}

    def _run(self) -> None:
        try:
            with self._db.connect("ozon_inventory prestage diff") as conn:
                self._conn = conn
                conn.execute(
                    f"SET statement_timeout = {int(_DIFF_WAIT_S * 1000)}"
                )  # no statement outlives the wait
                self._outcome = self._diff(conn.cursor(), statements("load"))
        except Exception as exc:  # noqa: BLE001 - the load makes the diff itself
            self._why = f"{type(exc).__name__}: {exc}"

    def _diff(self, cur: Any, sql: dict[str, str]) -> dict[str, Any] | None:
        name, params = self._name, self._params
        with cur.connection.transaction():  # one snapshot: the count is of the version's rows
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(sql["history_version"], params)
            version = list(cur.fetchone())
            cur.execute(sql[f"count_current_{name}"], params)
            current = cur.fetchone()[0]
            cur.execute(sql[f"has_held_{name}"], params)
            held = cur.fetchone()[0]
        if not current or held:
            self._why = "held rows, which the load rewrites first" if held else "a first snapshot"
            return None
        with cur.connection.transaction():
            cur.execute(sql[f"diff_table_{name}"])
            cur.execute(f"CREATE UNLOGGED TABLE {self.table} (LIKE diff_{name})")
            cur.execute(f"DROP TABLE diff_{name}")
        _read_as(cur, f"diff_{name}", self.table)  # the statements insert through the view
        while (chunk := self._queue.get()) is not None:
            with cur.connection.transaction():
                cur.execute(sql["probe_plans"])
                cur.execute(f"CREATE OR REPLACE TEMP VIEW tmp_{name} AS SELECT * FROM {chunk}")
                cur.execute(sql[f"diff_new_{name}"], params)
        cur.execute(sql[f"count_new_{name}"], params)
        new_keys = cur.fetchone()[0]
        cur.execute(sql["history_version"], params)
        if list(cur.fetchone()) != version:
            self._why = "a load of the source committed meanwhile"
            return None
        return {
            "table": self.table,
            "version": version,
            "not_provided": params["not_provided"],
            "current": current,
            "new_keys": new_keys,
        }


def _fetched_diff(
    cur: Any, sql: dict[str, str], file: ModelFile, source: SourceReport, params: dict[str, Any]
) -> tuple[str, bool] | None:
    """The diff the fetch made of ``file`` (``_Differ``) and whether rows vanished since, when it
    holds for the current rows: none changed since it was made (``history_version``, read under
    the account's lock), none is held, the method's columns are the same. Else None: the load
    makes the diff. Called only when the load reads the rows the fetch streamed (the diff's rows)."""
    made = source.diffed.get(file.name)
    if not made:
        return None
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (made["table"],))
    why = None if cur.fetchone()[0] else "its table is gone"
    if why is None:
        cur.execute(sql["history_version"], params | {"history": history_table(file)})
        if list(cur.fetchone()) != made["version"]:
            why = "the current rows changed since (a load, or the table was rewritten)"
    if why is None:
        cur.execute(sql[f"has_held_{file.name}"], params)
        if cur.fetchone()[0]:
            why = "held rows, which the load rewrites first"
        elif made["not_provided"] != params["not_provided"]:
            why = "another method's columns"
        elif made["vanished"] < 0:
            why = "more rows than keys"
    if why is not None:
        log.info("%s: the diff made while fetching is not used (%s); made here", file.name, why)
        return None
    log.info(
        "%s: the diff made while fetching is used (current rows gone since: %d)", file.name, made["vanished"]
    )
    return made["table"], made["vanished"] > 0


def _prestaged(cur: Any, source: SourceReport, file: ModelFile) -> str | None:
    """The table the fetch streamed ``file`` into, when it holds exactly the file's rows: the one
    the fetch made (its oid; a fetch tried again since drops it and makes another), or, where the
    fetch recorded no oid, the one holding as many rows as the file."""
    table, rows, oid = [*(source.prestaged.get(file.name) or []), None, None, None][:3]
    if table is None or rows != source.files.get(file.file):
        return None
    cur.execute("SELECT to_regclass(%s)::oid", (table,))
    found = cur.fetchone()[0]
    if found is None or (oid is not None and found != oid):
        return None
    if oid is None:
        cur.execute(f"SELECT count(*) FROM {table}")
        if cur.fetchone()[0] != rows:
            return None
    return str(table)


@dataclass
class _Prepared:
    """What ``_Ahead`` made for one source: an unlogged table per loaded file, and per history
    table the diff it made (absent: the load makes it, as for any source)."""

    files: dict[str, str]
    history: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)  # copy, diff
    streamed: list[str] = field(default_factory=list)  # files read where the fetch streamed them


class _Ahead:
    """The largest history source, prepared on a second connection while the load applies the others.

    Its files are COPYed into unlogged tables (``ozon_ahead_<account hash>_<file>``) and, when the
    account has current rows and none of them is held, its diff against them is made there too. That
    is safe to read outside the load's transaction because the load holds the account's lock: no
    other load writes the account's rows, and the load itself touches this source's tables only
    after taking what was prepared. Held rows (``confirm_`` rewrites them first) or a first snapshot
    leave the diff to the load. The load then reads the tables through temp views of the names its
    statements use, and drops them before it commits. If anything fails here, the load is told
    nothing was prepared and does the source itself; tables a failed load left behind are dropped
    before the account's next load prepares its own.
    """

    def __init__(
        self, spec: SourceSpec, future: Future[_Prepared], pool: ThreadPoolExecutor, tables: list[str]
    ):
        self.spec, self.future, self.pool, self.tables = spec, future, pool, tables

    @classmethod
    def start(
        cls,
        connect: Callable[[], Any],
        sql: dict[str, str],
        staging: StagingArea,
        applying: list[tuple[SourceSpec, SourceReport, dict[str, Any]]],
    ) -> _Ahead | None:
        """Prepare the source with the most rows among those with history, if another source is
        applied meanwhile (alone, there is nothing to overlap)."""
        candidates = [
            (s, r, p) for s, r, p in applying if s.history and not all(f.name in r.diffed for f in s.history)
        ]
        if len(applying) < 2 or not candidates:
            return None
        spec, source, params = max(candidates, key=lambda c: c[1].rows_valid)
        prefix = f"ozon_ahead_{hashlib.sha256(staging.account.encode()).hexdigest()[:12]}"
        tables = {file.name: f"{prefix}_{file.name}" for file in spec.loads}
        diffs = {table.name: f"{prefix}_diff_{table.name}" for table in spec.history}
        params = params | {"not_provided": not_provided(spec, str(source.method))}
        try:  # here, not in the thread: a connection's lookup (Airflow's) stays on the task's thread
            conn = connect()
        except Exception as exc:  # noqa: BLE001 - the load does the source itself
            _not_prepared(spec, exc)
            return None
        pool = ThreadPoolExecutor(1, thread_name_prefix="ozon-load-ahead")
        future = pool.submit(_prepare, conn, sql, staging, spec, source, params, tables, diffs)
        return cls(spec, future, pool, [*tables.values(), *diffs.values()])

    def take(self, cur: Any, spec: SourceSpec) -> _Prepared | None:
        """What was prepared for ``spec`` (waiting for it), behind the temp views the statements read;
        None: the load does ``spec`` itself."""
        if spec is not self.spec:
            return None
        try:
            prepared = self.future.result()
        except Exception as exc:  # noqa: BLE001 - the load does the source itself
            _not_prepared(spec, exc)
            return None
        for file in spec.loads:
            _read_as(cur, file.table, prepared.files[file.name])
        log.info(
            "%s prepared on a second connection: its files copied (%.2f s; streamed by the fetch: %s), "
            "diff made for %s (%.2f s)",
            spec.name,
            prepared.seconds.get("copy", 0.0),
            prepared.streamed,
            sorted(prepared.history) or "none (a first snapshot, or held rows)",
            prepared.seconds.get("diff", 0.0),
        )
        return prepared

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def drop(self, cur: Any) -> None:
        """Drop the prepared tables (and the views on them) in the load's transaction."""
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(self.tables)} CASCADE")


def _not_prepared(spec: SourceSpec, exc: Exception) -> None:
    log.warning("preparing %s on a second connection failed (%s); loading it here", spec.name, exc)


def _prepare(
    connection: Any,
    sql: dict[str, str],
    staging: StagingArea,
    spec: SourceSpec,
    source: SourceReport,
    params: dict[str, Any],
    tables: dict[str, str],
    diffs: dict[str, str],
) -> _Prepared:
    """``_Ahead``'s work, on its own connection (closed after), committed as one transaction."""
    prepared = _Prepared(dict(tables), {})
    started = time.monotonic()
    with connection as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["bulk_plans"])
        cur.execute(f"DROP TABLE IF EXISTS {', '.join([*tables.values(), *diffs.values()])} CASCADE")
        for file in spec.loads:
            if (streamed := _prestaged(cur, source, file)) is not None:  # the fetch copied it already
                prepared.files[file.name] = streamed
                prepared.streamed.append(file.name)
            else:
                _create_unlogged(cur, sql, file, tables[file.name])
                _copy(cur, sql, staging, file, tables[file.name])
            _read_as(cur, file.table, prepared.files[file.name])
        prepared.seconds["copy"] = time.monotonic() - started
        for table in spec.history:
            cur.execute(sql[f"has_current_{table.name}"], params)
            current = cur.fetchone()[0]
            cur.execute(sql[f"has_held_{table.name}"], params)
            if not current or cur.fetchone()[0]:
                continue
            _make_diff(cur, sql, table.name, params, source.files.get(table.file))
            cur.execute(f"CREATE UNLOGGED TABLE {diffs[table.name]} AS TABLE diff_{table.name}")
            prepared.history[table.name] = diffs[table.name]
        prepared.seconds["diff"] = time.monotonic() - started - prepared.seconds["copy"]
    return prepared


def not_provided(spec: SourceSpec, method: str) -> list[str]:
    """The model columns ``method`` does not give for the source (they keep their loaded values)."""
    return sorted(spec.method_rows(method).not_provided)


def history_table(file: ModelFile) -> str:
    """The change-only history table of a history file (``SourceSpec.history``)."""
    return f"ozon_{file.name}_history"


def _apply_history(
    cur: Any,
    sql: dict[str, str],
    file: ModelFile,
    params: dict[str, Any],
    result: LoadResult,
    ready: str | None = None,
    vanished: bool = False,
    rows: int | None = None,
) -> None:
    """Close the current rows that changed or vanished and open rows for the new values.

    The first snapshot of an account opens every row straight from the temp table; later ones
    diff against the current rows once and touch only what changed. Held keys (their new value was
    rejected) keep their current row, marked; a held row confirmed by this run is unmarked.
    ``ready``: the diff was made ahead, in this table (``_Ahead``, or the fetch's ``_Differ``): the
    account had current rows and none of them held; ``vanished``: it lacks the current rows that
    vanished since. ``rows``: the run's rows of ``file``, if known.
    """
    name = file.name
    if ready is not None:
        _read_as(cur, f"diff_{name}", ready)
        if vanished:
            cur.execute(sql[f"diff_vanished_{name}"], params)
    else:
        cur.execute(sql[f"has_current_{name}"], params)
        if not cur.fetchone()[0]:
            cur.execute(sql[f"first_{name}"], params)
            result.history_opened += cur.rowcount
            return
        cur.execute(sql[f"has_held_{name}"], params)
        if cur.fetchone()[0]:
            cur.execute(sql[f"confirm_{name}"], params)
        _make_diff(cur, sql, name, params, rows)
    cur.execute(sql["tid_plans"])  # close by the row addresses the diff found: no scan of the history
    if f"events_{name}" in sql:  # before close_: the rows it replaces still hold their old values
        cur.execute(sql[f"events_{name}"], params)
    cur.execute(sql[f"close_{name}"], params)
    result.history_closed += cur.rowcount
    cur.execute(sql["scan_plans"])
    cur.execute(sql[f"open_{name}"], params)
    result.history_opened += cur.rowcount
    if f"fill_{name}" in sql:  # attributes learned for unchanged rows, filled in place
        cur.execute(sql[f"fill_{name}"], params)
    cur.execute(sql[f"hold_{name}"], params)


def _make_diff(cur: Any, sql: dict[str, str], name: str, params: dict[str, Any], rows: int | None) -> None:
    """``diff_<name>``: the run's new and changed rows, then the current rows it lacks, looked for
    only when some are gone (``rows``, the run's rows, unknown: always)."""
    cur.execute(sql[f"diff_table_{name}"])
    cur.execute(sql[f"diff_new_{name}"], params)
    if rows is not None:
        cur.execute(sql[f"count_current_{name}"], params)
        current = cur.fetchone()[0]
        cur.execute(sql[f"count_new_{name}"], params)
        if (
            current == rows - cur.fetchone()[0]
        ):  # the run's keys are unique: each other one matched a current row
            return
    cur.execute(sql[f"diff_vanished_{name}"], params)


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


def _events(cur: Any, sql: dict[str, str], base: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The run's stock events per scope and kind, zeros included (what the asset event carries)."""
    events = {scope: dict.fromkeys(EVENT_KINDS, 0) for scope in EVENT_SCOPES}
    cur.execute(sql["count_events"], base)
    for scope, kind, count in cur.fetchall():
        events[scope][kind] = count
    return events


def _record_run(
    cur: Any,
    sql: dict[str, str],
    base: dict[str, Any],
    run_key: str,
    report: ValidationReport,
    result: LoadResult,
    durations: dict[str, float],
    shrink_decision: dict[str, Any] | None = None,
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
            "shrink_decision": json.dumps(shrink_decision, ensure_ascii=False) if shrink_decision else None,
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
