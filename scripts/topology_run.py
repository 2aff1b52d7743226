"""Production-topology run time: whole ``ozon_inventory_sync`` runs through the real scheduler.

    bash scripts/topology_run.sh --products 100000              # one run: the first load
    bash scripts/topology_run.sh --products 100000 --runs 2     # and a second trigger, no change
    bash scripts/topology_run.sh --products 100000 --runs 3     # first load, 1% changed, no change
    bash scripts/topology_run.sh --products 2000 --json out.json

What it starts, in a throwaway work folder (everything is stopped at the end, also on failure or
Ctrl-C; the folder, with every log, is kept on failure or with ``--keep``):

- **PostgreSQL 15** from the machine's binaries (``scripts/localpg.py``) with PostgreSQL's own
  defaults (fsync on, as a deployment runs it; the benchmark's throwaway server turns it off): the
  metadata database ``airflow_meta`` and the target database ``ozon_target`` (connection
  ``ozon_postgres``, which also holds the shared rate budget).
- **The Ozon simulator** in its own process (``tests/celery_proof/simhost.py``), run ahead of the
  Airflow processes (``--nice -10`` when allowed: it stands for Ozon, whose servers do not share our
  cores): one account of ``--products`` products, 30 Ozon warehouses, about ten per FBO SKU, seed 7
  (the catalogue ``scripts/benchmark.py`` and the e2e test build), a strict fixed one-second window
  of 50 requests per Client-Id and 20 ms latency per answer. Its ``/expected`` is the data check's
  reference; its request log gives the request figures.
- **Airflow 3** as ``tests/e2e/airflow_cluster.py`` deploys it: ``airflow db migrate``, then
  ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as four processes,
  LocalExecutor, the simple auth manager; driven through the REST API as an operator does.

The Airflow configuration is what a user deploys; nothing is tuned for speed beyond what
``docker-compose.yaml`` ships:

- ``[core] parallelism`` 8 (Airflow's default is 32; 8 is room for the tasks of an account and
  ``accounts`` at once, so no task ever waits for an executor slot; LocalExecutor starts its worker
  processes as tasks need them). ``--parallelism`` changes it.
- **The scheduler settings of ``docker-compose.yaml``** (the ``AIRFLOW__SCHEDULER__*`` entries of
  its ``x-airflow-common`` environment with a literal value, e.g. ``scheduler_idle_sleep_time`` 0.1);
  every other setting is Airflow's default (scheduler heartbeat 5 s, the dag-processor's intervals):
  not the e2e test's ``scheduler_heartbeat_sec = 1`` nor ``use_job_schedule = False``.
  ``--airflow-defaults`` leaves out the compose file's settings (Airflow's own defaults);
  ``--airflow-config SECTION.KEY=VALUE`` (repeatable) overrides or adds a setting. Both are reported
  with the figures. The harness's own settings: the api-server with one worker process (two cores),
  the scheduler's health-check server off (its fixed port, also when the compose file turns it on),
  log-server ports picked free.
- Pool ``ozon_api`` with 3 slots (``--pool-slots``): room for one account's three fetches at once,
  so they share the Client-Id's budget. (The README's and docker-compose's default is 2 slots,
  sized for several accounts; with 2, one account's third fetch waits for a slot.)
- ``OZON_INVENTORY_SCHEDULE=manual``: a DAG setting, so unpausing starts no scheduled run beside the
  triggered ones. Retries are the DAG's production defaults (3, 60 s); staging is the default folder
  in ``AIRFLOW_HOME``; the connection ``ozon_default`` keeps the client's production defaults
  (``rate_limit`` 50, ``headroom`` 0.9, 4 workers).

Each run is a trigger with no logical date (as the UI's Trigger button does). With ``--runs 2`` the
second run is on the same catalogue (the no-change case); with ``--runs 3`` or more the simulator
first changes 1 % of the warehouse rows (``POST /__sim/catalogue``; ``changed_rows`` in the run's
figures) for run 2 ("1% changed"), and later runs are on that catalogue ("no change"). Before each
run after the first, the target database gets ``VACUUM (ANALYZE)`` (``vacuum_analyze_before_s``):
scheduled runs are an hour apart, and autovacuum has long processed a first load's million history
rows by the next one, instead of running during it. Per run it prints, and with ``--json`` emits:

- ``dag_run``: wall time ``start_date → end_date`` from the REST API (the figure to quote), and
  ``queued_s`` (queued → started);
- ``tasks_span_s``: first task start → last task end;
- ``tasks``: per task (``accounts``, ``fetch_stocks``, ``fetch_warehouse_stocks``,
  ``fetch_warehouses``, ``validate``, ``merge``, ``load``, ``report``, and any other task the run
  has) its start and end (ISO, and ``*_s``: seconds after the run's start), ``duration_s``,
  ``queued_delay_s`` (``queued_when → start_date``), ``after_upstream_s`` (the last upstream task's
  end, or the run's start, → its start: scheduling, queueing and process start together) and
  ``work_s`` (the stage's own time as the ledger ``ozon_sync_run.durations`` records it);
- ``fetch_window_s`` (first fetch start → last fetch end) and ``after_fetch_s`` (the last page
  landed, i.e. the last fetch's end → ``load``'s end);
- ``requests``: total, 429s, ``peak_per_1s`` (the most that arrived in any sliding second, as the
  simulator's ``citizenship`` counts it), per method, ``span_s`` (first → last arrival) and
  ``first_s``/``last_s`` (after the run's start) and ``budget_use`` = requests / (fetch window × 50);
- ``data_check``: the ledger row's counts (products, stock rows, warehouse rows) and the target
  tables' (counts, sums per stock type and Ozon warehouse, a digest of every row) against the
  simulator's catalogue as it is for that run (read again after a change); ``passed`` when all are equal;
- ``targets``: run ≤ 24 s, budget use ≥ 90 % (reported, not enforced).

``environment`` names the commit and any uncommitted change under ``dags``, ``plugins`` and
``include`` (what the tasks ran). Exit status 0 when every run succeeded and passed its data check, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402 - after the path is set
import requests  # noqa: E402
import yaml  # noqa: E402

from scripts.localpg import LocalPostgres, free_port  # noqa: E402
from tests.celery_proof.simhost import loaded  # noqa: E402
from tests.celery_proof.topology import start_simhost  # noqa: E402
from tests.e2e.airflow_cluster import (  # noqa: E402
    AirflowCluster,
    create_database,
    new_metadata_database,
    parse_time,
)

DAG_ID = "ozon_inventory_sync"
ACCOUNT = "ozon_default"  # the DAG's default account: no conf needed
CLIENT_ID = "100200"
RATE_LIMIT = 50  # Ozon's requests per second per Client-Id; the simulator's strict fixed window
TARGET_RUN_S = 24.0
TARGET_BUDGET_USE = 0.90
#: The account's tasks in the order they are reported (task ids without the ``account.`` group).
TASK_ORDER = (
    "accounts",
    "fetch_stocks",
    "fetch_warehouse_stocks",
    "fetch_warehouses",
    "validate",
    "merge",
    "load",
    "report",
)
COUNTS = ("products", "stock_rows", "warehouse_rows")
COMPOSE_FILE = ROOT / "docker-compose.yaml"
#: The harness's own: the scheduler's health-check server listens on a fixed port (8974), so it stays off.
HARNESS_OWNED = frozenset({"AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"})
CHANGE_FRACTION = 0.01  # of the warehouse rows, before the "1% changed" run


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def _short(task_id: str) -> str:
    return task_id.rsplit(".", 1)[-1]


# -- the stack -------------------------------------------------------------------------------------


class Stack:
    """PostgreSQL, the simulator and Airflow, each stopped by ``stack`` (an ``ExitStack``)."""

    def __init__(self, args: argparse.Namespace, work: Path, stack: ExitStack, airflow_env: dict[str, str]):
        self.args = args
        self.work = work
        self.setup: dict[str, Any] = {}
        started = time.monotonic()

        self.pg = LocalPostgres(work / "pg", fast=False)  # PostgreSQL's defaults: fsync on
        stack.callback(self.pg.stop)
        self.pg.start()
        create_database(self.pg.dsn, "ozon_target")
        self.target_dsn = self.pg.conn_uri("ozon_target")
        metadata_url = new_metadata_database(self.pg, "airflow_meta")
        self.setup["postgres_s"] = round(time.monotonic() - started, 1)
        log(f"PostgreSQL on 127.0.0.1:{self.pg.port} ({self.pg.bindir}), fsync on")

        mark = time.monotonic()
        self.api_key = secrets.token_hex(16)  # made up for the run
        port, control_port = free_port(), free_port()
        spec = {
            "client_id": CLIENT_ID,
            "api_key": self.api_key,
            "products": args.products,
            "warehouses": 30,
            "rows_per_sku": 10,
            "seed": 7,
        }
        self.sim = start_simhost(work, "127.0.0.1", port, control_port, [spec], nice=-10)
        stack.callback(self.sim.stop)
        self.sim_url = f"http://127.0.0.1:{port}"
        self.control_url = f"http://127.0.0.1:{control_port}"
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy between us and 127.0.0.1
        stack.callback(self.http.close)
        self.expected = self.control("GET", "/expected", params={"client_id": CLIENT_ID})
        self.setup["simulator_s"] = round(time.monotonic() - mark, 1)
        log(f"Ozon simulator on {self.sim_url}: {self.sim.tail(1)}")

        mark = time.monotonic()
        connection = {"conn_type": "ozon", "host": self.sim_url, "login": CLIENT_ID, "password": self.api_key}
        self.cluster = AirflowCluster(
            work / "airflow-home",
            metadata_url,
            dags_folder=ROOT / "dags",
            plugins_folder=ROOT / "plugins",
            log_dir=work / "logs",
            parallelism=args.parallelism,
            env={
                # this tree's package first, whatever copy of it is installed in the environment
                "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / "plugins", ROOT / "dags", ROOT)),
                f"AIRFLOW_CONN_{ACCOUNT.upper()}": json.dumps(connection),
                "AIRFLOW_CONN_OZON_POSTGRES": self.target_dsn,
                "OZON_INVENTORY_SCHEDULE": "manual",
                **airflow_env,
            },
        )
        stack.callback(self.cluster.stop)
        self.cluster.start()
        self.setup["airflow_up_s"] = round(self.cluster.startup_s, 1)
        mark = time.monotonic()
        self.cluster.wait_dag(DAG_ID)
        self.setup["dag_parsed_s"] = round(time.monotonic() - mark, 1)
        self.cluster.set_pool("ozon_api", args.pool_slots, "Ozon fetches")
        self.cluster.unpause(DAG_ID)
        self.setup["total_s"] = round(time.monotonic() - started, 1)
        log(
            f"Airflow up in {self.setup['airflow_up_s']} s at {self.cluster.url} (LocalExecutor, "
            f"parallelism {args.parallelism}, pool ozon_api {args.pool_slots} slots); logs in {work / 'logs'}"
        )
        self.upstream = self._upstream()

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, self.control_url + path, timeout=300, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def sim_get(self, path: str, **kwargs: Any) -> Any:
        answer = self.http.get(self.sim_url + path, timeout=60, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def change_catalogue(self, fraction: float) -> int:
        """Change ``fraction`` of the warehouse rows; the data check then compares with the new catalogue."""
        payload = {"action": "change", "fraction": fraction, "client_id": CLIENT_ID}
        answer = self.http.post(self.sim_url + "/__sim/catalogue", json=payload, timeout=300)
        answer.raise_for_status()
        self.expected = self.control("GET", "/expected", params={"client_id": CLIENT_ID})
        return int(answer.json()["changed_rows"])

    def _upstream(self) -> dict[str, list[str]]:
        """Each task's upstream tasks (short ids), from the DAG as the scheduler has it."""
        tasks = self.cluster.api("GET", f"/api/v2/dags/{quote(DAG_ID)}/tasks")["tasks"]
        upstream: dict[str, list[str]] = {_short(t["task_id"]): [] for t in tasks}
        for t in tasks:
            for down in t.get("downstream_task_ids") or ():
                upstream.setdefault(_short(down), []).append(_short(t["task_id"]))
        return upstream

    # -- one run -----------------------------------------------------------------------------------

    def settle(self) -> float:
        """``VACUUM (ANALYZE)`` of the target database before a later run: what autovacuum does in
        the hour between scheduled runs (after a first load of a million history rows it otherwise
        runs during the next run, on the same 2 CPUs). Returns the seconds it took."""
        started = time.monotonic()
        with psycopg.connect(self.target_dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        return round(time.monotonic() - started, 2)

    def run(self, number: int, label: str) -> dict[str, Any]:
        changed_rows = None if number == 1 else 0
        settled_s = None if number == 1 else self.settle()
        if label == "1% changed":
            changed_rows = self.change_catalogue(CHANGE_FRACTION)
            log(f"run {number}: the simulator changed {changed_rows} warehouse rows")
        self.control("POST", "/reset")  # this run's requests only
        run_id = self.cluster.trigger(DAG_ID, None)
        log(f"run {number} ({label}): triggered {run_id}")
        state = self.cluster.wait_run(DAG_ID, run_id, timeout=self.args.run_timeout)
        dag_run = self.cluster.dag_run(DAG_ID, run_id)
        tis = self.cluster.task_instances(DAG_ID, run_id)
        log(f"run {number}: {state}; reading figures and checking the data")
        ledger = self.ledger(run_id)
        figures: dict[str, Any] = {
            "number": number,
            "label": label,
            "run_id": run_id,
            "state": state,
            "changed_rows": changed_rows,
            "vacuum_analyze_before_s": settled_s,
        }
        figures |= timings(dag_run, tis, self.upstream, (ledger or {}).get("durations") or {})
        figures["requests"] = self.request_figures(figures["fetch_window_s"], dag_run.get("start_date"))
        figures["data_check"] = self.data_check(ledger)
        wall, use = figures["dag_run"]["wall_s"], figures["requests"]["budget_use"]
        figures["targets"] = {
            "run_s_le_24": None if wall is None else wall <= TARGET_RUN_S,
            "budget_use_ge_90pct": None if use is None else use >= TARGET_BUDGET_USE,
        }
        if state != "success":
            figures["failed_task_logs"] = self.failed_logs(run_id, tis)
        return figures

    def request_figures(self, fetch_window_s: float | None, run_start: str | None) -> dict[str, Any]:
        seen = self.sim_get("/__sim/citizenship", params={"client_id": CLIENT_ID})
        arrivals = [e["time"] for e in self.sim_get("/__sim/requests", params={"client_id": CLIENT_ID})]
        use = seen["requests"] / (fetch_window_s * RATE_LIMIT) if fetch_window_s else None
        start = parse_time(run_start)
        offset = start.timestamp() if start else None
        return {
            "total": seen["requests"],
            "responses_429": seen["responses_429"],
            "peak_per_1s": seen["peak_requests_per_1s"],
            "per_method": seen["per_method"],
            "span_s": round(max(arrivals) - min(arrivals), 3) if arrivals else None,
            # first and last arrival, seconds after the run's start (same clock: one machine)
            "first_s": round(min(arrivals) - offset, 3) if arrivals and offset else None,
            "last_s": round(max(arrivals) - offset, 3) if arrivals and offset else None,
            "budget_per_s": RATE_LIMIT,
            "budget_use": None if use is None else round(use, 4),
        }

    def ledger(self, run_id: str) -> dict[str, Any] | None:
        columns = (
            "status",
            "degraded",
            "missing_sources",
            "products",
            "stock_rows",
            "warehouse_rows",
            "warehouses",
            "rejects",
            "mismatches",
            "history_opened",
            "history_closed",
            "durations",
        )
        try:
            with psycopg.connect(self.target_dsn) as conn:
                row = conn.execute(
                    f"SELECT {', '.join(columns)} FROM ozon_sync_run WHERE account = %s AND run_id = %s",
                    (ACCOUNT, run_id),
                ).fetchone()
        except psycopg.errors.UndefinedTable:  # the run failed before the schema was made
            return None
        return None if row is None else dict(zip(columns, row, strict=True))

    def data_check(self, ledger: dict[str, Any] | None) -> dict[str, Any]:
        want = self.expected
        try:
            have = loaded(self.target_dsn, ACCOUNT)
        except psycopg.errors.UndefinedTable:
            have = {}
        differ = sorted(k for k in want if want[k] != have.get(k))
        ledger_counts = {k: ledger[k] for k in COUNTS} if ledger else None
        expected = {k: want[k] for k in COUNTS}
        return {
            "passed": ledger_counts == expected and not differ,
            "expected": expected,
            "ledger": ledger_counts,
            "ledger_status": None if ledger is None else ledger["status"],
            "ledger_degraded": None if ledger is None else ledger["degraded"],
            "history_opened": None if ledger is None else ledger["history_opened"],
            "history_closed": None if ledger is None else ledger["history_closed"],
            "tables": {k: have.get(k) for k in COUNTS},
            "tables_exact": not differ,  # counts, sums per stock type and warehouse, every row's digest
            "differ": differ,
        }

    def failed_logs(self, run_id: str, tis: list[dict[str, Any]]) -> dict[str, str]:
        """The end of each failed task's log (a half-finished change shows here)."""
        logs = {}
        for ti in tis:
            if ti["state"] != "failed":
                continue
            with contextlib.suppress(Exception):
                text = self.cluster.task_log(
                    DAG_ID, run_id, ti["task_id"], max(1, ti["try_number"]), ti["map_index"]
                )
                logs[_short(ti["task_id"])] = text[-3000:]
        return logs


def timings(
    dag_run: dict[str, Any],
    tis: list[dict[str, Any]],
    upstream: dict[str, list[str]],
    work: dict[str, float],
) -> dict[str, Any]:
    """The run's and its tasks' times from the REST API (seconds; ``*_s`` offsets from the run's start)."""
    run_start, run_end = parse_time(dag_run.get("start_date")), parse_time(dag_run.get("end_date"))
    queued = parse_time(dag_run.get("queued_at"))
    by_task = {_short(t["task_id"]): t for t in tis}
    order = [t for t in TASK_ORDER if t in by_task]
    order += sorted((t for t in by_task if t not in TASK_ORDER), key=lambda t: by_task[t]["start_date"] or "")
    starts = {t: parse_time(by_task[t]["start_date"]) for t in order}
    ends = {t: parse_time(by_task[t]["end_date"]) for t in order}
    tasks: dict[str, Any] = {}
    for name in order:
        ti, start, end = by_task[name], starts[name], ends[name]
        before = [ends[u] for u in upstream.get(name, ()) if ends.get(u) is not None]
        ready = max(before) if before else run_start
        tasks[name] = {
            "state": ti["state"],
            "try_number": ti["try_number"],
            "start": ti["start_date"],
            "end": ti["end_date"],
            "start_s": _seconds(run_start, start),
            "end_s": _seconds(run_start, end),
            "duration_s": _seconds(start, end),
            "queued_delay_s": _seconds(parse_time(ti.get("queued_when")), start),
            "after_upstream_s": _seconds(ready, start),
            "work_s": work.get(name),
        }
    known_starts = [s for s in starts.values() if s is not None]
    known_ends = [e for e in ends.values() if e is not None]
    fetches = [t for t in order if t.startswith("fetch_")]
    fetch_starts = [starts[t] for t in fetches if starts[t] is not None]
    fetch_ends = [ends[t] for t in fetches if ends[t] is not None]
    fetch_start = min(fetch_starts) if fetch_starts else None
    fetch_end = max(fetch_ends) if fetch_ends and len(fetch_ends) == len(fetches) else None
    return {
        "dag_run": {
            "start": dag_run.get("start_date"),
            "end": dag_run.get("end_date"),
            "wall_s": _seconds(run_start, run_end),
            "queued_s": _seconds(queued, run_start),
        },
        "first_task_start": min(known_starts).isoformat() if known_starts else None,
        "last_task_end": max(known_ends).isoformat() if known_ends else None,
        "tasks_span_s": _seconds(min(known_starts), max(known_ends)) if known_starts and known_ends else None,
        "tasks": tasks,
        "fetch_window_s": _seconds(fetch_start, fetch_end),
        "fetch_window_start_s": _seconds(run_start, fetch_start),
        "fetch_window_end_s": _seconds(run_start, fetch_end),
        "after_fetch_s": _seconds(fetch_end, ends.get("load")),
    }


# -- the report ------------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "—" if value is None else format(value, fmt)


def report_header(result: dict[str, Any]) -> list[str]:
    env, cat, setup = result["environment"], result["catalogue"], result.get("setup") or {}
    lines = [
        f"# ozon-inventory production-topology run ({env['date']}, {env['cpus']} CPUs, Airflow "
        f"{env['airflow']}, Python {env['python']}, PostgreSQL from {env['postgres']}, fsync on)",
        f"code: commit {env['commit']}"
        + (
            f" with uncommitted changes in {', '.join(line[3:] for line in env['uncommitted'])}"
            if env["uncommitted"]
            else " (dags, plugins, include as committed)"
        ),
        f"topology: PostgreSQL metadata DB; api-server, scheduler, dag-processor, triggerer as separate "
        f"processes; LocalExecutor, parallelism {result['config']['parallelism']}; pool ozon_api "
        f"{result['config']['pool_slots']} slots; Airflow settings changed from their defaults: "
        f"{', '.join(_changed_settings(result['config'])) or 'none'}",
        f"simulator (own process, nice -10): {cat['products']:,} products, {cat['stock_rows']:,} stock rows, "
        f"{cat['warehouse_rows']:,} warehouse rows; strict fixed 1-s window of {RATE_LIMIT} requests per "
        f"Client-Id, 20 ms latency",
    ]
    if setup:
        lines.append(
            f"set-up {_f(setup.get('total_s'), '.1f')} s: PostgreSQL {_f(setup.get('postgres_s'), '.1f')} s, "
            f"simulator {_f(setup.get('simulator_s'), '.1f')} s, Airflow up {_f(setup.get('airflow_up_s'), '.1f')} s, "
            f"DAG parsed {_f(setup.get('dag_parsed_s'), '.1f')} s later"
        )
    return lines


def report_run(run: dict[str, Any], runs: int) -> list[str]:
    d, r, c = run["dag_run"], run["requests"], run["data_check"]
    lines = [
        "",
        f"## run {run['number']} of {runs}: {run['label']} — {run['state']} ({run['run_id']})"
        + (f"; {run['changed_rows']:,} warehouse rows changed before it" if run["changed_rows"] else ""),
        f"dag run wall time (start_date → end_date): {_f(d['wall_s'])} s   (target ≤ {TARGET_RUN_S:g} s); "
        f"queued → started {_f(d['queued_s'])} s",
        f"first task start → last task end: {_f(run['tasks_span_s'])} s",
        f"{'task':<24}{'start s':>9}{'end s':>9}{'duration s':>12}{'queued→start s':>16}"
        f"{'after upstream s':>18}{'in-task work s':>16}  state",
    ]
    for name, t in run["tasks"].items():
        lines.append(
            f"{name:<24}{_f(t['start_s']):>9}{_f(t['end_s']):>9}{_f(t['duration_s']):>12}"
            f"{_f(t['queued_delay_s']):>16}{_f(t['after_upstream_s']):>18}{_f(t['work_s']):>16}  "
            f"{t['state']}" + (f" (try {t['try_number']})" if t["try_number"] > 1 else "")
        )
    lines.append(
        f"fetch window (first fetch start → last fetch end): {_f(run['fetch_window_s'])} s "
        f"({_f(run['fetch_window_start_s'])} → {_f(run['fetch_window_end_s'])}); last page landed → load end "
        f"(after_fetch_s): {_f(run['after_fetch_s'])} s"
    )
    use = r["budget_use"]
    lines.append(
        f"requests {r['total']} ({', '.join(f'{m} {n}' for m, n in sorted(r['per_method'].items()))}), "
        f"{r['responses_429']} × 429, peak {r['peak_per_1s']} in any sliding 1 s (limit {RATE_LIMIT}); "
        f"first → last request {_f(r['span_s'])} s ({_f(r['first_s'])} → {_f(r['last_s'])})"
    )
    lines.append(
        f"budget use = {r['total']} / ({_f(run['fetch_window_s'])} s × {RATE_LIMIT}) = "
        f"{'—' if use is None else f'{use:.1%}'}   (target ≥ {TARGET_BUDGET_USE:.0%})"
    )
    counts = ", ".join(f"{c['expected'][k]:,} {k.replace('_', ' ')}" for k in COUNTS)
    lines.append(
        f"data check: {'PASS' if c['passed'] else 'FAIL'} — catalogue {counts}; ledger "
        f"{c['ledger_status']}{' degraded' if c['ledger_degraded'] else ''} {c['ledger']}; tables {c['tables']}, "
        f"exact (sums, every row): {c['tables_exact']}"
        + (f", differ: {', '.join(c['differ'])}" if c["differ"] else "")
        + f"; history opened/closed {c['history_opened']}/{c['history_closed']}"
    )
    t = run["targets"]
    lines.append(f"targets: run ≤ 24 s: {t['run_s_le_24']}; budget use ≥ 90 %: {t['budget_use_ge_90pct']}")
    for task, text in (run.get("failed_task_logs") or {}).items():
        lines.append(f"----- {task} failed; its log's end -----\n{text}")
    return lines


# -- main ------------------------------------------------------------------------------------------


def _environment(pg: LocalPostgres | None) -> dict[str, Any]:
    import airflow

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "date": time.strftime("%Y-%m-%d"),
        "commit": git("rev-parse", "--short", "HEAD") or None,
        # what runs in the tasks but is not in that commit
        "uncommitted": git("status", "--porcelain", "--", "dags", "plugins", "include").splitlines(),
        "cpus": os.cpu_count(),
        "airflow": airflow.__version__,
        "python": platform.python_version(),
        "postgres": str(pg.bindir) if pg else None,
    }


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # unwinds through the teardown


