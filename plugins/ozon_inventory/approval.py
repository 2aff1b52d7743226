"""An operator's decision on a load the shrink guard stopped, with Airflow's human-in-the-loop.

Why a decision and not a failure: a catalogue that really shrank used to need a new run with
``allow_shrink=true``, which meant new requests to Ozon, a new run id, and the stopped run's
evidence left behind. Now ``validate`` records what the guard found (``validated/shrink.json``) and
succeeds, and ``approve_shrink`` asks: the run waits in Airflow's Required Actions (a waiting task
holds no worker, triggerer or pool slot) with the guard's figures in the request. On approval,
merge and load go ahead from this run's staged answers, with no new request to Ozon. A refusal, or
no answer within ``OZON_INVENTORY_SHRINK_APPROVAL_HOURS``, fails the task, so the load does not
run and the previous snapshot stays whole, as before. The decision, who made it and when, is kept in
``validated/decision.json`` and copied by the load into the ledger (``ozon_sync_run.shrink_decision``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.exceptions import HITLRejectException, HITLTimeoutError
from airflow.providers.standard.operators.hitl import ApprovalOperator

from ozon_inventory.exceptions import ShrinkGuardError
from ozon_inventory.staging import StagingArea

log = logging.getLogger(__name__)

#: ``validated/`` files: what the guard stopped, and what was decided about it.
SHRINK = "shrink.json"
DECISION = "decision.json"
APPROVED = "approved"


def record_stop(staging: StagingArea, exc: ShrinkGuardError) -> dict[str, Any]:
    """What the guard found, for the request, the page and the ledger."""
    stopped = {"reason": str(exc), "figures": exc.figures, "at": _now()}
    staging.write_json("validated", SHRINK, stopped)
    return stopped


def read(staging: StagingArea, name: str) -> dict[str, Any] | None:
    return staging.read_json("validated", name) if staging.file("validated", name).exists() else None


def unapproved(staging: StagingArea) -> str | None:
    """Why the run must not load (a stop with no approval), or None."""
    stopped = read(staging, SHRINK)
    if stopped is None:
        return None
    decision = read(staging, DECISION) or {}
    if decision.get("decision") == APPROVED:
        return None
    said = decision.get("decision") or "no decision yet"
    return f"{stopped['reason']} The load of this run was not approved ({said})."


def body(account: str, run_key: str, stopped: dict[str, Any]) -> str:
    """The request's text (Markdown): the guard's figures per source, and what each answer does."""
    lines = [
        f"The shrink guard stopped the load of account **{account}**, run `{run_key}`.",
        "",
        "| source | counted | last good snapshot | this run | change |",
        "|---|---|---|---|---|",
    ]
    for f in stopped.get("figures", []):
        before, after = int(f["before"]), int(f["after"])
        change = f"{(after - before) / before:+.0%}" if before else "new"
        lines.append(f"| {f['source']} | {f['unit']} | {before:,} | {after:,} | {change} |")
    lines += [
        "",
        "**Approve**: load this run's staged answers (no new request to Ozon); what vanished is closed "
        "in history. **Reject**: the run fails and the previous snapshot stays as it is.",
    ]
    return "\n".join(lines)


class ShrinkApproval(ApprovalOperator):
    """``approve_shrink``: asks only when ``validate`` recorded a stop; else returns at once."""

    template_fields = (*ApprovalOperator.template_fields, "account")

    def __init__(self, *, account: Any, hours: float, **kwargs: Any):
        super().__init__(
            subject="Load a snapshot that shrank?",
            response_timeout=timedelta(hours=hours) if hours > 0 else None,
            fail_on_reject=True,
            retries=0,  # a retry would ask again; clear the task to ask again
            **kwargs,
        )
        self.account = account

    @property
    def op_kwargs(self) -> dict[str, Any]:
        """As a TaskFlow task's: the grid label (``tasks.MAP_LABEL``) reads the account from it."""
        return {"account": self.account}

    def _staging(self) -> tuple[Any, Any, StagingArea]:
        from ozon_inventory.tasks import _context

        return _context(str(self.account))

    def execute(self, context: Any) -> Any:
        ctx, settings, staging = self._staging()
        stopped = read(staging, SHRINK)
        if stopped is None:
            log.info("account %s: the shrink guard did not stop this run; nothing to decide", self.account)
            return {"asked": False}
        self.subject = f"Ozon inventory {self.account}: load a snapshot that shrank?"
        self.body = body(str(self.account), staging.run_key, stopped)
        _tell(ctx, settings, str(self.account), staging, stopped)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        _, _, staging = self._staging()
        try:
            answer = super().execute_complete(context, event)
        except HITLRejectException:
            _decide(staging, "refused", event)
            raise
        except HITLTimeoutError:
            _decide(staging, "timed out", event)
            raise
        decision = _decide(staging, APPROVED, event)
        staging.remove("validated", "stop.json")  # approved: no "load stopped" alert from report
        log.info("account %s: shrink approved by %s", self.account, decision["by"])
        return {"asked": True, "decision": APPROVED, "by": decision["by"], "at": answer["responded_at"]}


def _decide(staging: StagingArea, decision: str, event: dict[str, Any]) -> dict[str, Any]:
    user = event.get("responded_by_user") or {}  # HITLUser: {"id", "name"}; none on a timeout
    when = event.get("responded_at")
    made = {
        "decision": decision,
        "by": user.get("name") or user.get("id"),
        "at": when.isoformat() if isinstance(when, datetime) else _now(),
    }
    staging.write_json("validated", DECISION, made)
    return made


def _tell(context: Any, settings: Any, account: str, staging: StagingArea, stopped: dict[str, Any]) -> None:
    """The alert channels hear that a decision waits (an alert channel that is down never fails it)."""
    from ozon_inventory import alerts

    alert = alerts.Alert(
        account,
        "shrink_approval",
        staging.run_key,
        f"Ozon inventory {account}: a load waits for approval",
        f"{stopped['reason']}\n\nApprove or reject it in Airflow: Browse → Required Actions "
        f"(task approve_shrink of run {context['dag_run'].run_id}).",
    )
    try:
        alerts.send([alert], context, settings.alert_email, settings.alert_notifier)
    except Exception as exc:  # noqa: BLE001 - the request itself is what matters
        log.error("account %s: could not tell the alert channels a decision waits: %s", account, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
