"""Alerts through Airflow's notifiers, raised once per change, not once per run.

What is worth telling a seller before the data breaks: a degraded run (with each failed source's
cause), a shrink-guard stop, a key about to expire or expired, a method switched (a fallback, an
"obsolete" answer), drifting (fields or enum values the stored schemas do not know) or answering in
a changed shape (a field the pipeline needs gone: the source keeps its last good rows). The churn sentinel compares each run with what was
last alerted for the account (``ozon_alert_state`` in the target database), so an hourly schedule
raises one alert when something changes, and again only when it changes again or comes back.

Channels: e-mail through providers-smtp's ``SmtpNotifier`` (setting ``alert_email``), and any other
Airflow notifier (Slack, Telegram, …) named by ``alert_notifier`` — ``{"class": "dotted.path",
"kwargs": {...}, "text_field": "text"}``; the alert's text goes into ``text_field``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ozon_inventory.advice import action
from ozon_inventory.exceptions import ConfigError
from ozon_inventory.naming import account_name
from ozon_inventory.sql import statements

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One thing to tell; ``fingerprint`` is what makes it new (the same fingerprint is not re-sent)."""

    account: str
    kind: str  # degraded, shrink_guard, shrink_approval, key_expiring, key_expired, method_switched, drift, schema_changed,
    # stock_events
    fingerprint: str
    subject: str
    text: str


def churn(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source of a run's validation report: the method, the fallback taken, unknown fields/values."""
    out: dict[str, dict[str, Any]] = {}
    for name, src in sources.items():
        if src.get("status") != "ok":
            continue
        out[name] = {
            "method": src.get("method"),
            "fallback_from": src.get("fallback_from"),
            "unknown_fields": sorted(src.get("unknown_fields") or {}),
            "unknown_values": sorted(src.get("unknown_values") or {}),
        }
    return out


def run_alerts(
    account: str,
    result: Mapping[str, Any] | None,
    sources: Mapping[str, Mapping[str, Any]],
    *,
    stop: str | None = None,
    key_expires_at: datetime | None = None,
    key_days_left: float | None = None,
    warn_days: float = 14.0,
    conn_id: str | None = None,
) -> list[Alert]:
    """Every alert this run's state calls for (before deduplication against earlier runs)."""
    alerts: list[Alert] = []
    if stop:
        alerts.append(
            Alert(account, "shrink_guard", _digest(stop), f"Ozon inventory {account}: load stopped", stop)
        )
    if result and result.get("degraded"):
        missing = sorted(result.get("missing") or [])
        causes = "".join(
            f" {name}: {error.get('summary') or error.get('message')}."
            for name in missing
            if (error := (sources.get(name) or {}).get("error"))
        )
        alerts.append(
            Alert(
                account,
                "degraded",
                ",".join(missing),
                f"Ozon inventory {account}: degraded run ({', '.join(missing)} missing)",
                f"account {account}: {', '.join(missing)} failed and kept its last good rows; loaded "
                f"{', '.join(result.get('applied') or []) or 'nothing'}.{causes} To complete the snapshot: "
                + action({n: (sources.get(n) or {}).get("error") for n in missing}, conn_id or account)
                + ".",
            )
        )
    for name, src in sources.items():
        error = src.get("error") or {}
        if error.get("field"):  # Ozon's answer changed shape: told once per method and field
            alerts.append(
                Alert(
                    account,
                    f"schema_changed:{name}",
                    f"{error.get('method')}:{error['field']}",
                    f"Ozon inventory {account}: {error.get('method')} answers in a changed shape "
                    f"({error['field']})",
                    f"{error.get('message')} {name} kept its last good rows; the project must learn "
                    "the new shape before it loads again.",
                )
            )
    if key_expires_at is not None and key_days_left is not None and key_days_left <= warn_days:
        expired = key_days_left <= 0
        day = key_expires_at.date().isoformat()
        what = f"expired on {day}" if expired else f"expires on {day} (in {key_days_left:.0f} days)"
        alerts.append(
            Alert(
                account,
                "key_expired" if expired else "key_expiring",
                day,
                f"Ozon inventory {account}: the Api-Key {what}",
                f"the Api-Key of account {account} {what}: issue a new one in Seller Center → Settings → "
                f"API keys and update connection {conn_id or account}",
            )
        )
    for name, now in churn(sources).items():
        if now["fallback_from"]:
            alerts.append(
                Alert(
                    account,
                    f"method_switched:{name}",
                    f"{now['fallback_from']}->{now['method']}",
                    f"Ozon inventory {account}: {name} switched to {now['method']}",
                    f"{now['fallback_from']} did not answer (switched off or down) and {name} was fetched "
                    f"with its successor {now['method']}. Check Ozon's news for the method.",
                )
            )
        if now["unknown_fields"] or now["unknown_values"]:
            alerts.append(
                Alert(
                    account,
                    f"drift:{name}",
                    _digest(json.dumps([now["method"], now["unknown_fields"], now["unknown_values"]])),
                    f"Ozon inventory {account}: {now['method']} answers changed",
                    f"{now['method']} sent fields the stored schema does not know: "
                    f"{', '.join(now['unknown_fields']) or 'none'}; unknown values: "
                    f"{', '.join(now['unknown_values']) or 'none'}. They are kept and counted; check Ozon's news.",
                )
            )
    return alerts


#: The events a digest names one by one; the rest are counted (read.stock_events lists them all).
DIGEST_EVENTS = 20


def stock_events_digest(conn: Any, account: str, run_id: str) -> Alert | None:
    """The run's stock events as one alert (``alert_stock_events`` on), or None when there are none.

    Its fingerprint is the run: each run with events tells its own, a repeated report does not.
    """
    with conn.cursor() as cur:
        cur.execute(
            statements("alerts")["run_events"], {"account": account, "run_id": run_id, "limit": DIGEST_EVENTS}
        )
        rows = cur.fetchall()
    conn.commit()
    if not rows:
        return None
    totals = {kind: of_kind for kind, *_, of_kind in rows}
    named = len(rows)
    lines = []
    for kind, scope, sku, stock_type, warehouse, before, after, _ in rows:
        where = f"{stock_type}" if scope == "type" else f"warehouse {warehouse}"
        lines.append(f"{kind.replace('_', ' ')}: SKU {sku} {where} ({before} → {after})")
    more = sum(totals.values()) - named
    counts = ", ".join(
        f"{totals[k]} {k.replace('_', ' ')}" for k in ("out_of_stock", "back_in_stock") if k in totals
    )
    return Alert(
        account,
        "stock_events",
        _digest(run_id),
        f"Ozon inventory {account}: {counts}",
        f"account {account}, run {run_id}: {counts} (available to sell crossing 0, per stock type and "
        f"per Ozon warehouse). " + "; ".join(lines) + (f"; and {more} more" if more > 0 else "") + ". "
        f"ozon_inventory.read.stock_events({account!r}, run_id={run_id!r}) lists them all.",
    )


def new_alerts(conn: Any, account: str, alerts: Iterable[Alert]) -> list[Alert]:
    """The alerts whose fingerprint differs from the last one raised for their kind; records them.

    Kinds not raised this run are cleared, so a problem that comes back is alerted again.
    """
    sql = statements("alerts")
    alerts = list(alerts)
    fresh: list[Alert] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["lock_account"], {"account": account})
        cur.execute(sql["state"], {"account": account})
        known = dict(cur.fetchall())
        for alert in alerts:
            if known.get(alert.kind) == alert.fingerprint:
                continue
            fresh.append(alert)
            cur.execute(
                sql["remember"], {"account": account, "kind": alert.kind, "fingerprint": alert.fingerprint}
            )
        cur.execute(sql["forget_others"], {"account": account, "kinds": [a.kind for a in alerts]})
    return fresh


