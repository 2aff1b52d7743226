"""``ozon_inventory_sync`` in the topology users deploy, driven as an operator does.

PostgreSQL metadata database, LocalExecutor, and ``api-server``, ``scheduler``, ``dag-processor``,
``triggerer`` as four processes (``tests/e2e/airflow_cluster.py``), with production retries
(3 tries more, a short delay). Each seller account is its own Ozon simulator:

- ``ozon_default``: the old system's dataset, driven as an operator does: trigger a run; see a
  degraded run when Ozon's analytics fail, heal Ozon, clear the failed task with its downstream
  tasks and see the run finish whole; backfill dates with and without archived answers.
- ``ozon_big``: a catalogue big enough that one account's three fetch tasks overlap, against a
  strict fixed one-second window of 50 requests: the three processes together must keep to it.
- ``ozon_dead``: ``/v2/analytics/stock_on_warehouses`` answers 503 to everything: the run must
  stop knocking soon and, pinned to that method, show failed soon; under ``auto`` it completes
  through the successor.

Measured figures are printed and written to ``e2e-figures.json`` in pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ozon_simulator import Fault, RunningSimulator, SimulatorConfig, default_simulator, serve
from tests import clock
from tests.e2e.airflow_cluster import AirflowCluster, create_database, new_metadata_database, parse_time

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The runs' logical dates, from the tests' calendar: the first run, the degraded run, and two backfill
# dates with no archive; then the big account's, the dead method's and the auto method's runs.
FIRST, SECOND, THIRD, FOURTH = (clock.day(n) for n in (10, 11, 12, 13))
BIG_RUN, DEAD_RUN, AUTO_RUN, SHRUNK_RUN = (clock.day(n) for n in (20, 21, 22, 23))


def logical(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def date(moment) -> str:
    return moment.strftime("%Y-%m-%d")


DAG_ID = "ozon_inventory_sync"
V2_ANALYTICS = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS = "/v1/analytics/stocks"
V1_FBO = "/v1/product/info/stocks-by-warehouse/fbo"
FETCHES = ("account.fetch_stocks", "account.fetch_warehouse_stocks", "account.fetch_warehouses")

#: Seller accounts: connection id -> (Client-Id, Api-Key). Simulator keys, not secrets.
OPS, BIG, DEAD = "ozon_default", "ozon_big", "ozon_dead"
ACCOUNTS = {OPS: ("100200", "e2e-key"), BIG: ("300400", "e2e-big-key"), DEAD: ("500600", "e2e-dead-key")}

RATE_LIMIT = 50  # Ozon's requests per second per Client-Id
DEAD_METHOD_MAX_REQUESTS = 20
FAILED_WITHIN_S = 180


@dataclass
class Stack:
    cluster: AirflowCluster
    sims: dict[str, RunningSimulator]
    dsn: str  # the target database (connection ozon_postgres)
    figures_path: Path
    done: dict[str, str] = field(default_factory=dict)  # operator-flow step -> its run id

    def record(self, scenario: str, figures: dict[str, Any]) -> None:
        """Print a scenario's figures and keep them in the figures file."""
        kept = json.loads(self.figures_path.read_text()) if self.figures_path.exists() else {}
        kept[scenario] = figures
        self.figures_path.write_text(json.dumps(kept, indent=2, default=str))
        print(f"\nFIGURES {scenario}: {json.dumps(figures, default=str)}\n(all figures: {self.figures_path})")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn)


