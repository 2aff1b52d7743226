"""Each account's newest run of the DAG, from Airflow's metadata database (the api-server's session).

The ledger in the target database only knows runs that loaded something; a run whose tasks failed
before the load (a bad key, Ozon down for every source, the shrink guard) is known only to Airflow.
The accounts of a run are the ``accounts`` task's XCom (index = map index of the account's tasks);
why its sources failed is the ``report`` task's XCom ``outcome`` (kept even when the report fails).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ozon_inventory.ui.queries import DAG_ID, AirflowFacts

RUNS = 25  # the newest runs looked at: an account missing from all of them has no Airflow facts
UNFINISHED = frozenset(
    {"scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting"}
)
GROUP = "account."


@dataclass(frozen=True)
class Run:
    """One DAG run as this module reads it (newest first)."""

    run_id: str
    run_after: datetime
    run_state: str
    started: datetime | None = None


def account_runs(session: Session, dag_id: str = DAG_ID, runs: int = RUNS) -> dict[str, AirflowFacts]:
    """Per account: how its tasks ended in its newest finished run among the DAG's last ``runs``,
    the run in progress beside it, and for how many runs it has been failing."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    recent = [
        Run(r.run_id, r.run_after, _text(r.state), r.start_date)
        for r in session.execute(
            select(DagRun.run_id, DagRun.run_after, DagRun.state, DagRun.start_date)
            .where(DagRun.dag_id == dag_id)
            .order_by(DagRun.run_after.desc(), DagRun.id.desc())
            .limit(runs)
        ).all()
    ]
    if not recent:
        return {}
    run_ids = [r.run_id for r in recent]
    listed: dict[str, list[str]] = {}
    outcomes: dict[tuple[str, int], dict[str, Any]] = {}
    for row in session.execute(
        select(XComModel.run_id, XComModel.task_id, XComModel.map_index, XComModel.value).where(
            XComModel.dag_id == dag_id,
            or_(
                and_(
                    XComModel.task_id == "accounts",
                    XComModel.key == "return_value",
                    XComModel.map_index == -1,
                ),
                and_(XComModel.task_id == GROUP + "report", XComModel.key == "outcome"),
            ),
            XComModel.run_id.in_(run_ids),
        )
    ).all():
        value = _value(row)
        if row.task_id == "accounts":
            if isinstance(value, list | tuple) and value:
                listed[row.run_id] = [str(a) for a in value]
        elif isinstance(value, dict):
            outcomes[(row.run_id, row.map_index)] = value
    states: dict[tuple[str, int], dict[str, str | None]] = defaultdict(dict)
    for ti in session.execute(
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id.in_(run_ids),
            TaskInstance.map_index >= 0,
        )
    ).all():
        states[(ti.run_id, ti.map_index)][ti.task_id] = _text(ti.state) if ti.state else None
    return facts_of(recent, listed, states, outcomes, window_full=len(recent) >= runs)


def outcome_of(tasks: dict[str, str | None]) -> str:
    """How one account's tasks in one run ended: ``running`` while any is unfinished, else
    ``degraded`` (loaded, a source missing), ``failed`` (nothing loaded), ``skipped`` or ``ok``."""
    if not tasks or any(s is None or s in UNFINISHED for s in tasks.values()):
        return "running"
    if _failed(tasks):
        return "degraded" if tasks.get(GROUP + "load") == "success" else "failed"
    if tasks.get(GROUP + "report") == "skipped":
        return "skipped"
    return "ok"


def facts_of(
    recent: list[Run],
    listed: dict[str, list[str]],
    states: dict[tuple[str, int], dict[str, str | None]],
    outcomes: dict[tuple[str, int], dict[str, Any]] | None = None,
    window_full: bool = False,
) -> dict[str, AirflowFacts]:
    """Each account's facts from the runs (newest first), the accounts each run lists, the task
    states per (run, map index) and the reports' ``outcome`` XComs.

    The status shown is the last *finished* outcome: a run in progress (whose fetch may already
    have failed, or not have started) says nothing yet, so it is only named beside it. The streak
    counts the account's finished runs, newest back, that failed or were degraded; when it reaches
    back to the oldest run looked at (``window_full``: older runs exist) it is a lower bound."""
    outcomes = outcomes or {}
    newest_list = next((listed[r.run_id] for r in recent if r.run_id in listed), [])
    seen: dict[str, list[tuple[Run, int, str]]] = defaultdict(list)
    for run in recent:
        for index, account in enumerate(listed.get(run.run_id, [])):
            seen[account].append((run, index, outcome_of(states.get((run.run_id, index), {}))))
    out: dict[str, AirflowFacts] = {}
    for account, history in seen.items():
        finished = [(run, index, outcome) for run, index, outcome in history if outcome != "running"]
        running = next(((run, index) for run, index, outcome in history if outcome == "running"), None)
        if running is not None and finished and finished[0][0].run_after > running[0].run_after:
            running = None  # an older run still going (a backfill, a cleared run) does not count
        streak: list[Run] = []
        for run, _index, outcome in finished:
            if outcome not in ("failed", "degraded"):
                break
            streak.append(run)
        at_least = window_full and bool(streak) and len(streak) == len(finished)
        if finished:
            run, index, outcome = finished[0]
        else:
            (run, index), outcome = running or (history[0][0], history[0][1]), "running"
        since = streak[-1].started or streak[-1].run_after if streak else None
        out[account] = AirflowFacts(
            run_id=run.run_id,
            run_after=run.run_after,
            run_state=run.run_state,
            map_index=index,
            outcome=outcome,
            failed_tasks=_failed(states.get((run.run_id, index), {})),
            running_run_id=running[0].run_id if running else None,
            failing_runs=len(streak),
            failing_since=since,
            failing_at_least=at_least,
            errors=dict((outcomes.get((run.run_id, index)) or {}).get("errors") or {}),
            listed=account in newest_list,
            started=run.started,
        )
    return out


def _text(state: Any) -> str:
    return str(state.value if hasattr(state, "value") else state)


ORDER = ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate", "merge", "load", "report")


def _failed(tasks: dict[str, str | None]) -> tuple[str, ...]:
    """The failed tasks of one account in the DAG's order, causes first: ``report`` (which fails
    because of the others) and ``upstream_failed`` tasks are named only when nothing else failed."""
    names = {t.removeprefix(GROUP): s for t, s in tasks.items()}
    failed = [t for t in ORDER if names.get(t) == "failed"]
    causes = [t for t in failed if t != "report"]
    if causes or failed:
        return tuple(causes or failed)
    return tuple(t for t in ORDER if names.get(t) == "upstream_failed")


def _value(row: Any) -> Any:
    from airflow.models.xcom import XComModel

    try:
        return XComModel.deserialize_value(row)
    except Exception:  # noqa: BLE001 - a custom XCom backend may keep only a reference
        return row.value