def notifiers_for(alert: Alert, email: str | None, custom: str | Mapping[str, Any] | None) -> list[Any]:
    """Airflow notifiers for one alert: ``SmtpNotifier`` for ``email`` and the ``custom`` one, if set."""
    out: list[Any] = []
    if email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        recipients = [a.strip() for a in email.split(",") if a.strip()]
        body = "<p>" + alert.text.replace("&", "&amp;").replace("<", "&lt;") + "</p>"
        out.append(SmtpNotifier(to=recipients, subject=alert.subject, html_content=body))
    if custom:
        spec = _notifier_spec(custom)
        try:
            module, _, name = str(spec["class"]).rpartition(".")
            notifier_class = getattr(importlib.import_module(module), name)
        except (KeyError, ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"alert_notifier: cannot load notifier class {spec.get('class')!r}: {exc}"
            ) from exc
        kwargs = dict(spec.get("kwargs") or {}) | {
            str(spec.get("text_field", "text")): f"{alert.subject}\n{alert.text}"
        }
        out.append(notifier_class(**kwargs))
    return out


def _notifier_spec(custom: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``alert_notifier`` setting as a dict; a value that is not a JSON object names itself."""
    try:
        spec = json.loads(custom) if isinstance(custom, str) else custom
    except ValueError as exc:
        spec, problem = None, f"not JSON ({exc})"
    else:
        problem = "not a JSON object"
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"Variable ozon_inventory_alert_notifier must be a JSON object such as "
            f'{{"class": "<notifier class path>", "kwargs": {{}}}}; found {custom!r}: {problem}'
        )
    return dict(spec)


def send(
    alerts: Iterable[Alert], context: Any, email: str | None, custom: str | Mapping[str, Any] | None
) -> int:
    """Send each alert through each channel; a channel that fails is logged, the others still go."""
    sent = 0
    for alert in alerts:
        log.warning("ALERT account=%s kind=%s: %s", account_name(alert.account), alert.kind, alert.text)
        for notifier in notifiers_for(alert, email, custom):
            try:
                notifier(context)
                sent += 1
            except Exception as exc:  # noqa: BLE001 - an alert channel down must not fail the run's report
                log.error("could not send alert %s through %s: %s", alert.kind, type(notifier).__name__, exc)
    return sent


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
