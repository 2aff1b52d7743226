"""The DAG file imports cleanly and is wired as designed."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_dag_bag_has_no_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert "ozon_inventory_sync" in bag.dags


def test_structure_and_settings():
    from ozon_inventory_sync import dag

    tasks = dag.task_dict
    fetches = ["account.fetch_stocks", "account.fetch_warehouse_stocks", "account.fetch_warehouses"]
    for name in fetches:
        assert tasks[name].downstream_task_ids == {"account.validate", "account.report"}
        assert tasks[name].pool == "ozon_api"
        assert tasks[name].retry_exponential_backoff and tasks[name].retry_policy is not None
    assert tasks["account.validate"].trigger_rule == "all_done"
    assert tasks["account.merge"].downstream_task_ids == {"account.load"}
    assert tasks["account.report"].trigger_rule == "all_done"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.doc_md and all(tasks[t].doc_md or tasks[t].doc for t in fetches)


def test_parse_time_settings_from_environment(monkeypatch):
    from ozon_inventory.config import DagSettings

    for name in ("OZON_INVENTORY_SCHEDULE", "OZON_INVENTORY_RETRIES", "OZON_INVENTORY_POOL"):
        monkeypatch.delenv(name, raising=False)
    defaults = DagSettings.from_env()
    assert (defaults.schedule, defaults.retries, defaults.pool) == ("@hourly", 3, "ozon_api")
    monkeypatch.setenv("OZON_INVENTORY_SCHEDULE", "manual")
    monkeypatch.setenv("OZON_INVENTORY_RETRIES", "x")
    import pytest

    from ozon_inventory.exceptions import ConfigError

    with pytest.raises(ConfigError, match="OZON_INVENTORY_RETRIES must be a number, got 'x'"):
        DagSettings.from_env()


def test_permanent_errors_are_not_retried():
    from ozon_inventory.exceptions import OzonAuthError, OzonTransientError
    from ozon_inventory.tasks import PERMANENT

    assert PERMANENT.rules[0].matches(OzonAuthError("/v4/product/info/stocks", 404, 5, "Invalid Api-Key"))
    assert not PERMANENT.rules[0].matches(OzonTransientError("/v4/product/info/stocks", 3, "HTTP 503"))
