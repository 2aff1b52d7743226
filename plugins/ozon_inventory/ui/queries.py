"""What the "Ozon inventory" page shows, read from the target database (a psycopg 3 connection).

One call per endpoint; every query is bounded by the accounts of one page (or one account), so the
page costs the same for 1 or 200 accounts apart from two small per-account summaries. Columns that
other parts of the project may add later (the key's expiry) are looked up in the catalogue first
and left out when absent.

Statuses, worst first: ``failed`` (the account's newest Airflow run failed before anything was
loaded), ``degraded`` (the last load missed a source), ``stale`` (the last load applied nothing, or
the snapshot is older than the stale threshold), ``pending`` (a run is under way and nothing was
ever loaded), ``complete``, and last ``removed`` (no longer in the accounts list: nothing to do).

The status is the outcome of the account's last *finished* run; a run in progress is shown beside it
(``running``), so a failing account stays failing, and first in the dashboard's worst, during a run.
Each failing account tells why (Ozon's code and message per source), what to do (the advice of
``ozon_inventory.advice`` for the kind of failure, the same words as the report and the alerts) and
since when (``failing_runs`` / ``failing_since``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ozon_inventory.advice import NOTHING_TO_DO, STALE_ANSWERS, STALE_SNAPSHOT, action, advice, kind_of_record
from ozon_inventory.methods import METHODS
from ozon_inventory.naming import LONG_ID, LONG_MARK, account_name, account_of

DAG_ID = "ozon_inventory_sync"
SOURCES = ("stocks", "warehouse_stocks", "warehouses")
STATUS_ORDER = {"failed": 0, "degraded": 1, "stale": 2, "pending": 3, "complete": 4, "removed": 5}
DEFAULT_KEY_WARN_DAYS = 14.0
DEFAULT_STALE_AFTER_MIN = 180.0
SPARK_DAYS = 30
SPARK_POINTS = 60
WAREHOUSE_BARS = 15


def stale_after() -> timedelta:
    """Snapshots older than this show ``stale`` (environment ``OZON_INVENTORY_UI_STALE_AFTER_MIN``)."""
    raw = os.environ.get("OZON_INVENTORY_UI_STALE_AFTER_MIN", "")
    try:
        minutes = float(raw) if raw.strip() else DEFAULT_STALE_AFTER_MIN
    except ValueError:
        minutes = DEFAULT_STALE_AFTER_MIN
    return timedelta(minutes=minutes)


@dataclass(frozen=True)
class AirflowFacts:
    """An account's newest DAG run as Airflow's metadata tells it (``airflow_state.py``)."""

    run_id: str
    run_after: datetime
    run_state: str
    map_index: int
    outcome: str  # of its newest finished run: "ok", "degraded", "failed", "skipped"; else "running"
    failed_tasks: tuple[str, ...] = ()
    running_run_id: str | None = None  # a newer run of it in progress, shown beside the outcome
    failing_runs: int = 0  # finished runs, newest back, that failed or were degraded
    failing_since: datetime | None = None  # when the first of them started
    failing_at_least: bool = False  # the streak goes back past the oldest run looked at
    errors: dict[str, Any] = field(default_factory=dict)  # source -> why it failed (report's XCom)
    listed: bool = True  # whether the newest run lists the account
    started: datetime | None = None  # when the run started (``run_after`` until it did)


@dataclass
class Account:
    """One row of the overview."""

    account: str
    status: str = "pending"
    reason: str = ""
    run_id: str | None = None
    loaded_at: datetime | None = None
    ledger_status: str | None = None
    missing: list[str] = field(default_factory=list)
    stale_sources: list[str] = field(default_factory=list)
    rejects: int = 0
    mismatches: int = 0
    as_of: dict[str, datetime] = field(default_factory=dict)
    methods: dict[str, str | None] = field(default_factory=dict)
    airflow: AirflowFacts | None = None
    removed: bool = False  # no longer in the accounts list
    causes: list[dict[str, Any]] = field(default_factory=list)  # per failed source: Ozon's words, kind
    action: str = ""
    failing_runs: int = 0
    failing_since: datetime | None = None
    failing_at_least: bool = False

    @property
    def never_loaded(self) -> list[str]:
        """Sources the account has never loaded (only said once anything was loaded at all)."""
        return [s for s in SOURCES if s not in self.as_of] if self.ledger_status else []

    @property
    def snapshot_as_of(self) -> datetime | None:
        """The snapshot is as old as its oldest source; it has no age while a source never loaded."""
        return min(self.as_of.values()) if self.as_of and not self.never_loaded else None

    @property
    def rank(self) -> tuple[int, float, str]:
        oldest = self.snapshot_as_of
        return (STATUS_ORDER[self.status], oldest.timestamp() if oldest else 0.0, self.account)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def run_path(run_id: str) -> str:
    """The run in Airflow's UI (grid and details), relative to the UI's base URL."""
    return f"dags/{DAG_ID}/runs/{quote(run_id, safe='')}"


def task_path(run_id: str, task_id: str, map_index: int) -> str:
    return f"{run_path(run_id)}/tasks/{quote(task_id, safe='')}/mapped/{map_index}"


# -- catalogue -------------------------------------------------------------------------------------


def has_schema(conn: Any) -> bool:
    """Whether the load has created the ledger yet (a new target database has nothing to show)."""
    return bool(
        _one(
            conn,
            "SELECT to_regclass('ozon_sync_run') IS NOT NULL AND to_regclass('ozon_source_state') IS NOT NULL",
        )
    )


def key_expiry_source(conn: Any) -> str | None:
    """Where the Api-Key's expiry is known, if anywhere: ``table`` (``ozon_account_key``, the latest
    check of ``/v1/roles``, written by the fetch tasks) or else ``ledger`` (``ozon_sync_run.key_expires_at``
    when a run recorded one); None while no expiry is known, so the page shows no empty column."""
    rows = _all(
        conn,
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = ANY(current_schemas(false))
             AND ((table_name = 'ozon_sync_run' AND column_name = 'key_expires_at')
               OR (table_name = 'ozon_account_key' AND column_name IN ('account', 'expires_at', 'key_expires_at')))""",
    )
    found = {(t, c) for t, c in rows}
    if ("ozon_account_key", "account") in found and (
        ("ozon_account_key", "expires_at") in found or ("ozon_account_key", "key_expires_at") in found
    ):
        return "table"
    if ("ozon_sync_run", "key_expires_at") in found and _one(
        conn, "SELECT count(*) FROM ozon_sync_run WHERE key_expires_at IS NOT NULL"
    ):
        return "ledger"
    return None


