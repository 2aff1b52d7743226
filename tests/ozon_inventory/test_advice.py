"""The one place that says what a failure means and what to do: the page, the report and the
alerts read the same words from ``ozon_inventory.advice``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ozon_inventory import advice
from ozon_inventory.alerts import run_alerts
from ozon_inventory.exceptions import (
    OzonAuthError,
    OzonKeyExpired,
    OzonMethodDown,
    OzonMethodUnavailable,
    OzonSchemaChanged,
    OzonTransientError,
    ShrinkGuardError,
)
from ozon_inventory.fetch import failure

AUTH = OzonAuthError("/v4/product/info/stocks", 403, 7, "Api-Key is missing a required role for a method")
DOWN = OzonTransientError("/v2/analytics/stock_on_warehouses", 3, "HTTP 503: Internal error", 503)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (AUTH, "auth"),
        (OzonKeyExpired("shop", "shop", datetime(2026, 1, 1, tzinfo=UTC)), "key_expired"),
        (DOWN, "transient"),
        (OzonMethodDown("/v1/analytics/stocks", 503, "HTTP 503", 5), "transient"),
        (
            OzonMethodUnavailable("/v2/warehouse/list", 404, 5, "Obsolete method cannot be used"),
            "method_unavailable",
        ),
        (OzonSchemaChanged("/v4/product/info/stocks", "items", "no items", "{}"), "schema_changed"),
        (ShrinkGuardError("shrank"), "shrink_guard"),
        (ValueError("boom"), "unknown"),
    ],
)
def test_every_failure_has_a_kind_and_its_record_keeps_it(exc, kind):
    assert advice.kind_of_error(exc) == kind
    record = failure(exc)
    assert record["kind"] == kind and advice.kind_of_record(record) == kind
    old = {k: v for k, v in record.items() if k != "kind"}  # written before kinds: the class tells
    assert advice.kind_of_record(old) == kind


def test_a_failure_record_keeps_ozons_status_code_and_message():
    record = failure(AUTH)
    assert (record["status"], record["code"], record["ozon_message"]) == (
        403,
        7,
        "Api-Key is missing a required role for a method",
    )
    assert failure(DOWN)["status"] == 503 and failure(DOWN)["code"] is None


def test_the_action_fits_the_kind():
    auth = advice.action({"stocks": failure(AUTH)}, "ozon_shop")
    assert auth.startswith("fix the Api-Key or its roles in Airflow connection ozon_shop")
    assert "then clear fetch_stocks with its downstream tasks" in auth
    transient = advice.action({"warehouse_stocks": failure(DOWN), "warehouses": failure(DOWN)}, "ozon_shop")
    assert transient.startswith("Ozon did not answer in time (429, 5xx, timeouts): wait")
    assert "clear fetch_warehouse_stocks and fetch_warehouses with their downstream tasks" in transient
    # the worst kind decides: a key to fix comes before waiting
    both = advice.action({"stocks": failure(AUTH), "warehouses": failure(DOWN)}, "ozon_shop")
    assert both == auth
    assert advice.action({}, "ozon_shop") == "nothing to do"


def test_the_alert_says_the_same_as_the_page():
    sources = {"warehouse_stocks": {"status": "missing", "error": failure(AUTH)}}
    result = {"degraded": True, "missing": ["warehouse_stocks"], "applied": ["stocks", "warehouses"]}
    (alert,) = run_alerts("shop", result, sources, conn_id="ozon_shop")
    said = advice.action({"warehouse_stocks": failure(AUTH)}, "ozon_shop")
    assert alert.text.endswith(f"To complete the snapshot: {said}.")
    assert "Clear the failed fetch task" not in alert.text