def _changed_settings(config: dict[str, Any]) -> list[str]:
    compose = [f"{name}={value} (docker-compose.yaml)" for name, value in config["compose_settings"].items()]
    return compose + [f"{setting} (--airflow-config)" for setting in config["airflow_config"]]


def _setting_name(env_name: str) -> str:
    """``AIRFLOW__SECTION__KEY`` → ``section.key``."""
    section, _, key = env_name.removeprefix("AIRFLOW__").partition("__")
    return f"{section}.{key}".lower()


def compose_settings(path: Path = COMPOSE_FILE) -> dict[str, str]:
    """The ``AIRFLOW__SCHEDULER__*`` settings of the compose file's ``x-airflow-common`` environment.

    Literal values only (a ``${VAR:-default}`` one is left out); the harness's own are left out too.
    """
    env = yaml.safe_load(path.read_text())["x-airflow-common"]["environment"]
    return {
        name: str(value)
        for name, value in env.items()
        if name.startswith("AIRFLOW__SCHEDULER__") and name not in HARNESS_OWNED and "${" not in str(value)
    }


def run_labels(runs: int) -> list[str]:
    """2 runs: first load, no change; 3 or more: first load, 1% changed, then no change."""
    changed = ["1% changed"] if runs >= 3 else []
    return (["first load", *changed] + ["no change"] * runs)[:runs]