def key_expiry(conn: Any, source: str | None, accounts: Sequence[str]) -> dict[str, datetime | None]:
    """The known expiry of each account's Api-Key (only the accounts that have one)."""
    if source is None or not accounts:
        return {}
    if source == "ledger":
        sql = """SELECT DISTINCT ON (account) account, key_expires_at FROM ozon_sync_run
                 WHERE account = ANY(%(a)s) AND key_expires_at IS NOT NULL
                 ORDER BY account, loaded_at DESC"""
    else:
        column = (
            "expires_at"
            if _one(
                conn,
                """SELECT count(*) FROM information_schema.columns WHERE table_name = 'ozon_account_key'
                   AND column_name = 'expires_at' AND table_schema = ANY(current_schemas(false))""",
            )
            else "key_expires_at"
        )
        sql = f"SELECT account, {column} FROM ozon_account_key WHERE account = ANY(%(a)s)"
    return {account: moment for account, moment in _all(conn, sql, {"a": list(accounts)})}


# -- overview --------------------------------------------------------------------------------------


def accounts(
    conn: Any,
    airflow: Mapping[str, AirflowFacts],
    now: datetime,
    listed: Collection[str] | None = None,
) -> list[Account]:
    """Every account the ledger or Airflow knows, with its status, sorted worst first.

    ``listed`` is the accounts list (Variable ``ozon_inventory_accounts``) when it is set: an account
    outside it is ``removed``; without it, an account the newest run no longer lists is."""
    found: dict[str, Account] = {}
    errors: dict[str, dict[str, Any]] = {}
    if has_schema(conn):
        for row in _all(
            conn,
            """SELECT DISTINCT ON (account) account, run_id, status, missing_sources, stale_sources,
                      rejects, mismatches, loaded_at,
                      (SELECT jsonb_object_agg(e.key, e.value -> 'error') FROM jsonb_each(sources) e
                       WHERE jsonb_typeof(e.value -> 'error') = 'object')
               FROM ozon_sync_run ORDER BY account, loaded_at DESC""",
        ):
            account, run_id, status, missing, stale, rejects, mismatches, loaded_at, why = row
            found[account] = Account(
                account,
                run_id=run_id,
                ledger_status=status,
                missing=list(missing or []),
                stale_sources=list(stale or []),
                rejects=rejects,
                mismatches=mismatches,
                loaded_at=loaded_at,
            )
            errors[account] = dict(why or {})
        for account, source, as_of, method in _all(
            conn, "SELECT account, source, as_of, method FROM ozon_source_state"
        ):
            entry = found.setdefault(account, Account(account))
            entry.as_of[source] = as_of
            entry.methods[source] = method
    for account, facts in airflow.items():
        found.setdefault(account, Account(account)).airflow = facts
    members = set(listed) if listed is not None else None
    limit = stale_after()
    for entry in found.values():
        if members is not None:
            entry.removed = entry.account not in members
        else:
            entry.removed = entry.airflow is not None and not entry.airflow.listed
        _judge(entry, now, limit, errors.get(entry.account, {}))
    failed = [a.account for a in found.values() if a.status == "failed"]
    if failed and has_schema(conn):
        expiry = key_expiry(conn, key_expiry_source(conn), failed)
        for account, expires_at in expiry.items():
            if expires_at is not None and expires_at <= now:
                _key_expired(found[account], expires_at)
    return sorted(found.values(), key=lambda a: a.rank)


