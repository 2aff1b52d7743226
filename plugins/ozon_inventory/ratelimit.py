"""The request budget of one Ozon Client-Id, shared by every thread, process and worker machine using it.

Ozon allows 50 requests/s per Client-Id across all methods (``/v1/warehouse/list``: once a minute)
and may restrict an account that sends many erroneous requests. An account's three fetches,
concurrent runs and backfills run in separate processes, often on separate machines, so the budget
lives in the target PostgreSQL that every worker already reaches, on the database's clock.

GCRA (a virtual scheduler): one row per (Client-Id, scope) holds ``tat``, the start of the next free
slot; ``acquire`` is one atomic upsert (``include/sql/ratelimit.sql``, ``reserve``) that hands each
caller its own slot, evenly spaced, never a burst. ``pause(s)`` moves ``tat`` for every holder (a
429's ``Retry-After``). ``headroom`` (0.9) aims under the limit, because a request reaches Ozon
some milliseconds after its slot, not exactly then (at 0.95 a CI run saw 51 in one sliding second). Why this and not pyrate-limiter: docs/architecture.md, "The rate
budget lives in PostgreSQL".

One autocommit psycopg 3 connection per budget, reopened after a fork or an error; every call is
bounded by ``connect_timeout`` and ``statement_timeout``, after which ``RateBudgetUnavailable`` names
the database (never the password). ``LocalBudget`` is the same algorithm in one process's memory,
for code and tests without PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from ozon_inventory.exceptions import OzonInventoryError
from ozon_inventory.hooks.postgres import Database, as_database
from ozon_inventory.sql import statements

#: The scope of every method of a Client-Id.
ALL = "*"
DEFAULT_RATE = 50.0
DEFAULT_HEADROOM = 0.9
#: A slot's thread that wakes later than this share of an interval takes a new slot (see acquire).
LATE_TOLERANCE = 0.5
#: Seconds to connect to the budget database, and for any statement (or lock) there.
STATEMENT_TIMEOUT = 10.0


class RateBudget(Protocol):
    def acquire(self, scope: str | None = None) -> float:
        """Block until one request may go for the Client-Id (and for ``scope``, a method with its own
        limit); return the seconds waited."""
        ...

    def pause(self, seconds: float) -> None:
        """Let no request of the Client-Id go for ``seconds`` (a 429's Retry-After), in every holder."""
        ...

    def observe_remaining(self, remaining: int) -> None:
        """React to ``Ratelimit-Remaining``: none left pauses every holder until the next second."""
        ...


class RateBudgetUnavailable(OzonInventoryError):
    """The shared rate budget's database cannot be reached or does not answer in time."""


def _intervals(
    rate: float, headroom: float, method_limits: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """Seconds between request slots per scope: ``ALL`` and each method with its own limit."""
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], not {headroom}")
    if rate <= 0:
        raise ValueError(f"a rate budget needs a positive rate, not {rate}")
    intervals = {ALL: 1.0 / (rate * headroom)}
    for method, (count, per) in method_limits.items():
        if count <= 0 or per <= 0:
            raise ValueError(f"the limit of {method} needs a positive count and period, not {count}/{per}")
        intervals[method] = per / (count * headroom)
    return intervals


class _Gcra:
    """``acquire``/``pause`` over a slot store (``_reserve``, ``_push``) on some clock."""

    def __init__(
        self,
        client_id: str,
        rate: float,
        headroom: float,
        method_limits: Mapping[str, tuple[float, float]],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.client_id = str(client_id)
        self.intervals = _intervals(rate, headroom, method_limits)
        self._clock, self._sleep = clock, sleep
        # The pause this process knows of, on ``clock``: a thread of this process that holds a slot
        # inside a pause set here gives the slot up and takes a new one.
        self._paused_until = float("-inf")

    def _reserve(self, scope: str, interval: float) -> float:
        raise NotImplementedError

    def _push(self, seconds: float) -> None:
        raise NotImplementedError

    def acquire(self, scope: str | None = None) -> float:
        waited = 0.0
        # The method's own slot first, then the Client-Id's: a slot of all methods is not held idle
        # while the method's (e.g. a minute away) comes round.
        if scope is not None and scope != ALL and scope in self.intervals:
            wait = self._reserve(scope, self.intervals[scope])
            self._sleep(wait)
            waited += wait
        tolerance = LATE_TOLERANCE * self.intervals[ALL]
        while True:
            wait = self._reserve(ALL, self.intervals[ALL])
            due = self._clock() + max(wait, 0.0)
            if wait > 0:
                self._sleep(wait)
                waited += wait
            now = self._clock()
            if now < self._paused_until:
                continue
            if now - due > tolerance:
                # Woken too late (a busy machine): sent now, this request would crowd into the
                # second with the slots after it. Take a new slot instead.
                waited += now - due
                continue
            return waited

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # Locally first, so a slot taken after the database's pause ends is not given up.
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._push(seconds)

    def observe_remaining(self, remaining: int) -> None:
        # A whole second: Ozon's window (a sliding second, or a calendar second on a clock we do not
        # know) has then moved past the request that used it up.
        if remaining <= 0:
            self.pause(1.0)


class LocalBudget(_Gcra):
    """The budget in this process's memory (``budget_for(..., dsn=None)``), on ``clock``."""

    def __init__(
        self,
        client_id: str,
        rate: float = DEFAULT_RATE,
        headroom: float = DEFAULT_HEADROOM,
        method_limits: Mapping[str, tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(client_id, rate, headroom, method_limits or {}, clock, sleep)
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def _reserve(self, scope: str, interval: float) -> float:
        with self._lock:
            now = self._clock()
            slot = max(self._tat.get(scope, now), now)
            self._tat[scope] = slot + interval
            return slot - now

    def _push(self, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._tat[ALL] = max(self._tat.get(ALL, until), until)


class PostgresBudget(_Gcra):
    """The budget in PostgreSQL (table ``ozon_rate_budget``), shared by every process using ``database``
    (an Airflow connection's ``Database``, or a conninfo outside Airflow)."""

    def __init__(
        self,
        client_id: str,
        database: Database | str,
        rate: float = DEFAULT_RATE,
        headroom: float = DEFAULT_HEADROOM,
        method_limits: Mapping[str, tuple[float, float]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ):
        super().__init__(client_id, rate, headroom, method_limits or {}, time.monotonic, sleep)
        self._db = as_database(database)
        self._timeout_ms = str(max(1, int(statement_timeout * 1000)))
        self._sql = statements("ratelimit")
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"PostgresBudget({self.client_id!r}, {self._db.name})"

    def _connect(self) -> Any:
        conn = self._db.connect("ozon_inventory rate budget")
        try:
            conn.execute(self._sql["session"], {"timeout_ms": self._timeout_ms})
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, name: str, params: dict[str, Any]) -> Any:
        """Run statement ``name``; return its first row. Reconnects once (after a fork, a dropped
        connection or a server restart); then fails with ``RateBudgetUnavailable``."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed or self._pid != os.getpid():
                        self._conn = None  # a connection inherited over fork is the parent's
                        self._conn = self._connect()
                        self._pid = os.getpid()
                    cur = self._conn.execute(self._sql[name], params)
                    return cur.fetchone() if cur.description else None
                except (psycopg.OperationalError, psycopg.errors.UndefinedTable) as exc:
                    self._close()
                    if attempt == 2:
                        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        if isinstance(exc, psycopg.errors.UndefinedTable):
                            cause += " (the schema is not migrated: run the DAG's migrate task)"
                        raise RateBudgetUnavailable(
                            f"the Ozon rate budget of Client-Id {self.client_id} is kept in "
                            f"{self._db.name}, which failed: {cause}"
                        ) from None
        raise AssertionError("unreachable")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def close(self) -> None:
        with self._lock:
            self._close()

    def _reserve(self, scope: str, interval: float) -> float:
        row = self._run("reserve", {"client_id": self.client_id, "scope": scope, "interval": interval})
        return float(row[0])

    def _push(self, seconds: float) -> None:
        self._run("pause", {"client_id": self.client_id, "seconds": float(seconds)})


#: Process-wide budgets: in-process ones must be shared by every client of a Client-Id in the
#: process; shared ones are cached to keep one connection per process. Tests clear it.
_registry: dict[tuple[str, ...], LocalBudget | PostgresBudget] = {}
_NO_LIMITS: Mapping[str, tuple[float, float]] = MappingProxyType({})
_registry_lock = threading.Lock()


def budget_for(
    client_id: str,
    rate: float = DEFAULT_RATE,
    headroom: float = DEFAULT_HEADROOM,
    method_limits: Mapping[str, tuple[float, float]] = _NO_LIMITS,
    database: Database | str | None = None,
) -> RateBudget:
    """The budget of ``client_id``: ``rate`` × ``headroom`` requests/s across methods, and
    ``method_limits`` (method → (requests, per seconds)) × ``headroom`` for methods with their own.

    ``database=None``: in this process only; else shared through that PostgreSQL by every process
    that uses it. One budget object per Client-Id, settings and database in a process.
    """
    target = None if database is None else as_database(database)
    key = (
        "budget",
        str(client_id),
        repr((float(rate), float(headroom), sorted(method_limits.items()))),
        target.name if target else "",
    )
    with _registry_lock:
        budget = _registry.get(key)
        if budget is None:
            if target is not None:
                budget = PostgresBudget(str(client_id), target, rate, headroom, method_limits)
            else:
                budget = LocalBudget(str(client_id), rate, headroom, method_limits)
            _registry[key] = budget
        return budget
