"""A small production-topology run (2,000 products) keeps ``scripts/topology_run.sh`` working.

It starts the whole topology (PostgreSQL, the simulator, Airflow's four components), so it is an e2e
test; about a minute on 2 cores. Its times are not asserted, only that the run succeeded, the data
check passed and every figure is there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

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


def test_small_topology_run(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "topology_run.sh"),
            "--products",
            "2000",
            "--json",
            str(out),
            "--airflow-config",
            "scheduler.scheduler_idle_sleep_time=0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "dag run wall time" in done.stdout and "budget use" in done.stdout
    result = json.loads(out.read_text())
    assert result["ok"] is True
    # a changed Airflow setting is taken and reported with the figures
    assert result["config"]["airflow_config"] == ["scheduler.scheduler_idle_sleep_time=0.5"]
    assert "changed from their defaults: scheduler.scheduler_idle_sleep_time=0.5" in done.stdout
    assert result["catalogue"]["products"] == 2000
    (run,) = result["runs"]
    assert run["state"] == "success"
    check = run["data_check"]
    assert check["passed"] is True, check
    assert check["ledger"] == check["expected"] == check["tables"] == result["catalogue"]
    assert check["tables_exact"] is True and check["ledger_status"] == "complete"

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
    assert result["environment"]["commit"] and isinstance(result["environment"]["uncommitted"], list)
    assert requests["total"] == sum(requests["per_method"].values()) > 0
    assert requests["budget_use"] > 0
    assert set(run["targets"]) == {"run_s_le_24", "budget_use_ge_90pct"}
    assert not Path(result["work"]).exists()  # removed after a run that passed