def _key_expired(entry: Account, expires_at: datetime) -> None:
    """A failed account whose Api-Key has expired: that is the cause (the fetches refuse to send a
    dead key, so Ozon said nothing), and the action is a new key."""
    said = f"the Api-Key expired on {expires_at.date().isoformat()}"
    entry.causes = [
        {"source": "key", "kind": "key_expired", "method": None, "status": None, "code": None}
        | {"message": said, "field": None}
    ]
    entry.reason = f"{said}; " + entry.reason
    entry.action = advice(
        "key_expired", entry.account, "fetch_stocks, fetch_warehouse_stocks and fetch_warehouses"
    )


def _source_order(source: str) -> int:
    return SOURCES.index(source) if source in SOURCES else len(SOURCES)


def _newer_run(entry: Account) -> bool:
    """Whether the account's last finished Airflow run came after its last load (so the ledger's
    row is not that run's)."""
    facts = entry.airflow
    if facts is None or facts.outcome == "running" or facts.run_id == entry.run_id:
        return False
    started = facts.started or facts.run_after
    return entry.loaded_at is None or started > entry.loaded_at


def _judge(entry: Account, now: datetime, limit: timedelta, ledger_errors: Mapping[str, Any]) -> None:
    """Set the account's status, a one-line reason, its causes and the action they call for."""
    facts = entry.airflow
    conn_id = entry.account  # an account is its Ozon connection's id
    if facts is not None and facts.failing_runs:
        entry.failing_runs, entry.failing_since = facts.failing_runs, facts.failing_since
        entry.failing_at_least = facts.failing_at_least
    if entry.removed:
        entry.status = "removed"
        entry.reason = "removed from the accounts list" + (
            f"; its last load ({entry.loaded_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC) is kept"
            if entry.loaded_at
            else ""
        )
        entry.action = NOTHING_TO_DO
        return
    if facts is not None and facts.outcome == "failed" and _newer_run(entry):
        entry.status = "failed"
        records: dict[str, Any] = dict(sorted(facts.errors.items(), key=lambda item: _source_order(item[0])))
        if not records:  # no recorded cause (a run before causes were kept): the failed tasks say
            records = {t.removeprefix("fetch_"): None for t in facts.failed_tasks} or {
                "the failed task": None
            }
        entry.causes = [cause(source, record) for source, record in records.items()]
        kept = "the previous snapshot is kept" if entry.ledger_status else "nothing was ever loaded"
        said = _said(entry.causes) or (", ".join(facts.failed_tasks) or "a task") + " failed"
        entry.reason = f"{said} in the last finished run; {kept}"  # the run: the row's grid link
        entry.action = action(records, conn_id)
        return
    if entry.ledger_status is None:
        entry.status = "pending"
        entry.reason = "no load yet" + (f"; run {facts.run_id} is {facts.outcome}" if facts else "")
        entry.action = "wait for the run to finish" if facts else "trigger a run of " + DAG_ID
        return
    oldest = entry.snapshot_as_of
    entry.action = NOTHING_TO_DO
    if entry.ledger_status == "degraded" or entry.missing:
        entry.status = "degraded"
        records = {s: ledger_errors.get(s) for s in sorted(entry.missing, key=_source_order)}
        entry.causes = [cause(s, r) for s, r in records.items()]
        parts = []
        for c in entry.causes:
            source = c["source"]
            kept = (
                f"kept its last good rows, as of {entry.as_of[source].astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                if source in entry.as_of
                else "it never loaded"
            )
            parts.append(f"{source}: {words(c) or 'failed'}; {kept}")
        entry.reason = "; ".join(parts)
        entry.action = action(records, conn_id)
    elif entry.ledger_status == "stale":
        entry.status = "stale"
        entry.reason = "the last run applied nothing: " + (
            f"{', '.join(entry.stale_sources)} older than what is loaded"
            if entry.stale_sources
            else "no source"
        )
        entry.action = STALE_ANSWERS
    elif oldest is not None and now - oldest > limit:
        entry.status = "stale"
        entry.reason = f"snapshot older than {_span(limit.total_seconds())}"
        entry.action = STALE_SNAPSHOT
    else:
        entry.status = "complete"
        entry.reason = ""
    if entry.never_loaded and entry.status != "degraded":
        entry.reason = (entry.reason + "; " if entry.reason else "") + (
            f"{', '.join(entry.never_loaded)} never loaded"
        )


