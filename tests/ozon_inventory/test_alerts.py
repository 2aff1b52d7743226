"""Alerts: what a run calls for, told once per change, received by a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import json
import time
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from ozon_inventory.alerts import new_alerts, run_alerts, send
from scripts.localpg import free_port

OK_V2 = {"status": "ok", "method": "/v2/analytics/stock_on_warehouses", "fallback_from": None}
FELL_BACK = {
    "status": "ok",
    "method": "/v1/analytics/stocks",
    "fallback_from": "/v2/analytics/stock_on_warehouses",
    "unknown_fields": {"warehouse_stocks.v1.placement_zone": 511},
}


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "ozon-inventory@example.test",
                },
            }
        ),
    )
    yield inbox
    controller.stop()


def test_a_run_calls_for_alerts_by_its_state():
    expires = datetime(2026, 12, 1, tzinfo=UTC)
    alerts = run_alerts(
        "shop",
        {"degraded": True, "missing": ["warehouse_stocks"], "applied": ["stocks", "warehouses"]},
        {"warehouse_stocks": FELL_BACK},
        key_expires_at=expires,
        key_days_left=7,
        conn_id="ozon_shop",
    )
    kinds = {a.kind for a in alerts}
    assert kinds == {"degraded", "key_expiring", "method_switched:warehouse_stocks", "drift:warehouse_stocks"}
    key = next(a for a in alerts if a.kind == "key_expiring")
    assert "expires on 2026-12-01 (in 7 days)" in key.text and "update connection ozon_shop" in key.text
    assert run_alerts("shop", {"degraded": False}, {"warehouse_stocks": OK_V2}) == []


def test_an_answer_whose_shape_changed_is_told_with_its_field_once_per_field():
    error = {
        "error": "OzonSchemaChanged",
        "message": "Ozon /v4/product/info/stocks answered in a changed shape: 'stocks' is missing in 3 of 3 items",
        "summary": "/v4/product/info/stocks answered in a changed shape: 'stocks' is missing in 3 of 3 items",
        "method": "/v4/product/info/stocks",
        "field": "stocks",
        "permanent": True,
    }
    result = {"degraded": True, "missing": ["stocks"], "applied": ["warehouse_stocks", "warehouses"]}
    alerts = {
        a.kind: a for a in run_alerts("shop", result, {"stocks": {"status": "missing", "error": error}})
    }
    assert set(alerts) == {"degraded", "schema_changed:stocks"}
    changed = alerts["schema_changed:stocks"]
    assert changed.fingerprint == "/v4/product/info/stocks:stocks"
    assert "(stocks)" in changed.subject and "'stocks' is missing in 3 of 3 items" in changed.text
    assert "stocks: /v4/product/info/stocks answered in a changed shape" in alerts["degraded"].text
    renamed = error | {"field": "present"}
    again = run_alerts("shop", result, {"stocks": {"status": "missing", "error": renamed}})
    assert {a.fingerprint for a in again} == {"stocks", "/v4/product/info/stocks:present"}  # a new field: new


def test_a_lasting_condition_is_told_once_and_again_when_it_comes_back(pg_conn):
    def raised(sources, result=None):
        return [a.kind for a in new_alerts(pg_conn, "shop", run_alerts("shop", result, sources))]

    assert sorted(raised({"warehouse_stocks": FELL_BACK})) == [
        "drift:warehouse_stocks",
        "method_switched:warehouse_stocks",
    ]
    assert raised({"warehouse_stocks": FELL_BACK}) == []  # the next hourly run: nothing new
    changed = FELL_BACK | {"unknown_fields": {"warehouse_stocks.v1.new_counter": 3}}
    assert raised({"warehouse_stocks": changed}) == ["drift:warehouse_stocks"]  # drift changed
    assert raised({"warehouse_stocks": OK_V2}) == []  # back to normal: cleared
    assert sorted(raised({"warehouse_stocks": FELL_BACK})) == [
        "drift:warehouse_stocks",
        "method_switched:warehouse_stocks",
    ]
    degraded = {"degraded": True, "missing": ["stocks"], "applied": []}
    assert raised({}, degraded) == ["degraded"] and raised({}, degraded) == []


def test_an_alert_email_is_received(smtp):
    alert = run_alerts(
        "shop", {"degraded": True, "missing": ["warehouse_stocks"], "applied": ["stocks"]}, {}
    )[0]
    assert send([alert], {}, "ops@example.test, analyst@example.test", None) == 1
    deadline = time.monotonic() + 10
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    message = smtp.messages[0]
    assert message["Subject"] == "Ozon inventory shop: degraded run (warehouse_stocks missing)"
    assert message["To"] == "ops@example.test, analyst@example.test"
    assert message["From"] == "ozon-inventory@example.test"
    body = message.get_body(("html",)).get_content()
    assert "warehouse_stocks failed and kept its last good rows" in body
    print("\n--- received ---\n" + message.as_string()[:1500])


def test_a_custom_notifier_gets_the_text(monkeypatch):
    received: list[str] = []

    class Chat:
        def __init__(self, chat_id: str, text: str):
            self.chat_id, self.text = chat_id, text

        def __call__(self, context):
            received.append(f"{self.chat_id}: {self.text}")

    monkeypatch.setattr("tests.ozon_inventory.test_alerts.Chat", Chat, raising=False)
    spec = {
        "class": "tests.ozon_inventory.test_alerts.Chat",
        "kwargs": {"chat_id": "-100"},
        "text_field": "text",
    }
    alert = run_alerts("shop", None, {}, stop="snapshot shrank by more than 50%")[0]
    assert send([alert], {}, None, spec) == 1
    assert received == ["-100: Ozon inventory shop: load stopped\nsnapshot shrank by more than 50%"]


def test_key_expired_alert_after_expiry():
    expired = run_alerts(
        "shop", None, {}, key_expires_at=datetime.now(UTC) - timedelta(days=1), key_days_left=-1
    )
    assert [a.kind for a in expired] == ["key_expired"] and "expired on" in expired[0].text