def _connection(sim: RunningSimulator, account: str, **extra: Any) -> str:
    client_id, api_key = ACCOUNTS[account]
    return json.dumps(
        {"conn_type": "ozon", "host": sim.url, "login": client_id, "password": api_key, "extra": extra}
    )


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory):
    """Three simulators, a target database and the Airflow deployment; all stopped however tests end."""
    sims = {
        OPS: default_simulator(
            client_id=ACCOUNTS[OPS][0], api_key=ACCOUNTS[OPS][1], config=SimulatorConfig()
        ),
        # as scripts/benchmark.py builds it: about ten Ozon warehouses per FBO SKU
        BIG: default_simulator(
            products=20_000,
            warehouses=30,
            seed=7,
            rows_per_sku=10,
            client_id=ACCOUNTS[BIG][0],
            api_key=ACCOUNTS[BIG][1],
            config=SimulatorConfig(rate_limit=RATE_LIMIT, latency=0.02, rate_window="fixed"),
        ),
        DEAD: default_simulator(
            client_id=ACCOUNTS[DEAD][0], api_key=ACCOUNTS[DEAD][1], config=SimulatorConfig()
        ),
    }
    running: dict[str, RunningSimulator] = {}
    cluster = None
    try:
        for name, sim in sims.items():
            running[name] = serve(sim)
        tag = f"{int(time.time()) % 100000}"
        create_database(pg_server.dsn, f"e2e_target_{tag}")
        dsn = f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/e2e_target_{tag}"
        home = tmp_path_factory.mktemp("airflow-home")
        cluster = AirflowCluster(
            home,
            new_metadata_database(pg_server, f"e2e_airflow_{tag}"),
            dags_folder=ROOT / "dags",
            plugins_folder=ROOT / "plugins",
            log_dir=tmp_path_factory.mktemp("airflow-logs"),
            env={
                # this tree's package first, whatever copy of it is installed in the environment
                "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / "plugins", ROOT / "dags", ROOT)),
                # The operator flow's account: production retries; both analytics methods fail, so the
                # breaker declares both down for the run. Its cooldown is short here (60 s by
                # default) so the clear right after healing is the half-open probe that closes it.
                "AIRFLOW_CONN_OZON_DEFAULT": _connection(running[OPS], OPS, backoff=0.05, breaker_cooldown=2),
                # the citizenship accounts keep the client's production defaults
                "AIRFLOW_CONN_OZON_BIG": _connection(running[BIG], BIG),
                "AIRFLOW_CONN_OZON_DEAD": _connection(running[DEAD], DEAD),
                "AIRFLOW_CONN_OZON_POSTGRES": dsn,
                "AIRFLOW_VAR_OZON_INVENTORY_STAGING": str(home / "staging"),
                "OZON_INVENTORY_SCHEDULE": "@daily",
                "OZON_INVENTORY_RETRIES": "3",
                "OZON_INVENTORY_RETRY_DELAY": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # No scheduled run of its own (unpausing would start one for the latest tick, for
                # ozon_default, in the middle of the scenarios); triggered and backfill runs still run.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            },
        )
        cluster.start()
        cluster.wait_dag(DAG_ID)
        cluster.set_pool("ozon_api", 2, "Ozon fetches")
        cluster.unpause(DAG_ID)
        print(f"\nAirflow up in {cluster.startup_s:.1f} s at {cluster.url}; logs in {cluster.log_dir}")
        yield Stack(cluster, running, dsn, tmp_path_factory.getbasetemp() / "e2e-figures.json")
    finally:
        if cluster is not None:
            cluster.stop()
        for sim in running.values():
            sim.stop()


# -- the operator's flow on the old system's dataset ---------------------------------------------


def _first_run(stack: Stack) -> str:
    """A triggered run loads the old system's dataset."""
    if "first" in stack.done:
        return stack.done["first"]
    cluster = stack.cluster
    started = time.monotonic()
    first = cluster.trigger(DAG_ID, logical(FIRST))
    assert cluster.wait_run(DAG_ID, first) == "success", cluster.task_states(DAG_ID, first)
    stack.record("triggered_run", {"seconds_to_success": round(time.monotonic() - started, 1)})
    with stack.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM inventory_data WHERE account = %s AND source = 'Ozon_Analytics'", (OPS,)
        ).fetchone() == (511,)
        assert conn.execute("SELECT count(*) FROM ozon_product WHERE account = %s", (OPS,)).fetchone() == (
            175,
        )
    stack.done["first"] = first
    return first