_OZON_SAID = re.compile(r"answered HTTP (\d+)[^,]*, code (\S+?)(?: \(handled as HTTP \d+\))?: (.*)$", re.S)
_TRANSIENT_SAID = re.compile(r"failed after \d+ attempts: (?:HTTP (\d+): )?(.*)$", re.S)


def cause(source: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
    """One failed source as the page shows it: Ozon's HTTP status, code and message where Ozon
    answered with an error, else the fetch's own summary; its kind (``ozon_inventory.advice``)."""
    record = record or {}
    status, code, message = record.get("status"), record.get("code"), record.get("ozon_message")
    text = str(record.get("message") or "")
    if message is None and (said := _OZON_SAID.search(text)):
        status, code, message = int(said[1]), said[2], said[3]
    elif message is None and (said := _TRANSIENT_SAID.search(text)):
        status = int(said[1]) if said[1] else status
        message = said[2]
    if message is None:
        message = record.get("summary") or text or None
    return {
        "source": source,
        "kind": kind_of_record(record) if record else "unknown",
        "method": record.get("method"),
        "status": status,
        "code": code,
        "message": message,
        "field": record.get("field"),
    }


def words(c: Mapping[str, Any]) -> str:
    """One cause in a few words: Ozon's message, its HTTP status and code."""
    if not c["message"]:
        return ""
    codes = [
        f"HTTP {c['status']}" if c["status"] else "",
        f"code {c['code']}" if c["code"] is not None else "",
    ]
    said = ", ".join(p for p in codes if p)
    return f"{c['message']}" + (f" ({said})" if said else "")


def _said(causes: Sequence[Mapping[str, Any]]) -> str:
    """Ozon's words for the failed sources, once when every source heard the same."""
    said = [(c["source"], words(c)) for c in causes]
    if not said or not any(w for _, w in said):
        return ""
    if len(said) > 1 and len({w for _, w in said}) == 1:
        return f"every source: {said[0][1]}"
    return "; ".join(f"{s}: {w or 'failed'}" for s, w in said)


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def overview(
    conn: Any,
    airflow: Mapping[str, AirflowFacts],
    now: datetime,
    page: int = 1,
    page_size: int = 25,
    search: str = "",
    status: str = "",
    listed: Collection[str] | None = None,
    warn_days: float = DEFAULT_KEY_WARN_DAYS,
) -> dict[str, Any]:
    """One page of accounts, worst first, with what each row shows."""
    everyone = accounts(conn, airflow, now, listed)
    counts = {name: 0 for name in STATUS_ORDER}
    for entry in everyone:
        counts[entry.status] += 1
    shown = [
        a
        for a in everyone
        if (not search or search.lower() in a.account.lower()) and (not status or a.status == status)
    ]
    page_size = max(1, min(page_size, 200))
    pages = max(1, -(-len(shown) // page_size))
    page = max(1, min(page, pages))
    chosen = shown[(page - 1) * page_size : page * page_size]
    names = [a.account for a in chosen]
    ready = has_schema(conn)
    expiry_source = key_expiry_source(conn) if ready else None
    expiry = key_expiry(conn, expiry_source, names)
    requests = request_figures(conn, [(a.account, a.run_id) for a in chosen if a.run_id]) if ready else {}
    lines = sparklines(conn, chosen, now) if ready else {}
    if ready:
        ledger_streaks(conn, chosen)
    rows = []
    for entry in chosen:
        rows.append(
            _row(entry, now)
            | {
                "requests": requests.get(entry.account, {}),
                "sparkline": lines.get(entry.account, []),
            }
            | (
                {
                    "key_expires_at": iso(expiry.get(entry.account)),
                    "key_warning": key_warning(expiry.get(entry.account), now, warn_days),
                }
                if expiry_source
                else {}
            )
        )
    return {
        "dag_id": DAG_ID,
        "generated_at": iso(now),
        "stale_after_min": stale_after().total_seconds() / 60,
        "counts": counts,
        "total": len(everyone),
        "matching": len(shown),
        "page": page,
        "page_size": page_size,
        "pages": pages,
        "key_expiry": expiry_source is not None,
        "accounts": rows,
    }


def summary(
    conn: Any,
    airflow: Mapping[str, AirflowFacts],
    now: datetime,
    worst: int = 5,
    listed: Collection[str] | None = None,
) -> dict[str, Any]:
    """Counts by status and the worst few accounts (the dashboard widget)."""
    everyone = accounts(conn, airflow, now, listed)
    shown = [a for a in everyone[:worst] if a.status not in ("complete", "removed")]
    if shown and has_schema(conn):
        ledger_streaks(conn, shown)
    counts = {name: 0 for name in STATUS_ORDER}
    for entry in everyone:
        counts[entry.status] += 1
    return {
        "dag_id": DAG_ID,
        "generated_at": iso(now),
        "counts": counts,
        "total": len(everyone),
        "worst": [_row(a, now) for a in shown],
    }


def key_warning(expires_at: datetime | None, now: datetime, warn_days: float) -> dict[str, Any] | None:
    """The badge of a key that expires within ``warn_days`` (or has expired), None otherwise."""
    if expires_at is None:
        return None
    days = (expires_at - now) / timedelta(days=1)
    if days > warn_days:
        return None
    return {"expires_at": iso(expires_at), "days_left": round(days, 1), "expired": days <= 0}


def ledger_streaks(conn: Any, chosen: Sequence[Account]) -> None:
    """For degraded accounts Airflow knows no streak of (its runs are older than it looks back):
    the ledger's newest run of them back that were degraded, and when the first was loaded."""
    todo = {a.account: a for a in chosen if a.status == "degraded" and not a.failing_runs}
    if not todo:
        return
    for account, runs, since in _all(
        conn,
        """WITH r AS (
               SELECT account, status, loaded_at,
                      count(*) FILTER (WHERE status <> 'degraded')
                          OVER (PARTITION BY account ORDER BY loaded_at DESC) AS good_since
               FROM ozon_sync_run WHERE account = ANY(%(a)s)
           )
           SELECT account, count(*), min(loaded_at) FROM r WHERE good_since = 0 GROUP BY account""",
        {"a": list(todo)},
    ):
        todo[account].failing_runs, todo[account].failing_since = runs, since


def _row(entry: Account, now: datetime) -> dict[str, Any]:
    oldest = entry.snapshot_as_of
    facts = entry.airflow
    link_run = entry.run_id
    task_link = None
    if entry.status == "failed" and facts is not None:
        link_run = facts.run_id
        if facts.failed_tasks:
            task_link = task_path(facts.run_id, f"account.{facts.failed_tasks[0]}", facts.map_index)
    elif entry.status == "degraded" and facts is not None and facts.run_id == entry.run_id and entry.missing:
        # the ledger's run is Airflow's last finished one: its failed fetch, where the log says more
        task_link = task_path(facts.run_id, f"account.fetch_{entry.missing[0]}", facts.map_index)
    return {
        "account": entry.account,
        "name": account_name(entry.account),  # the account's segment in this app's routes
        "status": entry.status,
        "reason": entry.reason,
        "run_id": entry.run_id,
        "airflow_run_id": facts.run_id if facts else None,
        "airflow_outcome": facts.outcome if facts else None,
        "run_link": run_path(link_run) if link_run else None,
        "task_link": task_link,
        "loaded_at": iso(entry.loaded_at),
        "snapshot_as_of": iso(oldest),
        "age_s": round((now - oldest).total_seconds()) if oldest else None,
        "sources": [
            {
                "source": source,
                "as_of": iso(entry.as_of.get(source)),
                "age_s": round((now - entry.as_of[source]).total_seconds())
                if source in entry.as_of
                else None,
                "method": entry.methods.get(source),
                "missing": source in entry.missing,
            }
            for source in SOURCES
        ],
        "rejects": entry.rejects,
        "mismatches": entry.mismatches,
        "never_loaded": entry.never_loaded,
        "causes": entry.causes,
        "action": entry.action,
        "running": (
            {"run_id": facts.running_run_id, "run_link": run_path(facts.running_run_id)}
            if facts is not None and facts.running_run_id
            else None
        ),
        "failing": (
            {
                "runs": entry.failing_runs,
                "since": iso(entry.failing_since),
                "at_least": entry.failing_at_least,
            }
            if entry.failing_runs and entry.status in ("failed", "degraded")
            else None
        ),
    }


# -- request figures, sparklines -------------------------------------------------------------------


def per_source(sources: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per source of one ledger row: method used, fallback, and the requests of its own methods.

    A source's ``requests`` may hold figures of methods other sources called (a client shared in one
    process counts them all); each method is counted under the source the method table gives it.
    """
    out: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, Any]] = set()

    def entry(source: str) -> dict[str, Any]:
        return out.setdefault(
            source,
            {
                "status": None,
                "method": None,
                "fallback_from": None,
                "as_of": None,
                "rows": None,
                "rejects": 0,
                "error": None,
                "field": None,
                "methods": {},
            },
        )

    for source, report in sources.items():
        report = report or {}
        entry(source).update(
            status=report.get("status"),
            method=report.get("method"),
            fallback_from=report.get("fallback_from"),
            as_of=report.get("as_of"),
            rows=report.get("rows_valid"),
            rejects=report.get("rejects", 0),
        )
        if error := report.get("error"):  # why the source failed (its fetch's words)
            entry(source).update(error=error.get("summary") or error.get("message"), field=error.get("field"))
        for path, figures in (report.get("requests") or {}).items():
            figures = figures or {}
            key = (path, figures.get("first_at"))
            if key in seen:
                continue
            seen.add(key)
            owner = METHODS[path].source if path in METHODS else source
            entry(owner)["methods"][path] = {
                k: figures.get(k, 0)
                for k in ("requests", "responses_429", "retries", "errors", "pages", "waited_s")
            }
    for figures in out.values():  # e.g. "account": the key check before fetching (/v1/roles)
        if figures["method"] is None and figures["methods"]:
            figures["method"] = ", ".join(figures["methods"])
    order = {name: i for i, name in enumerate(SOURCES)}
    return dict(sorted(out.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _totals(by_source: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    requests = sum(m["requests"] or 0 for s in by_source.values() for m in s["methods"].values())
    too_many = sum(m["responses_429"] or 0 for s in by_source.values() for m in s["methods"].values())
    fallbacks = {s: v["fallback_from"] for s, v in by_source.items() if v.get("fallback_from")}
    return {"requests": requests, "responses_429": too_many, "fallbacks": fallbacks}


def request_figures(conn: Any, runs: Sequence[tuple[str, str | None]]) -> dict[str, dict[str, Any]]:
    """Requests, 429s and fallbacks of each account's last run (the ledger's per-source figures)."""
    wanted = [(a, r) for a, r in runs if r]
    if not wanted:
        return {}
    rows = _all(
        conn,
        """SELECT account, sources FROM ozon_sync_run
           WHERE (account, run_id) IN (SELECT * FROM unnest(%(a)s::text[], %(r)s::text[]))""",
        {"a": [a for a, _ in wanted], "r": [r for _, r in wanted]},
    )
    return {account: _totals(per_source(sources or {})) for account, sources in rows}


class _SparkCache:
    """Total-stock series per account, kept until the account loads again (a new ledger row)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.data: dict[tuple[str, str | None, str | None, int], list[list[float]]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str | None, str | None, int]) -> list[list[float]] | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: tuple[str, str | None, str | None, int], value: list[list[float]]) -> None:
        with self.lock:
            if len(self.data) >= self.size:
                self.data.pop(next(iter(self.data)))
            self.data[key] = value


