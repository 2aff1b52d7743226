"""What a failure means and what an operator should do about it: one place for every kind.

The operators' page, the report task's message and the alerts all tell the same advice, so they
read it from here. A failure is told by its *kind*, taken from the exception when it is raised
(``kind_of_error``) or from the record a fetch leaves of it (``fetch.failure``: the ledger's and
the report's ``error``), so records written before kinds existed get one too (``kind_of_record``).

Kinds, and why the advice differs:

- ``auth`` — Ozon refused the key (wrong, deactivated, a role missing): retrying changes nothing,
  the key or its roles must change in the account's Airflow connection first, then clear;
- ``key_expired`` — the Api-Key's three months are over: a new key, then clear;
- ``transient`` — 429 / 5xx / timeouts / data moving while paged / a table lock another session
  held: wait, then clear (the next scheduled run may succeed by itself);
- ``method_unavailable`` — Ozon switched the method off: upgrade, or pin another method;
- ``schema_changed`` — Ozon's answer changed shape: upgrade ozon-inventory;
- ``shrink_guard`` — the snapshot shrank too much: only if that is real, approve the load while
  ``approve_shrink`` waits, or trigger with ``allow_shrink``;
- ``rejected`` — Ozon refused the request itself (a bad request): a bug to report;
- ``staging``, ``config`` (a setting, or a schema older or newer than the code), ``unknown`` — see
  the message and the task's log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ozon_inventory import exceptions as errors

#: worst (most in need of a person) first: the account's action is the one of its worst kind
KINDS = (
    "auth",
    "key_expired",
    "config",
    "method_unavailable",
    "schema_changed",
    "rejected",
    "shrink_guard",
    "staging",
    "unknown",
    "transient",
)
#: kinds a retry or a clear alone will never fix
PERMANENT = frozenset(KINDS) - {"transient", "staging", "unknown"}

_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (errors.OzonAuthError, "auth"),
    (errors.OzonMethodUnavailable, "method_unavailable"),
    (errors.OzonApiError, "rejected"),
    (errors.OzonKeyExpired, "key_expired"),
    (errors.OzonTransientError, "transient"),
    (errors.OzonMethodDown, "transient"),
    (errors.OzonSnapshotChanged, "transient"),
    (errors.StagingWriteError, "transient"),
    (errors.LockNotGranted, "transient"),
    (errors.SchemaVersionError, "config"),
    (errors.OzonSchemaChanged, "schema_changed"),
    (errors.ShrinkGuardError, "shrink_guard"),
    (errors.ConfigError, "config"),
    (errors.StagingError, "staging"),
)


def kind_of_error(exc: BaseException) -> str:
    """The kind of an exception the pipeline raised (``unknown`` for anything not its own)."""
    return next((kind for cls, kind in _BY_CLASS if isinstance(exc, cls)), "unknown")


def kind_of_record(record: Mapping[str, Any] | None) -> str:
    """The kind of a recorded failure (``fetch.failure``), also of one recorded before kinds were:
    its exception's class name tells it."""
    if not record:
        return "unknown"
    kind = record.get("kind")
    if isinstance(kind, str) and kind in KINDS:
        return kind
    name = str(record.get("error") or "")
    found = next((k for cls, k in _BY_CLASS if cls.__name__ == name), None)
    if found:
        return found
    return "unknown"


def advice(kind: str, conn_id: str, task: str = "the failed task") -> str:
    """What to do about a failure of ``kind`` of the account whose Airflow connection is ``conn_id``."""
    their = "their" if " and " in task else "its"
    clear = f"then clear {task} with {their} downstream tasks"
    if kind == "auth":
        return (
            f"fix the Api-Key or its roles in Airflow connection {conn_id} (Seller Center → Settings → "
            f"API keys), {clear}; clearing alone fails again"
        )
    if kind == "key_expired":
        return (
            f"issue a new Api-Key in Seller Center → Settings → API keys, put it in Airflow connection "
            f"{conn_id}, {clear}"
        )
    if kind == "transient":
        return f"Ozon did not answer in time (429, 5xx, timeouts): wait a few minutes, {clear}"
    if kind == "method_unavailable":
        return (
            "Ozon switched the method off: upgrade ozon-inventory or pin another method by param "
            f"(warehouse_stock_method, warehouse_list_method), {clear}"
        )
    if kind == "schema_changed":
        return "Ozon changed its answer's shape: upgrade ozon-inventory for the new shape, " + clear
    if kind == "shrink_guard":
        return (
            "nothing was loaded and the last snapshot is whole; only if the catalogue really shrank, "
            "approve the load in Browse → Required Actions while approve_shrink waits (clear "
            "approve_shrink with its downstream tasks to be asked again), or trigger again with "
            "allow_shrink: true"
        )
    if kind == "rejected":
        return f"Ozon refused the request as sent: see {task}'s log and report it to ozon-inventory"
    if kind == "config":
        return "fix the setting the error names (param, Variable or connection), then trigger again"
    if kind == "staging":
        return f"the staged answers are damaged or gone: {clear} to fetch again"
    return f"open {task}'s log for the cause, {clear}"


NOTHING_TO_DO = "nothing to do"
#: a snapshot older than the page's threshold: no run has loaded the account for a while
STALE_SNAPSHOT = (
    "check that ozon_inventory_sync is unpaused and its runs list this account (Variable "
    "ozon_inventory_accounts); the next successful run refreshes it"
)
#: a run that applied nothing because Ozon's answers were older than what is loaded
STALE_ANSWERS = "nothing to do: Ozon answered with data older than what is loaded; the next run catches up"


def worst(kinds: Iterable[str]) -> str | None:
    """The kind that needs a person most, None when there is none."""
    order = {k: i for i, k in enumerate(KINDS)}
    found = sorted(set(kinds), key=lambda k: order.get(k, len(order)))
    return found[0] if found else None


def action(failed: Mapping[str, Mapping[str, Any] | None], conn_id: str) -> str:
    """The one thing to do for an account whose sources ``failed`` (source → its failure record):
    the advice of the worst kind among them, naming the fetch tasks to clear; nothing to do when
    nothing failed."""
    if not failed:
        return NOTHING_TO_DO
    kinds = {source: kind_of_record(record) for source, record in failed.items()}
    kind = worst(kinds.values()) or "unknown"
    tasks = [f"fetch_{source}" if source in _SOURCES else source for source, k in kinds.items() if k == kind]
    if not tasks:
        task = "the failed task"
    elif len(tasks) == 1:
        task = tasks[0]
    else:
        task = ", ".join(tasks[:-1]) + " and " + tasks[-1]
    return advice(kind, conn_id, task)


_SOURCES = ("stocks", "warehouse_stocks", "warehouses")
