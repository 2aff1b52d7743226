"""The target database's schema: which version it is at, and the one way it changes (``migrate``).

Why the load path only reads the version: ``include/sql/schema.sql`` takes exclusive locks
(``CREATE OR REPLACE VIEW``, ``ALTER TABLE``), and a statement waiting for one queues every reader of
that view or table behind it, so an analyst's idle transaction once stalled the load and with it every
dashboard. The DAG's ``migrate`` task runs the migration once per schema version, under the
connection ``migrate_conn_id`` (the schema's owner) when one is configured, so the role that loads
needs only SELECT, INSERT, UPDATE and DELETE on the project's tables. Its statements wait at most
``MIGRATE_LOCK_TIMEOUT_S`` for a lock: a migration that cannot get one gives way to the readers and
tries again, then fails naming the sessions in the way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from ozon_inventory.exceptions import LockNotGranted, SchemaVersionError
from ozon_inventory.sql import sql_dir, statements

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The version ``include/sql/schema.sql`` migrates to, and the only one this code loads into.
SCHEMA_VERSION = 7
MIGRATE_LOCK_TIMEOUT_S = 2.0
MIGRATE_ATTEMPTS = 5
#: Lock modes that conflict with ACCESS EXCLUSIVE (what the migration's DDL takes): all of them.
ALL_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)


def schema_version(conn: Any) -> int | None:
    """The version the target database's schema is at; None when it has none yet."""
    sql = statements("catalog")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["has_schema"])
        if not cur.fetchone()[0]:
            return None
        cur.execute(sql["version"])
        found = cur.fetchone()[0]
    return None if found is None else int(found)


def require_current(conn: Any, where: str = "the target database") -> int:
    """Refuse to read or write a schema that is not ``SCHEMA_VERSION``, naming what to do."""
    found = schema_version(conn)
    if found == SCHEMA_VERSION:
        return found
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: schema version {found} is newer than this code's {SCHEMA_VERSION}: upgrade ozon-inventory"
        )
    have = "has no ozon-inventory schema" if found is None else f"is at schema version {found}"
    raise SchemaVersionError(
        f"{where} {have}, and this code needs version {SCHEMA_VERSION}: run the DAG's migrate task "
        "(it runs first in every run), or include/sql/schema.sql as the schema's owner"
    )


def migrate(
    conn: Any,
    where: str = "the target database",
    lock_timeout_s: float = MIGRATE_LOCK_TIMEOUT_S,
    attempts: int = MIGRATE_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int | None, int]:
    """Bring the schema to ``SCHEMA_VERSION``; (version before, version after). One statement, the
    version read, when it is current already; a newer schema is refused, never touched."""
    before = schema_version(conn)
    if before is not None and before >= SCHEMA_VERSION:
        return before, require_current(conn, where)
    ddl = (sql_dir() / "schema.sql").read_text(encoding="utf-8")

    def once() -> None:
        with conn.transaction(), conn.cursor() as cur:
            set_lock_timeout(cur, lock_timeout_s)
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:schema'))")
            if schema_version(conn) == SCHEMA_VERSION:  # another migrate got there first
                return
            cur.execute(ddl)
        log.info("%s: schema migrated from version %s to %d", where, before, SCHEMA_VERSION)

    give_way(
        once,
        conn,
        ALL_MODES,
        attempts,
        f"{where}: migration",
        lambda held: (
            f"{where}: migrating the schema from version {before} to {SCHEMA_VERSION} needs exclusive "
            f"locks, and {held} kept them past {lock_timeout_s:g} s in each of {attempts} attempts; "
            "nothing was changed. End that session (or wait for it) and clear the migrate task"
        ),
        lambda attempt: sleep(min(2.0**attempt, 10.0)),
    )
    return before, require_current(conn, where)


def set_lock_timeout(cur: Any, seconds: float) -> None:
    """``lock_timeout`` for the rest of the cursor's transaction."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(seconds * 1000)}ms",))


def give_way(
    once: Callable[[], T],
    conn: Any,
    modes: Sequence[str],
    attempts: int,
    what: str,
    failure: Callable[[str], str],
    pause: Callable[[int], None],
) -> T:
    """Run ``once`` (one transaction under a ``lock_timeout``) until a try gets its locks: a try that
    does not rolls back, so readers are not queued behind it, and the next comes after ``pause``. The
    last one raises ``LockNotGranted`` with ``failure(the sessions holding locks in modes)``."""
    for attempt in range(1, attempts + 1):
        try:
            return once()
        except psycopg.errors.LockNotAvailable:
            held = lock_holders(conn, modes)
            if attempt == attempts:
                raise LockNotGranted(failure(held)) from None
            log.warning("%s attempt %d of %d gave way to %s", what, attempt, attempts, held)
            pause(attempt)
    raise AssertionError("attempts must be at least 1")


def lock_holders(conn: Any, modes: Sequence[str]) -> str:
    """The other sessions holding a lock in ``modes`` on the project's relations, as an operator
    finds them: pid, application, user, state, since when, query (``pg_terminate_backend(pid)``)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(statements("catalog")["lock_holders"], {"modes": list(modes)})
        rows = cur.fetchall()
    if not rows:
        return "another session (gone by the time it was looked up)"
    described = []
    for pid, application, user, state, xact_start, query_start, query, locks in rows:
        since = (
            f"in a transaction since {xact_start.isoformat(timespec='seconds')}" if xact_start else "since ?"
        )
        last = (
            f", last query at {query_start.isoformat(timespec='seconds')}: {query!r}" if query_start else ""
        )
        described.append(
            f"pid {pid} ({application}, user {user}, {state or 'state hidden'}, {since}{last}; holds {locks})"
        )
    return "session " + "; session ".join(described)
