"""``ozon_inventory_sync`` on CeleryExecutor with two worker hosts: the scale-out proof.

Run by ``bash scripts/celery_proof.sh`` (which installs what it needs and cleans up after it):

    python -m tests.celery_proof.proof --work DIR [--accounts 20] [--big-products 100000]

Topology (``tests/celery_proof/topology.py``): the host side runs the metadata PostgreSQL (also
Celery's result backend) and the target PostgreSQL (one server, two databases), Redis (the broker),
moto's S3 server (the staging area: ``s3://ozon_staging@ozon-staging/runs``), the Ozon simulator and
Airflow's api-server, scheduler, dag-processor and triggerer (``tests/e2e/airflow_cluster.py``,
CeleryExecutor). Each worker host is a network namespace with its own veth address and its own
``AIRFLOW_HOME``; it runs ``airflow celery worker`` and reaches everything over its veth.

Scenarios, each checked against the simulator's catalogue (counts and sums per stock type and per
Ozon warehouse, and a digest of every row):

1. one run of 20 accounts;
2. one run of an account with 100,000 products (about 850,000 warehouse rows);
3. rate citizenship of every Client-Id in 1, 2 and 4 against a strict fixed one-second window of
   50: no 429, at most 50 requests in any second, with requests of one Client-Id from both hosts;
4. a second 100,000-product run (1% of the stock changed) in which the worker host running
   ``fetch_warehouse_stocks`` is killed mid-fetch (SIGKILL to the worker's process group, then to
   whatever else runs in its namespace): the task is retried on the other host, nothing is lost.

It prints a summary of figures and writes them to ``DIR/figures.json``; it exits non-zero when a
check fails. Secrets (database and Redis passwords, the S3 secret, the Ozon Api-Keys) are made up
for the run, and every log is searched for them at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import time
import traceback
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import requests

from tests.celery_proof import topology
from tests.celery_proof.simhost import loaded
from tests.celery_proof.topology import (
    BIN,
    ROOT,
    Host,
    Network,
    ProofPostgres,
    Service,
    bucket_figures,
    create_bucket,
    reach_check,
    start_object_store,
    start_redis,
    start_simhost,
)
from tests.e2e.airflow_cluster import AirflowCluster, free_port, parse_time

DAG_ID = "ozon_inventory_sync"
BUCKET = "ozon-staging"
STAGING = f"s3://ozon_staging@{BUCKET}/runs"
RATE_LIMIT = 50
ANALYTICS = "/v2/analytics/stock_on_warehouses"
FETCHES = ("account.fetch_stocks", "account.fetch_warehouse_stocks", "account.fetch_warehouses")


class ProofFailed(AssertionError):
    pass


class CeleryCluster(AirflowCluster):
    """The harness's four components with CeleryExecutor, the api-server on the bridge address."""

    def __init__(self, home: Path, metadata_url: str, *, listen: str, **kwargs: Any):
        super().__init__(home, metadata_url, executor="CeleryExecutor", **kwargs)
        self.url = f"http://{listen}:{self.port}"
        self.env.update(
            {
                "AIRFLOW__API__HOST": listen,
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            }
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Proof:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work: Path = args.work
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        topology.SESSIONS_FILE = self.work / "sessions"
        self.figures: dict[str, Any] = {}
        self.checks: list[tuple[str, bool, str]] = []
        self.secrets = {
            "postgres password": secrets.token_urlsafe(18),
            "redis password": secrets.token_urlsafe(18),
            "s3 secret key": secrets.token_urlsafe(24),
        }
        self.s3_key = f"proof{secrets.token_hex(4)}"
        # connection id -> account spec; Client-Ids are simulator numbers, Api-Keys made up per run
        self.small = [f"ozon_p{i:02d}" for i in range(1, args.accounts + 1)]
        self.big = "ozon_big"
        self.specs: dict[str, dict[str, Any]] = {}
        for i, conn_id in enumerate(self.small, start=1):
            self.specs[conn_id] = {
                "client_id": str(710_000 + i),
                "api_key": secrets.token_hex(16),
                "products": 175 + (i - 1) * 150,
                "warehouses": 27,
                "rows_per_sku": 3,
                "seed": 100 + i,
            }
        self.specs[self.big] = {
            "client_id": "900100",
            "api_key": secrets.token_hex(16),
            "products": args.big_products,
            "warehouses": 30,
            "rows_per_sku": 10,
            "seed": 7,
        }
        for conn_id, spec in self.specs.items():
            self.secrets[f"api key of {conn_id}"] = spec["api_key"]
        self.workers: dict[str, Service] = {}
        self.hosts: dict[str, Host] = {}

    # -- set-up ------------------------------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, bool(ok), detail))
        log(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    def up(self, stack: ExitStack) -> None:
        started = time.monotonic()
        self.net = Network(self.work / "netns.state", workers=self.args.workers)
        stack.callback(self.net.destroy)
        self.net.create()
        self.hosts = {h.name: h for h in self.net.hosts}
        ip = self.net.host_address
        for line in self.net.describe():
            log(line)

        self.pg = ProofPostgres(self.work / "pg", ip, self.net.subnet, self.secrets["postgres password"])
        stack.callback(self.pg.stop)
        self.pg.start()
        with psycopg.connect(self.pg.dsn, autocommit=True) as admin:
            for db in ("airflow_meta", "ozon_target"):
                admin.execute(f'CREATE DATABASE "{db}"')
        self.target_url = self.pg.url("ozon_target")
        log(f"PostgreSQL 15 on {ip}:{self.pg.port} (metadata DB airflow_meta, target DB ozon_target)")

        self.redis_port = free_port()
        redis = start_redis(self.work, ip, self.redis_port, self.secrets["redis password"])
        stack.callback(redis.stop)
        log(f"Redis (broker) on {ip}:{self.redis_port}")

        self.s3_port = free_port()
        moto = start_object_store(self.work, ip, self.s3_port)
        stack.callback(moto.stop)
        self.s3_endpoint = f"http://{ip}:{self.s3_port}"
        create_bucket(self.s3_endpoint, BUCKET, self.s3_key, self.secrets["s3 secret key"])
        log(f"object store: moto_server (S3) on {ip}:{self.s3_port}, bucket {BUCKET}")

        self.sim_port, self.control_port = free_port(), free_port()
        sim = start_simhost(self.work, ip, self.sim_port, self.control_port, list(self.specs.values()))
        stack.callback(sim.stop)
        self.sim_url = f"http://{ip}:{self.sim_port}"
        self.control_url = f"http://{ip}:{self.control_port}"
        log(f"Ozon simulator on {ip}:{self.sim_port}: {sim.tail(1)}")

        metadata = self.pg.url("airflow_meta", "postgresql+psycopg2")
        env = {
            "PYTHONPATH": str(ROOT),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://:{self.secrets['redis password']}@{ip}:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.args.concurrency),
            "AIRFLOW_CONN_OZON_POSTGRES": self.target_url,
            "AIRFLOW_CONN_OZON_STAGING": json.dumps(
                {
                    "conn_type": "aws",
                    "login": self.s3_key,
                    "password": self.secrets["s3 secret key"],
                    "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
                }
            ),
            "AIRFLOW_VAR_OZON_INVENTORY_STAGING": STAGING,
            "OZON_INVENTORY_SCHEDULE": "manual",
            "OZON_INVENTORY_RETRIES": "3",
            "OZON_INVENTORY_RETRY_DELAY": "5",
            # a worker host that dies stops heartbeating: its tasks are failed (and retried) after this
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.args.heartbeat_timeout),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        }
        for conn_id, spec in self.specs.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "ozon",
                    "host": self.sim_url,
                    "login": spec["client_id"],
                    "password": spec["api_key"],
                }
            )
        self.cluster = CeleryCluster(
            self.work / "airflow-home",
            metadata,
            listen=ip,
            dags_folder=ROOT / "dags",
            plugins_folder=ROOT / "plugins",
            log_dir=self.work / "logs",
            env=env,
            parallelism=4 * self.args.workers * self.args.concurrency,
        )
        stack.callback(self.cluster.stop)
        self.cluster.start(timeout=600)
        for component in self.cluster.components.values():
            if component.proc is not None:
                topology.remember_session(component.proc.pid)
        log(f"Airflow (CeleryExecutor) up in {self.cluster.startup_s:.0f} s, api-server {self.cluster.url}")

        for host in self.net.hosts:
            self.workers[host.name] = self.start_worker(host)
            stack.callback(self.workers[host.name].stop)
        for host in self.net.hosts:
            self.workers[host.name].wait_for_log(" ready.", 300)
            log(f"celery worker {host.name}@{host.address} ready (concurrency {self.args.concurrency})")

        targets = [
            ("broker (redis)", ip, self.redis_port),
            ("metadata DB / result backend", ip, self.pg.port),
            ("execution API (api-server)", ip, self.cluster.port),
            ("target PostgreSQL", ip, self.pg.port),
            ("Ozon simulator", ip, self.sim_port),
            ("object store (S3)", ip, self.s3_port),
        ]
        reach = {h.name: reach_check(h, targets, self.cluster.port) for h in self.net.hosts}
        self.figures["topology"] = {
            "host_side": ip,
            "workers": {h.name: {"netns": h.netns, "address": h.address} for h in self.net.hosts},
            "reachability": reach,
            "object_store": f"moto_server {self.s3_endpoint}, staging {STAGING}",
        }
        for name, seen in reach.items():
            ok = all(v == "ok" for k, v in seen.items() if "must fail" not in k)
            self.check(f"worker {name} reaches every service over its veth", ok, json.dumps(seen))
        self.cluster.wait_dag(DAG_ID, timeout=300)
        self.cluster.set_pool("ozon_api", self.args.workers * self.args.concurrency, "Ozon fetches")
        self.cluster.unpause(DAG_ID)
        self.figures["setup_s"] = round(time.monotonic() - started, 1)

    def start_worker(self, host: Host) -> Service:
        home = self.work / f"worker-{host.name}"
        home.mkdir(parents=True, exist_ok=True)
        env = dict(self.cluster.env)
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "OZON_PROOF_HOSTNAME": host.address,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.celery_proof.hostname.get_hostname",
            }
        )
        command = [
            *host.exec_prefix(),
            str(BIN / "airflow"),
            "celery",
            "worker",
            "--concurrency",
            str(self.args.concurrency),
            "--celery-hostname",
            f"{host.name}@{host.address}",
            "--without-mingle",
            "--without-gossip",
        ]
        return Service(
            f"worker-{host.name}", command, self.work / "logs" / f"worker-{host.name}.log", env, home
        ).start()

    # -- helpers -----------------------------------------------------------------------------------

    def control(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        answer = requests.request(method, self.control_url + path, timeout=300, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def sim(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        answer = requests.request(method, self.sim_url + path, timeout=60, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def run(self, accounts: list[str], logical_date: str) -> str:
        return self.cluster.trigger(DAG_ID, logical_date, conf={"accounts": accounts})

    def wait(self, run_id: str, timeout: float) -> str:
        return self.cluster.wait_run(DAG_ID, run_id, timeout=timeout, interval=3)

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (the REST API gives at most 100 a page)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.cluster.api(
                "GET",
                f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def placement(self, run_id: str) -> dict[str, Any]:
        tis = self.task_instances(run_id)
        hosts = Counter(t.get("hostname") or "-" for t in tis if t["state"] == "success")
        names = {h.address: h.name for h in self.net.hosts}
        return {names.get(k, k): v for k, v in hosts.items()}

    def actual(self, account: str) -> dict[str, Any]:
        """The target tables' figures for ``account``, in the shape of the simulator's ``/expected``."""
        return loaded(self.target_url, account)

    def compare(self, account: str) -> dict[str, Any]:
        """Exact comparison of one account's tables with the simulator's catalogue."""
        want = self.control("/expected", params={"client_id": self.specs[account]["client_id"]})
        have = self.actual(account)
        differ = sorted(k for k in want if want[k] != have.get(k))
        return {
            "exact": not differ,
            "differ": {k: {"expected": want[k], "loaded": have.get(k)} for k in differ},
            "products": have["products"],
            "stock_rows": have["stock_rows"],
            "warehouse_rows": have["warehouse_rows"],
            "warehouses": len(have["by_warehouse"]),
            "by_type": have["by_type"],
            "free_to_sell": sum(v[1] for v in have["by_warehouse"].values()),
        }

    def ledger(self, account: str, run_id: str) -> tuple[str, bool] | None:
        with psycopg.connect(self.target_url) as conn:
            row = conn.execute(
                "SELECT status, degraded FROM ozon_sync_run WHERE account = %s AND run_id = %s",
                (account, run_id),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def citizenship(self, account: str) -> dict[str, Any]:
        client_id = self.specs[account]["client_id"]
        seen = self.sim("/__sim/citizenship", params={"client_id": client_id})
        peers = self.control("/peers", params={"client_id": client_id})
        names = {h.address: h.name for h in self.net.hosts}
        return {
            "requests": seen["requests"],
            "responses_429": seen["responses_429"],
            "peak_requests_per_1s": seen["peak_requests_per_1s"],
            "max_per_calendar_second": peers["max_per_calendar_second"],
            "requests_per_host": {names.get(k, k): v for k, v in peers["per_host"].items()},
            "seconds_with_both_hosts": peers["seconds_with_several_hosts"],
            "per_method": seen["per_method"],
        }

    def reset_simulator(self) -> None:
        self.control("/reset", method="POST")

    # -- scenarios ---------------------------------------------------------------------------------

    def scenario_accounts(self) -> None:
        log(f"scenario 1: one run of {len(self.small)} accounts")
        self.reset_simulator()
        started = time.monotonic()
        run_id = self.run(self.small, "2026-11-10T00:00:00Z")
        state = self.wait(run_id, self.args.run_timeout)
        seconds = round(time.monotonic() - started, 1)
        results = {a: self.compare(a) for a in self.small}
        ledgers = {a: self.ledger(a, run_id) for a in self.small}
        rates = {a: self.citizenship(a) for a in self.small}
        exact = [a for a, r in results.items() if r["exact"]]
        self.figures["scenario_1_accounts"] = {
            "run_id": run_id,
            "state": state,
            "seconds": seconds,
            "accounts": len(self.small),
            "exact_accounts": len(exact),
            "products": sum(r["products"] for r in results.values()),
            "stock_rows": sum(r["stock_rows"] for r in results.values()),
            "warehouse_rows": sum(r["warehouse_rows"] for r in results.values()),
            "tasks_per_host": self.placement(run_id),
            "ledger": dict(
                Counter(
                    f"{v[0]}{' degraded' if v and v[1] else ''}" if v else "none" for v in ledgers.values()
                )
            ),
            "differences": {a: r["differ"] for a, r in results.items() if not r["exact"]},
            "rates": {
                "requests": sum(r["requests"] for r in rates.values()),
                "responses_429": sum(r["responses_429"] for r in rates.values()),
                "max_peak_per_1s": max(r["peak_requests_per_1s"] for r in rates.values()),
                "max_per_calendar_second": max(r["max_per_calendar_second"] for r in rates.values()),
            },
        }
        self.rates_seen = dict(rates)
        self.check("scenario 1: run succeeded", state == "success", state)
        self.check(
            "scenario 1: every account's tables equal the catalogue",
            len(exact) == len(self.small),
            f"{len(exact)}/{len(self.small)} exact",
        )
        self.check(
            "scenario 1: every ledger row complete",
            all(v == ("complete", False) for v in ledgers.values()),
            json.dumps(self.figures["scenario_1_accounts"]["ledger"]),
        )
        self.check(
            "scenario 1: tasks ran on both worker hosts",
            len([h for h in self.figures["scenario_1_accounts"]["tasks_per_host"] if h in self.hosts])
            == len(self.hosts),
            json.dumps(self.figures["scenario_1_accounts"]["tasks_per_host"]),
        )

    def fetch_spans(self, run_id: str) -> dict[str, Any]:
        names = {h.address: h.name for h in self.net.hosts}
        spans = {}
        for ti in self.task_instances(run_id):
            if ti["task_id"] in FETCHES or ti["task_id"] in (
                "account.validate",
                "account.merge",
                "account.load",
            ):
                start, end = parse_time(ti["start_date"]), parse_time(ti["end_date"])
                spans[ti["task_id"].split(".")[-1]] = {
                    "host": names.get(ti.get("hostname") or "", ti.get("hostname")),
                    "try": ti["try_number"],
                    "state": ti["state"],
                    "seconds": round((end - start).total_seconds(), 1) if start and end else None,
                }
        return spans

    def scenario_big(self) -> None:
        log(f"scenario 2: one run of {self.args.big_products:,} products")
        self.reset_simulator()
        started = time.monotonic()
        run_id = self.run([self.big], "2026-11-11T00:00:00Z")
        state = self.wait(run_id, self.args.run_timeout)
        seconds = round(time.monotonic() - started, 1)
        result = self.compare(self.big)
        rates = self.citizenship(self.big)
        self.rates_seen[f"{self.big} (run 1)"] = rates
        self.figures["scenario_2_big"] = {
            "run_id": run_id,
            "state": state,
            "seconds": seconds,
            "ledger": self.ledger(self.big, run_id),
            "tasks": self.fetch_spans(run_id),
            "staging_bucket": bucket_figures(
                self.s3_endpoint, BUCKET, self.s3_key, self.secrets["s3 secret key"]
            ),
            **{
                k: result[k]
                for k in ("exact", "products", "stock_rows", "warehouse_rows", "warehouses", "free_to_sell")
            },
            "by_type": result["by_type"],
            "differences": result["differ"],
            "rates": rates,
        }
        self.check("scenario 2: run succeeded", state == "success", state)
        self.check(
            "scenario 2: tables equal the catalogue (counts, sums, every row)",
            result["exact"],
            f"{result['products']} products, {result['stock_rows']} stock rows, "
            f"{result['warehouse_rows']} warehouse rows",
        )

    def scenario_kill(self) -> None:
        log("scenario 4: a worker host killed in the middle of fetch_warehouse_stocks")
        changed = self.sim(
            "/__sim/catalogue",
            method="POST",
            json={
                "action": "change",
                "fraction": 0.01,
                "seed": 5,
                "client_id": self.specs[self.big]["client_id"],
            },
        )
        self.reset_simulator()
        started = time.monotonic()
        run_id = self.run([self.big], "2026-11-12T00:00:00Z")
        client_id = self.specs[self.big]["client_id"]

        def fetching() -> dict[str, Any] | None:
            tis = {t["task_id"]: t for t in self.task_instances(run_id)}
            ti = tis.get("account.fetch_warehouse_stocks")
            if not ti or ti["state"] != "running" or not ti.get("hostname"):
                return None
            done = self.sim("/__sim/citizenship", params={"client_id": client_id})["per_method"].get(
                ANALYTICS, 0
            )
            return {"hostname": ti["hostname"], "analytics_requests": done} if done >= 150 else None

        seen = self.cluster.wait_for(fetching, 600, "fetch_warehouse_stocks to be fetching", 0.5)
        victim = next(h for h in self.net.hosts if h.address == seen["hostname"])
        survivor = next(h for h in self.net.hosts if h is not victim)
        worker = self.workers[victim.name]
        assert worker.proc is not None
        group = worker.proc.pid
        in_group = [p for p in victim.pids() if _pgid(p) == group]
        os.killpg(group, signal.SIGKILL)
        time.sleep(0.5)
        rest = victim.pids()  # what left the worker's process group (the task runs in a group of its own)
        for pid in rest:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        time.sleep(1)
        left = victim.pids()
        log(
            f"killed worker host {victim.name}: SIGKILL to process group {group} ({len(in_group)} processes), "
            f"then {len(rest)} more in its namespace; {len(left)} left; "
            f"{seen['analytics_requests']} {ANALYTICS} requests had been answered"
        )
        state = self.wait(run_id, self.args.run_timeout)
        seconds = round(time.monotonic() - started, 1)
        tis = {t["task_id"]: t for t in self.task_instances(run_id)}
        fetch = tis["account.fetch_warehouse_stocks"]
        retried_on = fetch.get("hostname")
        retry_started = parse_time(fetch.get("start_date"))
        result = self.compare(self.big)
        rates = self.citizenship(self.big)
        self.rates_seen[f"{self.big} (run 2, killed worker)"] = rates
        ledger = self.ledger(self.big, run_id)
        with psycopg.connect(self.target_url) as conn:
            opened = conn.execute(
                "SELECT history_opened, history_closed FROM ozon_sync_run WHERE account = %s AND run_id = %s",
                (self.big, run_id),
            ).fetchone()
        self.figures["scenario_4_kill"] = {
            "run_id": run_id,
            "state": state,
            "seconds": seconds,
            "changed_warehouse_rows": changed.get("changed_rows"),
            "killed_host": victim.name,
            "killed_process_group": {"pgid": group, "processes": len(in_group)},
            "killed_outside_group": len(rest),
            "left_in_namespace": len(left),
            "analytics_requests_before_kill": seen["analytics_requests"],
            "fetch_warehouse_stocks": {
                "final_try": fetch["try_number"],
                "final_host": {survivor.address: survivor.name, victim.address: victim.name}.get(
                    retried_on or "", retried_on
                ),
                "state": fetch["state"],
                "retry_started_after_kill_s": (
                    round(retry_started.timestamp() - killed_at, 1) if retry_started else None
                ),
            },
            "tasks": self.fetch_spans(run_id),
            "ledger": ledger,
            "history_opened_closed": list(opened) if opened else None,
            **{k: result[k] for k in ("exact", "products", "stock_rows", "warehouse_rows", "free_to_sell")},
            "differences": result["differ"],
            "rates": rates,
        }
        self.check("scenario 4: run succeeded after the kill", state == "success", state)
        self.check(
            "scenario 4: fetch_warehouse_stocks retried on the other worker host",
            fetch["try_number"] >= 2 and retried_on == survivor.address,
            f"try {fetch['try_number']} on {retried_on} (killed: {victim.address})",
        )
        self.check("scenario 4: nothing left running on the killed host", not left, f"{len(left)} processes")
        self.check(
            "scenario 4: tables equal the changed catalogue (nothing lost)",
            result["exact"] and ledger == ("complete", False),
            f"ledger {ledger}, {result['warehouse_rows']} warehouse rows",
        )

    def scenario_rates(self) -> None:
        worst_peak = max(r["peak_requests_per_1s"] for r in self.rates_seen.values())
        worst_second = max(r["max_per_calendar_second"] for r in self.rates_seen.values())
        total_429 = sum(r["responses_429"] for r in self.rates_seen.values())
        big = self.rates_seen.get(f"{self.big} (run 1)", {})
        self.figures["scenario_3_rates"] = {
            "client_ids": len(self.specs),
            "responses_429": total_429,
            "max_peak_requests_per_sliding_1s": worst_peak,
            "max_requests_in_a_calendar_second": worst_second,
            "big_account_requests_per_host": big.get("requests_per_host"),
            "big_account_seconds_with_both_hosts": big.get("seconds_with_both_hosts"),
        }
        self.check("scenario 3: 0 x 429 in a strict fixed window", total_429 == 0, f"{total_429} x 429")
        self.check(
            "scenario 3: at most 50 requests in any 1 s per Client-Id",
            worst_peak <= RATE_LIMIT and worst_second <= RATE_LIMIT,
            f"peak {worst_peak} per sliding second, {worst_second} per calendar second",
        )
        both = [
            name
            for name, r in self.rates_seen.items()
            if len(r["requests_per_host"]) > 1 and r["seconds_with_both_hosts"] > 0
        ]
        self.check(
            "scenario 3: one Client-Id's budget shared by fetches on both hosts at once",
            bool(both),
            f"{len(both)} Client-Id runs with requests from both hosts in the same second",
        )

    def secrets_in_logs(self) -> None:
        found: dict[str, list[str]] = {}
        for path in self.work.rglob("*"):
            if not path.is_file() or path.suffix not in (".log", ".json", ".txt", ""):
                continue
            if "pg" in path.parts and path.name != "server.log":  # the database's own files
                continue
            if (
                path.name in ("accounts.json", "figures.json", "netns.state", "redis.conf")
                or "passwords" in path.name
            ):
                continue
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for name, value in self.secrets.items():
                if value in text:
                    found.setdefault(name, []).append(str(path.relative_to(self.work)))
        scanned = sum(1 for p in self.work.rglob("*.log") if p.is_file())
        self.figures["secrets_in_logs"] = {"log_files_scanned": scanned, "found": found}
        self.check("no secret in any log", not found, f"{scanned} log files, {len(self.secrets)} secrets")

    # -- the whole proof ---------------------------------------------------------------------------

    def summary(self) -> str:
        f = self.figures
        lines = ["", "=" * 78, "CELERY SCALE-OUT PROOF: SUMMARY", "=" * 78]
        if "topology" in f:
            t = f["topology"]
            lines.append(
                f"host side {t['host_side']}: PostgreSQL, Redis, moto S3, simulator, Airflow components"
            )
            for name, w in t["workers"].items():
                lines.append(f"worker host {name}: netns {w['netns']} at {w['address']}")
            lines.append(f"staging: {t['object_store']}")
        if "scenario_1_accounts" in f:
            s = f["scenario_1_accounts"]
            lines.append(
                f"1) {s['accounts']} accounts: {s['state']} in {s['seconds']} s; exact {s['exact_accounts']}/"
                f"{s['accounts']}; {s['products']} products, {s['stock_rows']} stock rows, "
                f"{s['warehouse_rows']} warehouse rows; tasks per host {s['tasks_per_host']}; "
                f"{s['rates']['requests']} requests, {s['rates']['responses_429']} x 429, "
                f"peak {s['rates']['max_peak_per_1s']}/s"
            )
        if "scenario_2_big" in f:
            s = f["scenario_2_big"]
            lines.append(
                f"2) {s['products']:,} products: {s['state']} in {s['seconds']} s; exact {s['exact']}; "
                f"{s['stock_rows']:,} stock rows, {s['warehouse_rows']:,} warehouse rows in {s['warehouses']} "
                f"warehouses, free_to_sell {s['free_to_sell']:,}; ledger {s['ledger']}"
            )
            lines.append(f"   tasks: {json.dumps(s['tasks'])}")
            r = s["rates"]
            lines.append(
                f"   requests {r['requests']} ({json.dumps(r['per_method'])}), {r['responses_429']} x 429, "
                f"peak {r['peak_requests_per_1s']}/sliding s, {r['max_per_calendar_second']}/calendar s, "
                f"per host {r['requests_per_host']}, seconds with both hosts {r['seconds_with_both_hosts']}"
            )
            lines.append(f"   staging bucket after the run: {s['staging_bucket']}")
        if "scenario_3_rates" in f:
            s = f["scenario_3_rates"]
            lines.append(
                f"3) {s['client_ids']} Client-Ids, strict fixed 1-s window of 50: {s['responses_429']} x 429, "
                f"max {s['max_peak_requests_per_sliding_1s']} per sliding second, "
                f"{s['max_requests_in_a_calendar_second']} per calendar second; big account's requests per host "
                f"{s['big_account_requests_per_host']}, {s['big_account_seconds_with_both_hosts']} seconds with both"
            )
        if "scenario_4_kill" in f:
            s = f["scenario_4_kill"]
            k = s["fetch_warehouse_stocks"]
            lines.append(
                f"4) killed {s['killed_host']} after {s['analytics_requests_before_kill']} analytics requests "
                f"(process group {s['killed_process_group']}, +{s['killed_outside_group']} outside it, "
                f"{s['left_in_namespace']} left): run {s['state']} in {s['seconds']} s; fetch_warehouse_stocks "
                f"try {k['final_try']} on {k['final_host']} ({k['state']}), started "
                f"{k['retry_started_after_kill_s']} s after the kill; exact {s['exact']} "
                f"({s['changed_warehouse_rows']} rows changed, history opened/closed {s['history_opened_closed']})"
            )
            lines.append(f"   tasks: {json.dumps(s['tasks'])}")
        if "secrets_in_logs" in f:
            s = f["secrets_in_logs"]
            lines.append(f"secrets in logs: {len(s['found'])} found in {s['log_files_scanned']} log files")
        lines.append("-" * 78)
        for name, ok, detail in self.checks:
            lines.append(
                f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  [{detail}]" if detail and not ok else "")
            )
        passed = sum(ok for _, ok, _ in self.checks)
        lines.append(f"{passed} passed, {len(self.checks) - passed} failed")
        if "total_s" in f:
            lines.append(f"total {f['total_s']} s (set-up {f.get('setup_s')} s)")
        return "\n".join(lines)

    def main(self) -> int:
        started = time.monotonic()
        error = None
        with ExitStack() as stack:
            try:
                self.up(stack)
                self.rates_seen: dict[str, Any] = {}
                if "1" in self.args.scenarios:
                    self.scenario_accounts()
                if "2" in self.args.scenarios:
                    self.scenario_big()
                if "4" in self.args.scenarios:
                    self.scenario_kill()
                self.scenario_rates()
            except BaseException as exc:  # noqa: BLE001 - reported below, then everything is torn down
                error = exc
                log(f"proof stopped: {type(exc).__name__}: {exc}")
                traceback.print_exc()
                with contextlib.suppress(Exception):
                    print(self.cluster.log_tails(40))
                for worker in self.workers.values():
                    print(f"----- {worker.name} -----\n{worker.tail(40)}")
            finally:
                log("tearing down (workers, Airflow, simulator, object store, Redis, PostgreSQL, namespaces)")
        self.secrets_in_logs()
        tag = getattr(getattr(self, "net", None), "tag", "none")
        left = [line for line in os.popen("ip netns list").read().splitlines() if f"ozcp-{tag}" in line]
        self.check("teardown: no namespace left", not left, ", ".join(left))
        self.figures["total_s"] = round(time.monotonic() - started, 1)
        (self.work / "figures.json").write_text(json.dumps(self.figures, indent=1, default=str))
        print(self.summary())
        if error is not None:
            print(f"\nthe proof stopped early: {type(error).__name__}: {error}")
            return 1
        return 0 if all(ok for _, ok, _ in self.checks) else 1


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.celery_proof.proof", description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="folder for logs, data and figures")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--big-products", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument("--heartbeat-timeout", type=int, default=60)
    parser.add_argument("--run-timeout", type=float, default=1800)
    parser.add_argument("--scenarios", default="124", help="which of 1, 2, 4 to run (3 reads their figures)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    return Proof(args).main()


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # unwinds through the teardown


if __name__ == "__main__":
    sys.exit(main())