SPARK_CACHE = _SparkCache()


def sparklines(
    conn: Any, chosen: Iterable[Account], now: datetime, days: int = SPARK_DAYS, points: int = SPARK_POINTS
) -> dict[str, list[list[float]]]:
    """Total stock (``present`` over every stock type) of each account at each change of its history
    within ``days``: ``[[epoch seconds, units], …]``, at most ``points`` of the latest."""
    out: dict[str, list[list[float]]] = {}
    todo = []
    for entry in chosen:
        key = (entry.account, entry.run_id, iso(entry.loaded_at), days)
        cached = SPARK_CACHE.get(key)
        if cached is None:
            todo.append((entry.account, key))
        else:
            out[entry.account] = cached
    if not todo:
        return out
    since = now - timedelta(days=days)
    series: dict[str, list[list[float]]] = {account: [] for account, _ in todo}
    for account, moment, total in _all(
        conn,
        """WITH h AS (
               SELECT account, present, valid_from, valid_to FROM ozon_stock_by_type_history
               WHERE account = ANY(%(a)s) AND (valid_to IS NULL OR valid_to > %(since)s)
           ), ev AS (
               SELECT account, greatest(valid_from, %(since)s) AS t, present::bigint AS d FROM h
               UNION ALL
               SELECT account, valid_to, -present::bigint FROM h WHERE valid_to IS NOT NULL
           ), agg AS (SELECT account, t, sum(d) AS d FROM ev GROUP BY account, t)
           SELECT account, t, sum(d) OVER (PARTITION BY account ORDER BY t) FROM agg ORDER BY account, t""",
        {"a": [a for a, _ in todo], "since": since},
    ):
        series[account].append([moment.timestamp(), float(total)])
    for account, key in todo:
        line = series[account][-points:]
        SPARK_CACHE.put(key, line)
        out[account] = line
    return out


