"""A small production-topology run (2,000 products, 3 runs) keeps ``scripts/topology_run.sh`` working.

It starts the whole topology (PostgreSQL, the simulator, Airflow's four components), so it is an e2e
test; one to two minutes on 2 cores. Its times are not asserted, only that the runs succeeded, the
data checks passed (also after the simulator changed 1 % of the catalogue) and every figure is
there. The Airflow settings' sources (docker-compose.yaml, ``--airflow-defaults``,
``--airflow-config``) are checked without starting anything.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts import topology_run

ROOT = Path(__file__).resolve().parents[2]
IDLE_SLEEP = "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"

TASK_FIELDS = {
    "state",
    "try_number",
    "start",
    "end",
    "start_s",
    "end_s",
    "duration_s",
    "queued_delay_s",
    "after_upstream_s",
    "work_s",
}


def test_airflow_settings_come_from_the_compose_file_unless_told_otherwise():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    assert compose[IDLE_SLEEP] == "0.1"  # what users deploy, so what is measured

    settings = topology_run.airflow_settings
    compose, given = settings(topology_run.parse_args([]))
    assert compose[IDLE_SLEEP] == "0.1" and given == {}
    # Airflow's own defaults
    assert settings(topology_run.parse_args(["--airflow-defaults"])) == ({}, {})
    # --airflow-config overrides the compose file's value (which is then not reported as applied)
    argv = ["--airflow-config", "scheduler.scheduler_idle_sleep_time=0.5", "--airflow-config", "core.x=1"]
    compose, given = settings(topology_run.parse_args(argv))
    assert IDLE_SLEEP not in compose and given == {IDLE_SLEEP: "0.5", "AIRFLOW__CORE__X": "1"}
    with pytest.raises(SystemExit):
        settings(topology_run.parse_args(["--airflow-config", "no_section=1"]))


def test_compose_settings_take_literal_scheduler_values_only(tmp_path):
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(
        """
x-airflow-common: &airflow-common
  environment: &airflow-common-env
    AIRFLOW__CORE__PARALLELISM: "16"
    AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK: "true"
    AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME: "0.1"
    AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC: ${HEARTBEAT:-5}
    AIRFLOW__SCHEDULER__PARSING_PROCESSES: 2
"""
    )
    # not another section's, not a ${VAR} one, not the harness's own (the health check's fixed port)
    assert topology_run.compose_settings(compose) == {
        IDLE_SLEEP: "0.1",
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "2",
    }


def test_run_labels():
    assert topology_run.run_labels(1) == ["first load"]
    assert topology_run.run_labels(2) == ["first load", "no change"]
    assert topology_run.run_labels(3) == ["first load", "1% changed", "no change"]


@pytest.mark.e2e
def test_small_topology_run(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "topology_run.sh"),
            "--products",
            "2000",
            "--runs",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "dag run wall time" in done.stdout and "budget use" in done.stdout
    result = json.loads(out.read_text())
    assert result["ok"] is True
    # by default the scheduler settings of docker-compose.yaml, reported with the figures
    assert result["config"]["compose_settings"]["scheduler.scheduler_idle_sleep_time"] == "0.1"
    assert result["config"]["airflow_config"] == []
    assert "scheduler.scheduler_idle_sleep_time=0.1 (docker-compose.yaml)" in done.stdout
    assert result["catalogue"]["products"] == 2000
    _, changed, unchanged = result["runs"]
    assert [r["label"] for r in result["runs"]] == ["first load", "1% changed", "no change"]
    # 1% of the warehouse rows, as the simulator counts them
    one_percent = round(result["catalogue"]["warehouse_rows"] * 0.01)
    assert [r["changed_rows"] for r in result["runs"]] == [None, one_percent, 0]
    assert result["runs"][0]["vacuum_analyze_before_s"] is None  # later runs start on a vacuumed database
    assert all(r["vacuum_analyze_before_s"] >= 0 for r in result["runs"][1:])
    assert "warehouse rows changed before it" in done.stdout
    for run in result["runs"]:
        assert run["state"] == "success", run["label"]
        check = run["data_check"]
        # exact against the catalogue as it is for the run: after the change, the changed one
        assert check["passed"] is True, (run["label"], check)
        assert check["ledger"] == check["expected"] == check["tables"] == result["catalogue"]
        assert check["tables_exact"] is True and check["ledger_status"] == "complete"
    # the change is written as history; the runs on an unchanged catalogue write none
    assert changed["data_check"]["history_opened"] > 0 and changed["data_check"]["history_closed"] > 0
    assert unchanged["data_check"]["history_opened"] == unchanged["data_check"]["history_closed"] == 0

    for run in result["runs"]:
        assert_figures(run)
    assert result["environment"]["commit"] and isinstance(result["environment"]["uncommitted"], list)
    assert not Path(result["work"]).exists()  # removed after runs that passed


def assert_figures(run: dict) -> None:
    """Every figure of a run is there (its values are not asserted as speeds)."""
    for field in ("wall_s", "queued_s", "start", "end"):
        assert run["dag_run"][field] is not None, field
    for field in ("tasks_span_s", "fetch_window_s", "after_fetch_s", "first_task_start", "last_task_end"):
        assert run[field] is not None, field
    # the DAG's tasks may change (validation moving into the fetches): these stay
    for task in ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "load", "report"):
        assert task in run["tasks"], sorted(run["tasks"])
    for name, task in run["tasks"].items():
        assert set(task) == TASK_FIELDS, name
        assert task["state"] == "success", name
        assert None not in (task["duration_s"], task["queued_delay_s"], task["after_upstream_s"]), name

    requests = run["requests"]
    assert set(requests) >= {
        "total",
        "responses_429",
        "peak_per_1s",
        "per_method",
        "span_s",
        "first_s",
        "last_s",
        "budget_use",
    }
    assert requests["first_s"] is not None and requests["last_s"] is not None
    assert requests["total"] == sum(requests["per_method"].values()) > 0
    assert requests["budget_use"] > 0
    assert set(run["targets"]) == {"run_s_le_24", "budget_use_ge_90pct"}