def _degraded_then_cleared(stack: Stack) -> str:
    """Analytics fail: a degraded run; Ozon heals, the operator clears with downstream: whole."""
    if "second" in stack.done:
        return stack.done["second"]
    _first_run(stack)
    cluster, sim = stack.cluster, stack.sims[OPS].sim
    sim.accounts[ACCOUNTS[OPS][0]].catalogue.change_stock(0.05, seed=4)
    # Every warehouse-level method fails, so the warehouse stock source fails whichever one auto tries.
    for method in (V2_ANALYTICS, V1_ANALYTICS, V1_FBO):
        sim.add_fault(Fault(method, "status", status=503, times=-1))
    started = time.monotonic()
    second = cluster.trigger(DAG_ID, logical(SECOND))
    assert cluster.wait_run(DAG_ID, second) == "failed", cluster.task_states(DAG_ID, second)
    to_failed = time.monotonic() - started
    tries = {t["task_id"]: t["try_number"] for t in cluster.task_instances(DAG_ID, second)}
    states = cluster.task_states(DAG_ID, second)
    assert states[("account.fetch_warehouse_stocks", 0)] == "failed", states
    assert states[("account.load", 0)] == "success" and states[("account.report", 0)] == "failed", states
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT status, missing_sources FROM ozon_sync_run WHERE run_id = %s", (second,)
        ).fetchone()
        assert row == ("degraded", ["warehouse_stocks"])

    sim.clear_faults()
    started = time.monotonic()
    cluster.clear(
        DAG_ID, second, [["account.fetch_warehouse_stocks", 0]], only_failed=False, include_downstream=True
    )
    assert cluster.wait_run(DAG_ID, second) == "success", cluster.task_states(DAG_ID, second)
    stack.record(
        "degraded_run",
        {
            "seconds_to_failed": round(to_failed, 1),
            "seconds_from_clear_to_success": round(time.monotonic() - started, 1),
            "fetch_warehouse_stocks_tries_before_clear": tries.get("account.fetch_warehouse_stocks"),
        },
    )
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT status, degraded FROM ozon_sync_run WHERE run_id = %s", (second,)
        ).fetchone()
        assert row == ("complete", False)
        total = conn.execute(
            "SELECT sum(free_to_sell) FROM ozon_stock_by_warehouse WHERE account = %s", (OPS,)
        ).fetchone()[0]
        assert total == sum(r.free_to_sell for r in sim.accounts[ACCOUNTS[OPS][0]].catalogue.rows)
    stack.done["second"] = second
    return second


def test_triggered_run_loads_the_dataset(stack):
    _first_run(stack)


def test_degraded_run_completed_by_clearing_with_downstream(stack):
    _degraded_then_cleared(stack)