# -- one account -----------------------------------------------------------------------------------


def account_named(conn: Any, name: str, known: Iterable[str] = ()) -> str | None:
    """The account whose name (``naming.account_name``) is ``name``, None if none: decoded, or, for
    the hashed name of a long id, looked up among the ledger's long ids and the ``known`` ones."""
    account = account_of(name)
    if account is not None or LONG_MARK not in name:
        return account
    candidates = {a for a in known if len(a) >= LONG_ID}
    if has_schema(conn):
        candidates.update(
            a
            for (a,) in _all(
                conn,
                "SELECT DISTINCT account FROM ozon_sync_run WHERE char_length(account) >= %(n)s",
                {"n": LONG_ID},
            )
        )
    return next((a for a in sorted(candidates) if account_name(a) == name), None)


def account_detail(
    conn: Any,
    account: str,
    airflow: Mapping[str, AirflowFacts],
    now: datetime,
    listed: Collection[str] | None = None,
    warn_days: float = DEFAULT_KEY_WARN_DAYS,
) -> dict[str, Any] | None:
    """Everything the page shows when an account is opened; None when the account is unknown."""
    entry = next(
        (
            a
            for a in accounts(conn, {k: v for k, v in airflow.items() if k == account}, now, listed)
            if a.account == account
        ),
        None,
    )
    if entry is None:
        return None
    if has_schema(conn):
        ledger_streaks(conn, [entry])
    out: dict[str, Any] = _row(entry, now)
    if not has_schema(conn):
        return out | {"runs": [], "warehouses": {}, "reject_reasons": [], "by_source": {}, "sparkline": []}
    last = _first(
        conn,
        "SELECT sources, durations, products, warehouse_rows, warehouses, history_opened, history_closed"
        " FROM ozon_sync_run WHERE account = %(a)s AND run_id = %(r)s",
        {"a": account, "r": entry.run_id},
    )
    by_source = per_source(last[0] or {}) if last else {}
    if last:
        out |= {
            "durations": last[1],
            "products": last[2],
            "warehouse_rows": last[3],
            "warehouses_count": last[4],
            "history_opened": last[5],
            "history_closed": last[6],
        }
    out["by_source"] = by_source
    out["requests"] = _totals(by_source)
    out["runs"] = [
        {
            "run_id": run_id,
            "status": status,
            "missing": list(missing or []),
            "loaded_at": iso(loaded_at),
            "rejects": rejects,
            "mismatches": mismatches,
            "history_opened": opened,
            "history_closed": closed,
            "run_link": run_path(run_id),
        }
        for run_id, status, missing, loaded_at, rejects, mismatches, opened, closed in _all(
            conn,
            """SELECT run_id, status, missing_sources, loaded_at, rejects, mismatches, history_opened,
                      history_closed
               FROM ozon_sync_run WHERE account = %(a)s ORDER BY loaded_at DESC LIMIT 20""",
            {"a": account},
        )
    ]
    out["warehouses"] = warehouse_chart(conn, account)
    out["reject_reasons"] = (
        [
            {"source": source, "reason": reason, "rows": n}
            for source, reason, n in _all(
                conn,
                """SELECT source, reason, count(*) FROM ozon_reject WHERE account = %(a)s AND run_id = %(r)s
                   GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 100""",
                {"a": account, "r": entry.run_id},
            )
        ]
        if entry.run_id
        else []
    )
    source = key_expiry_source(conn)
    if source:
        expires = key_expiry(conn, source, [account]).get(account)
        out["key_expires_at"] = iso(expires)
        out["key_warning"] = key_warning(expires, now, warn_days)
    compared = mismatches(conn, account, 0)
    out["mismatches_now"] = compared["total"]
    out["mismatches_compared"] = compared["compared"]
    out["sparkline"] = sparklines(conn, [entry], now, days=90, points=200).get(account, [])
    return out