def _airflow_config(settings: list[str]) -> dict[str, str]:
    """``SECTION.KEY=VALUE`` → ``AIRFLOW__SECTION__KEY``: every Airflow process gets it."""
    env = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        section, dot, key = name.partition(".")
        if not (sep and dot and section and key):
            raise SystemExit(f"--airflow-config {setting!r}: expected SECTION.KEY=VALUE")
        env[f"AIRFLOW__{section.upper()}__{key.upper()}"] = value
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/topology_run.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="2: a second trigger on the same data (no change); 3: first load, 1%% changed, no change",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        help="print all figures as JSON on stdout (the report goes to stderr), or write them to this file",
    )
    parser.add_argument("--parallelism", type=int, default=8, help="[core] parallelism (LocalExecutor)")
    parser.add_argument("--pool-slots", type=int, default=3, help="slots of the ozon_api pool")
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds to wait for a run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    parser.add_argument(
        "--airflow-config",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="an Airflow setting changed from its default (repeatable), e.g. scheduler.scheduler_idle_sleep_time=0.2; "
        "overrides docker-compose.yaml's; reported with the figures",
    )
    parser.add_argument(
        "--airflow-defaults",
        action="store_true",
        help="leave out docker-compose.yaml's scheduler settings (Airflow's own defaults)",
    )
    return parser.parse_args(argv)