def test_backfill_reprocesses_archived_answers(stack):
    """Archived dates are reprocessed without calling Ozon; dates with no archive skip with a reason."""
    _degraded_then_cleared(stack)  # archives for FIRST and SECOND
    cluster, sim = stack.cluster, stack.sims[OPS].sim
    calls_before = sum(sim.stats_snapshot()["requests"].values())
    cluster.cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        date(FIRST),
        "--to-date",
        date(FOURTH),
        "--reprocess-behavior",
        "completed",
        "--max-active-runs",
        "1",
    )
    (backfill,) = cluster.api("GET", "/api/v2/backfills", params={"dag_id": DAG_ID})["backfills"]
    dates = [date(d) for d in (FIRST, SECOND, THIRD, FOURTH)]

    def finished() -> dict[str, dict[str, Any]] | None:
        runs = [r for r in cluster.dag_runs(DAG_ID) if (r["logical_date"] or "")[:10] in dates]
        by_date = {r["logical_date"][:10]: r for r in runs if r["run_type"] == "backfill"}
        done = cluster.api("GET", f"/api/v2/backfills/{backfill['id']}")["completed_at"]
        if (
            done
            and sorted(by_date) == dates
            and all(r["state"] in ("success", "failed") for r in by_date.values())
        ):
            return by_date
        return None

    started = time.monotonic()
    by_date = cluster.wait_for(finished, 300, "the backfill to complete", 2.0)
    stack.record("backfill", {"seconds_to_complete": round(time.monotonic() - started, 1)})
    for day in (FIRST, SECOND):
        run = by_date[date(day)]
        assert run["state"] == "success", cluster.task_states(DAG_ID, run["dag_run_id"])
        manifest = cluster.xcom(DAG_ID, run["dag_run_id"], "account.fetch_stocks", map_index=0)
        assert manifest["reused"] is True, manifest
    for day in (THIRD, FOURTH):
        run = by_date[date(day)]
        states = cluster.task_states(DAG_ID, run["dag_run_id"])
        assert states[("account.fetch_stocks", 0)] == "skipped", states
        assert states[("account.load", 0)] == "skipped", states
        log = cluster.task_log(DAG_ID, run["dag_run_id"], "account.fetch_stocks", 1, map_index=0)
        assert "no archived stocks answers" in log, log[-2000:]
    assert sum(sim.stats_snapshot()["requests"].values()) == calls_before  # no Ozon call in a backfill
    with stack.connect() as conn:
        statuses = dict(
            conn.execute(
                "SELECT run_key, status FROM ozon_sync_run WHERE account = %s AND run_key IN (%s, %s)",
                (OPS, clock.run_key(FIRST), clock.run_key(SECOND)),
            ).fetchall()
        )
        assert statuses[clock.run_key(FIRST)] == "stale"  # older than what is loaded: not applied
        assert statuses[clock.run_key(SECOND)] in ("stale", "complete")  # the newest archive: same data again
        total = conn.execute(
            "SELECT sum(free_to_sell) FROM ozon_stock_by_warehouse WHERE account = %s", (OPS,)
        ).fetchone()[0]
        assert total == sum(r.free_to_sell for r in sim.accounts[ACCOUNTS[OPS][0]].catalogue.rows)


# -- good API citizenship --------------------------------------------------------------------------


def test_overlapping_fetches_keep_to_one_rate_limit(stack):
    """One account's three fetch tasks run at once (three processes) against a strict fixed window
    of 50 requests per calendar second: no 429, never more than 50 requests in one second."""
    cluster, running = stack.cluster, stack.sims[BIG]
    client_id = ACCOUNTS[BIG][0]
    catalogue = running.sim.accounts[client_id].catalogue
    cluster.set_pool("ozon_api", 3, "Ozon fetches")  # room for all three fetches of the account at once
    try:
        run_id = cluster.trigger(DAG_ID, logical(BIG_RUN), conf={"accounts": [BIG]})
        state = cluster.wait_run(DAG_ID, run_id, timeout=300)
    finally:
        cluster.set_pool("ozon_api", 2, "Ozon fetches")
    seen = running.sim.citizenship(client_id)
    log = running.sim.request_log(client_id)
    origin = log[0]["time"] if log else 0.0
    request_spans = {  # when each method's requests arrived, seconds after the first request
        m: [round(min(ts) - origin, 2), round(max(ts) - origin, 2)]
        for m in seen["per_method"]
        if (ts := [e["time"] for e in log if e["method"] == m])
    }
    tis = {t["task_id"]: t for t in cluster.task_instances(DAG_ID, run_id) if t["task_id"] in FETCHES}
    spans = {
        task: (parse_time(tis[task]["start_date"]), parse_time(tis[task]["end_date"]))
        for task in FETCHES
        if task in tis
    }
    known = [s for s in spans.values() if s[0] and s[1]]
    overlap_s = (
        (min(end for _, end in known) - max(start for start, _ in known)).total_seconds()
        if len(known) == len(FETCHES)
        else None
    )
    stack.record(
        "overlapping_fetches",
        {
            "products": len(catalogue.products),
            "warehouse_rows": len(catalogue.rows),
            "run_state": state,
            "requests": seen["requests"],
            "responses_429": seen["responses_429"],
            "peak_requests_per_1s": seen["peak_requests_per_1s"],
            "per_method": seen["per_method"],
            "request_spans_s": request_spans,
            "fetch_spans": {t: [str(a), str(b)] for t, (a, b) in spans.items()},
            "overlap_of_all_three_s": overlap_s,
        },
    )
    assert len(catalogue.products) >= 20_000
    assert seen["responses_429"] == 0, seen
    assert seen["peak_requests_per_1s"] <= RATE_LIMIT, seen
    assert overlap_s is not None and overlap_s > 0, f"the three fetch tasks did not run at once: {spans}"
    assert state == "success", cluster.task_states(DAG_ID, run_id)