def warehouse_chart(conn: Any, account: str, bars: int = WAREHOUSE_BARS) -> dict[str, Any]:
    """Current FBO stock per Ozon warehouse: the largest ``bars`` warehouses and the rest summed."""
    rows = _all(
        conn,
        """SELECT warehouse_name, sum(free_to_sell), sum(promised), sum(coalesce(reserved, 0)), count(*)
           FROM ozon_stock_by_warehouse WHERE account = %(a)s
           GROUP BY warehouse_name
           ORDER BY sum(free_to_sell) + sum(promised) + sum(coalesce(reserved, 0)) DESC, warehouse_name""",
        {"a": account},
    )
    shown = [
        {"warehouse": name, "free_to_sell": int(f), "promised": int(p), "reserved": int(r), "skus": int(n)}
        for name, f, p, r, n in rows[:bars]
    ]
    rest = rows[bars:]
    other = None
    if rest:
        other = {
            "warehouses": len(rest),
            "free_to_sell": int(sum(r[1] for r in rest)),
            "promised": int(sum(r[2] for r in rest)),
            "reserved": int(sum(r[3] for r in rest)),
        }
    totals = {
        "free_to_sell": int(sum(r[1] for r in rows)),
        "promised": int(sum(r[2] for r in rows)),
        "reserved": int(sum(r[3] for r in rows)),
        "warehouses": len(rows),
    }
    return {"bars": shown, "other": other, "totals": totals}


