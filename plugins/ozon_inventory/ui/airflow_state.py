"""Each account's newest run of the DAG, from Airflow's metadata database (the api-server's session).

The ledger in the target database only knows runs that loaded something; a run whose tasks failed
before the load (a bad key, Ozon down for every source, the shrink guard) is known only to Airflow.
The accounts of a run are the ``accounts`` task's XCom (index = map index of the account's tasks).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ozon_inventory.ui.queries import DAG_ID, AirflowFacts

RUNS = 5  # the newest runs looked at: an account missing from all of them has no Airflow facts
UNFINISHED = frozenset(
    {"scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting"}
)
GROUP = "account."


def account_runs(session: Session, dag_id: str = DAG_ID, runs: int = RUNS) -> dict[str, AirflowFacts]:
    """Per account: its newest run among the DAG's last ``runs`` and how its tasks ended there."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    recent = session.execute(
        select(DagRun.run_id, DagRun.run_after, DagRun.state)
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.run_after.desc(), DagRun.id.desc())
        .limit(runs)
    ).all()
    if not recent:
        return {}
    run_ids = [r.run_id for r in recent]
    listed: dict[str, list[str]] = {}
    for row in session.execute(
        select(XComModel.run_id, XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.task_id == "accounts",
            XComModel.key == "return_value",
            XComModel.map_index == -1,
            XComModel.run_id.in_(run_ids),
        )
    ).all():
        value = _accounts_value(row)
        if value:
            listed[row.run_id] = value
    states: dict[tuple[str, int], dict[str, str | None]] = defaultdict(dict)
    for ti in session.execute(
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id.in_(run_ids),
            TaskInstance.map_index >= 0,
        )
    ).all():
        states[(ti.run_id, ti.map_index)][ti.task_id] = (
            str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti.state else None
        )
    out: dict[str, AirflowFacts] = {}
    for run in recent:  # newest first: the first run that lists an account is its newest
        for index, account in enumerate(listed.get(run.run_id, [])):
            if account in out:
                continue
            tasks = states.get((run.run_id, index), {})
            failed = _failed(tasks)
            if failed:
                outcome = "failed"
            elif not tasks or any(s is None or s in UNFINISHED for s in tasks.values()):
                outcome = "running"
            elif tasks.get(GROUP + "report") == "skipped":
                outcome = "skipped"
            else:
                outcome = "ok"
            out[account] = AirflowFacts(
                run_id=run.run_id,
                run_after=run.run_after,
                run_state=str(run.state.value if hasattr(run.state, "value") else run.state),
                map_index=index,
                outcome=outcome,
                failed_tasks=failed,
            )
    return out


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


def _accounts_value(row: Any) -> list[str]:
    from airflow.models.xcom import XComModel

    try:
        value = XComModel.deserialize_value(row)
    except Exception:  # noqa: BLE001 - a custom XCom backend may keep only a reference
        value = row.value
    if isinstance(value, list | tuple):
        return [str(a) for a in value]
    return []