def test_dead_method_is_left_alone_and_the_run_fails_soon(stack):
    """``/v2/analytics/stock_on_warehouses`` answers 503 to everything, with production task retries.

    Pinned to that method (no successor to move to): at most 20 requests reach it in the whole run,
    and the run shows failed within 3 minutes. With ``auto``: the breaker moves to the successor,
    the run completes, and the dead method still costs at most 20 requests.
    """
    cluster, running = stack.cluster, stack.sims[DEAD]
    client_id = ACCOUNTS[DEAD][0]
    running.sim.add_fault(Fault(V2_ANALYTICS, "status", status=503, times=-1))
    run_id = cluster.trigger(
        DAG_ID, logical(DEAD_RUN), conf={"accounts": [DEAD], "warehouse_stock_method": "v2"}
    )

    def first_failure() -> float | None:
        failed = [
            e["time"]
            for e in running.sim.request_log(client_id)
            if e["method"] == V2_ANALYTICS and e["status"] >= 500
        ]
        return min(failed) if failed else None

    first_failed_at = cluster.wait_for(first_failure, 240, f"a first request to {V2_ANALYTICS}", 0.5)
    # Watch the run's state as a user sees it, until it is failed or the allowance is over.
    deadline = first_failed_at + FAILED_WITHIN_S + 5
    state, failed_seen_at = None, None
    while time.time() < deadline:
        cluster.check_alive()
        state = cluster.dag_run(DAG_ID, run_id)["state"]
        if state == "failed":
            failed_seen_at = time.time()
            break
        if state == "success":
            break
        time.sleep(1)
    seen = running.sim.citizenship(client_id)
    dead_requests = seen["per_method"].get(V2_ANALYTICS, 0)
    tries = {
        t["task_id"]: t["try_number"]
        for t in cluster.task_instances(DAG_ID, run_id)
        if t["task_id"] in FETCHES
    }
    seconds_to_failed = None if failed_seen_at is None else round(failed_seen_at - first_failed_at, 1)

    # the same dead method under ``auto``: the successor completes the run
    running.sim.reset_stats()
    auto_run = cluster.trigger(DAG_ID, logical(AUTO_RUN), conf={"accounts": [DEAD]})
    auto_state = cluster.wait_run(DAG_ID, auto_run)
    auto_seen = running.sim.citizenship(client_id)
    with stack.connect() as conn:
        ledger = conn.execute(
            "SELECT status, sources->'warehouse_stocks'->>'method', sources->'warehouse_stocks'->>'fallback_from'"
            " FROM ozon_sync_run WHERE run_id = %s AND account = %s",
            (auto_run, DEAD),
        ).fetchone()
    stack.record(
        "dead_method",
        {
            "pinned_run_state": state,
            "requests_to_dead_method": dead_requests,
            "seconds_from_first_failed_request_to_run_failed": seconds_to_failed,
            "per_method": seen["per_method"],
            "responses_429": seen["responses_429"],
            "fetch_tries": tries,
            "auto_run_state": auto_state,
            "auto_requests_to_dead_method": auto_seen["per_method"].get(V2_ANALYTICS, 0),
            "auto_ledger": ledger,
        },
    )
    assert dead_requests <= DEAD_METHOD_MAX_REQUESTS, seen
    assert state == "failed" and seconds_to_failed is not None and seconds_to_failed <= FAILED_WITHIN_S, (
        f"the run was {state!r} {FAILED_WITHIN_S} s after the first failed request to {V2_ANALYTICS}; "
        f"tasks: {cluster.task_states(DAG_ID, run_id)}"
    )
    assert auto_state == "success", cluster.task_states(DAG_ID, auto_run)
    assert auto_seen["per_method"].get(V2_ANALYTICS, 0) <= DEAD_METHOD_MAX_REQUESTS, auto_seen
    assert ledger == ("complete", V1_ANALYTICS, V2_ANALYTICS)