def rejects(
    conn: Any,
    account: str,
    run_id: str | None,
    source: str = "",
    reason: str = "",
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Rejected rows of one run (the account's last run when ``run_id`` is empty), with their reasons."""
    if not has_schema(conn):
        return {"run_id": run_id, "total": 0, "rows": []}
    if not run_id:
        run_id = _one(
            conn,
            "SELECT run_id FROM ozon_sync_run WHERE account = %(a)s ORDER BY loaded_at DESC LIMIT 1",
            {"a": account},
        )
    params = {
        "a": account,
        "r": run_id,
        "s": source,
        "why": reason,
        "limit": min(max(limit, 1), 500),
        "offset": max(offset, 0),
    }
    where = """account = %(a)s AND run_id = %(r)s AND (%(s)s = '' OR source = %(s)s)
               AND (%(why)s = '' OR reason = %(why)s)"""
    total = _one(conn, f"SELECT count(*) FROM ozon_reject WHERE {where}", params)
    rows = [
        {"id": rid, "source": src, "reason": why, "record": record, "rejected_at": iso(at)}
        for rid, src, why, record, at in _all(
            conn,
            f"""SELECT id, source, reason, record, rejected_at FROM ozon_reject WHERE {where}
                ORDER BY id LIMIT %(limit)s OFFSET %(offset)s""",
            params,
        )
    ]
    return {"account": account, "run_id": run_id, "total": total, "rows": rows}


def mismatches(conn: Any, account: str, limit: int = 50) -> dict[str, Any]:
    """FBO SKUs whose v4 ``present - reserved`` differs now from the sum of their warehouse rows'
    ``free_to_sell`` (the cross-source check, recomputed from the current tables)."""
    if not has_schema(conn):
        return {"account": account, "total": 0, "rows": [], "compared": False, "why": "nothing loaded yet"}
    loaded = {
        s
        for (s,) in _all(
            conn,
            "SELECT source FROM ozon_source_state WHERE account = %(a)s AND source = ANY(%(s)s)",
            {"a": account, "s": ["stocks", "warehouse_stocks"]},
        )
    }
    if len(loaded) < 2:  # one side never loaded: every SKU would "differ" from nothing
        never = [s for s in ("stocks", "warehouse_stocks") if s not in loaded]
        why = f"{' and '.join(never)} never loaded: there is nothing to compare"
        return {"account": account, "total": 0, "rows": [], "compared": False, "why": why}
    sql = """WITH t AS (
                 SELECT sku, sum(present - reserved) AS v4_available FROM ozon_stock_by_type
                 WHERE account = %(a)s AND lower(stock_type) = 'fbo' GROUP BY sku
             ), w AS (
                 SELECT sku, sum(free_to_sell) AS warehouses_free_to_sell FROM ozon_stock_by_warehouse
                 WHERE account = %(a)s GROUP BY sku
             )
             SELECT coalesce(t.sku, w.sku) AS sku, coalesce(v4_available, 0), coalesce(warehouses_free_to_sell, 0)
             FROM t FULL JOIN w ON t.sku = w.sku
             WHERE coalesce(v4_available, 0) <> coalesce(warehouses_free_to_sell, 0)"""
    total = _one(conn, f"SELECT count(*) FROM ({sql}) d", {"a": account})
    rows = [
        {"sku": sku, "v4_available": int(v4), "warehouses_free_to_sell": int(wh)}
        for sku, v4, wh in (
            _all(conn, f"{sql} ORDER BY 1 LIMIT %(limit)s", {"a": account, "limit": limit}) if limit else []
        )
    ]
    return {"account": account, "total": total, "rows": rows, "compared": True, "why": None}


# -- helpers ---------------------------------------------------------------------------------------


def _all(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def _first(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
        return tuple(row) if row is not None else None


def _one(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    row = _first(conn, sql, params)
    return row[0] if row else None