def airflow_settings(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """The Airflow processes' settings (``AIRFLOW__…``): (from docker-compose.yaml, from ``--airflow-config``).

    ``--airflow-config`` overrides the compose file's; ``--airflow-defaults`` leaves those out.
    """
    given = _airflow_config(args.airflow_config)
    compose = {} if args.airflow_defaults else compose_settings()
    return {name: value for name, value in compose.items() if name not in given}, given


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compose, given = airflow_settings(args)
    signal.signal(signal.SIGTERM, _interrupted)

    out = sys.stderr if args.json == "-" else sys.stdout
    work = Path(tempfile.mkdtemp(prefix="ozon-topology-run-"))
    os.chmod(work, 0o755)  # as root, PostgreSQL runs as the postgres user and must reach its folder
    (work / "logs").mkdir()
    result: dict[str, Any] = {
        "config": {
            "products": args.products,
            "runs": args.runs,
            "executor": "LocalExecutor",
            "parallelism": args.parallelism,
            "pool_slots": args.pool_slots,
            "rate_limit": RATE_LIMIT,
            "rate_window": "fixed",
            "latency_s": 0.02,
            "postgres_fsync": True,
            "airflow_config": args.airflow_config,
            # applied from docker-compose.yaml (less what --airflow-config overrides)
            "compose_settings": {_setting_name(name): value for name, value in compose.items()},
        },
        "runs": [],
        "work": str(work),
    }
    ok, error, topology = False, None, None
    with ExitStack() as stack:
        try:
            topology = Stack(args, work, stack, compose | given)
            result["environment"] = _environment(topology.pg)
            result["setup"] = topology.setup
            result["catalogue"] = {k: topology.expected[k] for k in COUNTS}
            print("\n".join(report_header(result)), file=out, flush=True)
            for number, label in enumerate(run_labels(args.runs), start=1):
                run = topology.run(number, label)
                result["runs"].append(run)
                print("\n".join(report_run(run, args.runs)), file=out, flush=True)
            ok = all(r["state"] == "success" and r["data_check"]["passed"] for r in result["runs"])
        except BaseException as exc:  # noqa: BLE001 - reported below, then everything is torn down
            error = exc
            traceback.print_exc()
            if topology is not None:
                with contextlib.suppress(Exception):
                    print(topology.cluster.log_tails(40), file=sys.stderr)
        finally:
            log("tearing down (Airflow, simulator, PostgreSQL)")
    result["ok"] = ok
    if error is not None:
        result["error"] = f"{type(error).__name__}: {error}"[:4000]
    if args.json == "-":
        print(json.dumps(result, indent=1, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work folder kept: {work} (logs in {work / 'logs'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
