"""What the grid and the trigger form show: map labels, the degraded report, the skip reason, params.

The tasks' code runs here as the task runner runs it (``get_current_context`` set, the task's
callable), and the map label is rendered with the DAG's own template environment, as the task
runner renders ``map_index_template`` (before the task's code runs, and again when it ends).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.context import set_current_context

from ozon_inventory import tasks
from ozon_inventory.staging import StagingArea, run_key_for

MOMENT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _context(tmp_path: Any, run_type: str = "manual", **params: Any) -> dict[str, Any]:
    dag_run = SimpleNamespace(
        run_id="manual__2026-11-20T12:00:00+00:00", logical_date=MOMENT, run_after=MOMENT, run_type=run_type
    )
    ti = SimpleNamespace(  # this run's task instance: no load of it succeeded
        dag_id="ozon_inventory_sync",
        task_id="account.report",
        run_id=dag_run.run_id,
        map_index=0,
        get_ti_count=lambda **_: 0,
    )
    return {"params": {"staging": str(tmp_path / "staging"), **params}, "dag_run": dag_run, "ti": ti}


def _label(context: dict[str, Any], task: Any) -> str:
    from ozon_inventory_sync import dag

    return dag.get_template_env().from_string(tasks.MAP_LABEL).render({**context, "task": task})


def test_label_is_the_account_before_the_task_code_runs():
    """Before the code runs the context has no "account": the rendered argument names it."""
    positional = SimpleNamespace(op_args=["ozon_default"], op_kwargs={})
    by_name = SimpleNamespace(op_args=[], op_kwargs={"account": "ozon_second"})
    assert _label({}, positional) == "ozon_default"
    assert _label({}, by_name) == "ozon_second"
    assert _label({"account": "ozon_third"}, positional) == "ozon_third"


def test_every_mapped_task_uses_the_label():
    from ozon_inventory_sync import dag

    mapped = [t for t in dag.task_dict.values() if t.task_id.startswith("account.")]
    assert len(mapped) == 8 and {t.map_index_template for t in mapped} == {tasks.MAP_LABEL}


def test_degraded_report_says_which_sources_in_its_label(tmp_path):
    context = _context(tmp_path)
    staging = StagingArea(str(tmp_path / "staging"), "ozon_default", run_key_for(MOMENT))
    staging.write_json(
        "load",
        "result.json",
        {
            "status": "degraded",
            "degraded": True,
            "missing": ["warehouse_stocks"],
            "applied": ["stocks", "warehouses"],
            "counts": {},
            "rejects": 0,
            "mismatches": 0,
            "history_opened": 0,
            "history_closed": 0,
        },
    )
    with (
        set_current_context(context),
        pytest.raises(AirflowFailException, match="degraded run, warehouse_stocks failed"),
    ):
        tasks.report.function("ozon_default")
    task = SimpleNamespace(op_args=["ozon_default"], op_kwargs={})
    assert _label(context, task) == "ozon_default · degraded: warehouse_stocks failed"


def test_nothing_loaded_says_failed_in_its_label(tmp_path):
    context = _context(tmp_path)
    with set_current_context(context), pytest.raises(AirflowFailException, match="nothing was loaded"):
        tasks.report.function("ozon_default")
    assert context["ozon_label"] == "failed: nothing loaded"


def test_the_report_keeps_why_each_source_failed_for_the_page(tmp_path):
    """A run that loaded nothing is known to Airflow only: the report's XCom ``outcome`` (pushed
    before it fails) carries each source's failure for the operators' page."""
    from ozon_inventory.exceptions import OzonAuthError
    from ozon_inventory.fetch import FAILED, failure

    context = _context(tmp_path)
    pushed: list[tuple[str, Any]] = []
    context["ti"].xcom_push = lambda key, value: pushed.append((key, value))
    staging = StagingArea(str(tmp_path / "staging"), "ozon_default", run_key_for(MOMENT))
    bad_key = failure(OzonAuthError("/v4/product/info/stocks", 404, 5, "Invalid Api-Key"))
    staging.write_json("stocks", FAILED, bad_key)
    with set_current_context(context), pytest.raises(AirflowFailException, match="nothing was loaded"):
        tasks.report.function("ozon_default")
    ((key, outcome),) = pushed
    assert key == "outcome" and outcome["status"] == "failed" and outcome["conn_id"] == "ozon_default"
    assert outcome["errors"] == {"stocks": bad_key, "warehouse_stocks": None, "warehouses": None}
    assert (bad_key["status"], bad_key["code"], bad_key["kind"]) == (404, 5, "auth")


def test_a_shrink_guard_stop_is_kept_as_the_validate_cause(tmp_path):
    context = _context(tmp_path)
    pushed: list[tuple[str, Any]] = []
    context["ti"].xcom_push = lambda key, value: pushed.append((key, value))
    staging = StagingArea(str(tmp_path / "staging"), "ozon_default", run_key_for(MOMENT))
    stop = "snapshot shrank by more than 50 %: 10 products against 175 of the last good snapshot"
    staging.write_json("validated", "stop.json", {"reason": stop, "kind": "shrink_guard"})
    with set_current_context(context), pytest.raises(AirflowFailException):
        tasks.report.function("ozon_default")
    ((_, outcome),) = pushed
    assert outcome["errors"]["validate"] == {"kind": "shrink_guard", "message": stop, "summary": stop}


def test_a_degraded_report_tells_the_action_of_its_failure_kind(tmp_path):
    from ozon_inventory.exceptions import OzonTransientError
    from ozon_inventory.fetch import FAILED, failure

    context = _context(tmp_path)
    staging = StagingArea(str(tmp_path / "staging"), "ozon_default", run_key_for(MOMENT))
    staging.write_json(
        "warehouse_stocks",
        FAILED,
        failure(OzonTransientError("/v2/analytics/stock_on_warehouses", 3, "HTTP 503")),
    )
    result = {"status": "degraded", "degraded": True, "missing": ["warehouse_stocks"], "applied": ["stocks"]}
    counts = {"counts": {}, "rejects": 0, "mismatches": 0, "history_opened": 0, "history_closed": 0}
    staging.write_json("load", "result.json", result | counts)
    with set_current_context(context), pytest.raises(AirflowFailException) as failed:
        tasks.report.function("ozon_default")
    assert "To complete the snapshot: Ozon did not answer in time (429, 5xx, timeouts): wait" in str(
        failed.value
    )
    assert "then clear fetch_warehouse_stocks with its downstream tasks" in str(failed.value)


def test_skipped_backfill_fetch_says_why_in_its_first_log_line(tmp_path, caplog):
    context = _context(tmp_path, run_type="backfill")
    caplog.set_level(logging.INFO)
    with set_current_context(context), pytest.raises(AirflowSkipException) as skipped:
        tasks.fetch_stocks.function("ozon_default")
    first = next(r for r in caplog.records if r.levelno >= logging.INFO)
    assert first.getMessage().startswith("SKIPPED: backfill of 20261120T120000Z: no archived stocks answers")
    assert str(skipped.value) in first.getMessage()
    assert context["ozon_label"] == "skipped: nothing archived"


def test_every_param_has_a_description_and_no_null_choice():
    from ozon_inventory_sync import dag

    params = dag.params
    assert set(params) >= {"accounts", "warehouse_stock_method", "warehouse_list_method", "allow_shrink"}
    for name in params:
        param = params.get_param(name)
        assert param.description and len(param.description) > 20, name
        assert None not in param.schema.get("enum", []), name
        if "enum" in param.schema:
            assert param.value in param.schema["enum"], name
            assert set(param.schema["values_display"]) == set(param.schema["enum"]), name
    params.validate()  # the defaults themselves are valid: the form can be submitted as it opens
    assert params["warehouse_stock_method"] == "auto" and params["allow_shrink"] is False


def test_auto_and_off_defer_to_the_variable_then_the_default(monkeypatch):
    from ozon_inventory.config import run_settings

    defaults = {"warehouse_stock_method": "auto", "warehouse_list_method": "auto", "allow_shrink": False}
    settings = run_settings(tasks._run_params(defaults))
    assert (settings.warehouse_stock_method, settings.warehouse_list_method, settings.allow_shrink) == (
        "auto",
        "auto",
        False,
    )
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_WAREHOUSE_STOCK_METHOD", "v1")
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALLOW_SHRINK", "true")
    settings = run_settings(tasks._run_params(defaults))
    assert settings.warehouse_stock_method == "v1" and settings.allow_shrink is True
    pinned = run_settings(tasks._run_params(defaults | {"warehouse_stock_method": "v2"}))
    assert pinned.warehouse_stock_method == "v2"  # a named method in the run wins over the Variable


def test_the_trigger_form_offers_the_alert_channels(monkeypatch):
    """alert_email and alert_notifier are params, as the README says: a run's value wins, an empty
    field defers to the Variable."""
    from ozon_inventory_sync import dag

    from ozon_inventory.config import run_settings

    assert {"alert_email", "alert_notifier"} <= set(dag.params)
    assert dag.params["alert_email"] is None and dag.params["alert_notifier"] is None
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALERT_EMAIL", "ops@example.test")
    assert run_settings(tasks._run_params({"alert_email": None})).alert_email == "ops@example.test"
    chosen = run_settings(tasks._run_params({"alert_email": "night@example.test"}))
    assert chosen.alert_email == "night@example.test"
    spec = '{"class": "x.Y"}'
    assert run_settings(tasks._run_params({"alert_notifier": spec})).alert_notifier == spec


def test_load_emits_an_asset_event_per_account_through_the_alias():
    from ozon_inventory_sync import dag

    load = dag.task_dict["account.load"]
    assert [o.name for o in load.outlets] == ["ozon-inventory"]
    assert tasks.stock_asset("ozon_default").uri == "ozon-inventory://ozon_default/"