def test_a_shrink_waits_for_an_operator_who_approves_it_through_the_rest_api(stack):
    """The catalogue loses most of its products: the run parks ``approve_shrink`` in Required Actions
    with the guard's figures; the operator approves it (``PATCH …/hitlDetails``, as Airflow's page
    does) and this run's staged answers load, with no new request to Ozon; the ledger says who."""
    _degraded_then_cleared(stack)
    cluster, sim = stack.cluster, stack.sims[OPS].sim
    catalogue = sim.accounts[ACCOUNTS[OPS][0]].catalogue
    catalogue.remove_products(len(catalogue.products) - 40)
    run_id = cluster.trigger(DAG_ID, logical(SHRUNK_RUN))
    task = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/account.approve_shrink/0"
    cluster.wait_for(
        lambda: cluster.task_states(DAG_ID, run_id).get(("account.approve_shrink", 0)) == "awaiting_input",
        180,
        "approve_shrink to wait for input",
        interval=1.0,
    )
    # A person answers minutes later. An answer before the scheduler has seen the waiting task's worker
    # exit (its supervisor lingers about 5 s after parking) races that exit's executor event, and
    # Airflow 3.3.2 then fails the resumed task ("finished with state success, but the task
    # instance's state attribute is queued"): answer once the scheduler has seen it.
    exited = f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{DAG_ID}', task_id='account.approve_shrink', run_id='{run_id}'"
    cluster.wait_for(
        lambda: exited in (cluster.log_dir / "scheduler.log").read_text(errors="replace"),
        60,
        "the scheduler to see approve_shrink's worker exit",
        interval=0.5,
    )
    asked = cluster.api("GET", f"{task}/hitlDetails")
    requests_then = len(sim.request_log())
    assert "| stocks | products | 175 | 40 | -77% |" in asked["body"], asked
    assert asked["options"] == ["Approve", "Reject"] and asked["response_received"] is False
    started = time.monotonic()
    cluster.api("PATCH", f"{task}/hitlDetails", json={"chosen_options": ["Approve"], "params_input": {}})
    assert cluster.wait_run(DAG_ID, run_id) == "success", cluster.task_states(DAG_ID, run_id)
    stack.record(
        "shrink_approval", {"seconds_from_approval_to_success": round(time.monotonic() - started, 1)}
    )
    assert len(sim.request_log()) == requests_then  # loaded from this run's staged answers
    with stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ozon_product WHERE account = %s", (OPS,)).fetchone() == (
            40,
        )
        (decision,) = conn.execute(
            "SELECT shrink_decision FROM ozon_sync_run WHERE account = %s AND run_id = %s", (OPS, run_id)
        ).fetchone()
    assert decision["decision"] == "approved" and decision["by"] == cluster.username, decision
