"""The "Ozon inventory" page in a real browser, against a real Airflow holding the demo's data.

Airflow runs as users deploy it (``tests/e2e/airflow_cluster.py``: PostgreSQL metadata, api-server,
scheduler, dag-processor, triggerer) with the simple auth manager and three users: ``admin``,
``viewer`` and ``outsider`` (no role: authenticated, may read nothing). One DAG run syncs three
accounts against the Ozon simulator:

- ``ozon_default``: the old system's dataset (175 products, 27 Ozon warehouses, 511 rows): complete;
- ``ozon_flaky``: both analytics methods down and one 429 from Ozon: degraded;
- ``ozon_badkey``: a wrong Api-Key: failed before anything was loaded.

A downstream DAG (``ozon_stock_consumer``, as docs/data-model.md shows it) is scheduled on
``Asset("ozon-inventory://ozon_default")`` and reads the fresh stock with ``ozon_inventory.read``.
Then 200 synthetic accounts with a day of hourly history are written into the target database, and
headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``) logs in through Airflow's
login form and looks at the dashboard widget, the page, an account's warehouse chart and rejects,
the DAG's tab and the run's mapped tasks.

Three more accounts make the six kinds an operator meets: ``ozon_norole`` (its key lacks the
warehouse-stock role: degraded, that source never loaded), ``ozon_expiring`` (complete, its key
expires in 5 days) and ``ozon_gone`` (in the first run only: removed from the accounts list). A
second run fails ``ozon_badkey`` again; a third is left running (the fetch pool has no slot), so
everything the browser sees is seen while a run is in progress. Screenshots go to pytest's temporary folder (printed);
the page's load time with 203 accounts is printed and kept in ``ui-figures.json`` there.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from ozon_inventory.methods import AUTO_ORDER
from ozon_simulator import Fault, RunningSimulator, SimulatorConfig, default_simulator, serve
from ozon_simulator.catalogue import build_catalogue
from ozon_simulator.server import STOCK_METHODS, Account
from tests import clock
from tests.e2e.airflow_cluster import AirflowCluster, create_database
from tests.ozon_inventory.ui.synthetic import insert_accounts

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ozon_inventory_sync"
#: mapped task instances per account: three fetches, validate, approve_shrink, merge, load, report
PER_ACCOUNT = 8
OK, FLAKY, BAD = "ozon_default", "ozon_flaky", "ozon_badkey"
NOROLE, EXPIRING, GONE = "ozon_norole", "ozon_expiring", "ozon_gone"
KEYS = {
    OK: ("100200", "e2e-key"),
    FLAKY: ("700800", "flaky-key"),
    BAD: ("100300", "not-the-key"),
    NOROLE: ("100400", "norole-key"),
    EXPIRING: ("100500", "expiring-key"),
    GONE: ("100600", "gone-key"),
}  # a seller of its own: one per run
FIRST = [OK, FLAKY, BAD, NOROLE, EXPIRING, GONE]
LATER = FIRST[:-1]  # GONE was removed from the list
USERS = {"viewer": "viewer", "outsider": ""}  # user -> simple auth manager role ("" = no role)
ANALYTICS = ("/v2/analytics/stock_on_warehouses", "/v1/analytics/stocks")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYNTHETIC = 200
CONSUMER = "ozon_stock_consumer"
#: A downstream DAG as docs/data-model.md, "Downstream DAGs on fresh stock", shows it: scheduled on
#: one account's Asset, it reads the event's extra and the account's stock as a DataFrame
#: (ozon_inventory.read).
CONSUMER_DAG = """
import pendulum
from airflow.sdk import DAG, Asset, task

FRESH = Asset("ozon-inventory://ozon_default")

with DAG("ozon_stock_consumer", schedule=[FRESH], start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):

    @task(inlets=[FRESH])
    def fresh_stock(*, triggering_asset_events=None):
        from ozon_inventory import read

        (event,) = triggering_asset_events[FRESH]
        stock = read.current_stock_by_warehouse(event.extra["account"])
        return {"extra": event.extra, "rows": len(stock), "free_to_sell": int(stock["free_to_sell"].sum())}

    fresh_stock()
"""


class UiCluster(AirflowCluster):
    """The shared harness with more users of the simple auth manager (its file of passwords and its
    ``simple_auth_manager_users`` setting, written before the components start)."""

    def __init__(self, *args: Any, users: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.passwords = {self.username: self.password} | {u: secrets.token_urlsafe(12) for u in users}
        (self.home / "simple_auth_manager_passwords.json").write_text(json.dumps(self.passwords))
        self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(
            [f"{self.username}:admin", *(f"{u}:{role}" for u, role in users.items())]
        )

    def token(self, user: str) -> str:
        answer = requests.post(
            self.url + "/auth/token",
            json={"username": user, "password": self.passwords[user]},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["access_token"]

    def get_as(self, user: str | None, path: str) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            if user:
                session.headers["Authorization"] = f"Bearer {self.token(user)}"
            return session.get(self.url + path, timeout=30)


@dataclass
class UiStack:
    cluster: UiCluster
    sims: dict[str, RunningSimulator]
    dsn: str
    run_id: str
    shots: Path
    figures_path: Path
    synthetic: dict[str, Any] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)  # the finished runs, oldest first
    running_id: str = ""  # the run left running

    def record(self, name: str, figures: dict[str, Any]) -> None:
        kept = json.loads(self.figures_path.read_text()) if self.figures_path.exists() else {}
        kept[name] = figures
        self.figures_path.write_text(json.dumps(kept, indent=2, default=str))
        print(f"\nFIGURES {name}: {json.dumps(figures, default=str)}\n(all figures: {self.figures_path})")


def _connection(sim: RunningSimulator, account: str) -> str:
    client_id, api_key = KEYS[account]
    extra = {"max_retries": 1, "backoff": 0.05}  # give up fast: the degraded run comes quickly
    return json.dumps(
        {"conn_type": "http", "host": sim.url, "login": client_id, "password": api_key, "extra": extra}
    )


@contextmanager
def ui_stack_running(pg_server: Any, base: Path) -> Iterator[UiStack]:
    """Simulators, the target database, Airflow with the plugin, one run of three accounts, and the
    synthetic accounts; everything stopped however it ends."""
    ok = default_simulator(client_id=KEYS[OK][0], api_key=KEYS[OK][1], config=SimulatorConfig())
    flaky = default_simulator(
        60, 8, seed=5, client_id=KEYS[FLAKY][0], api_key=KEYS[FLAKY][1], config=SimulatorConfig()
    )
    for method in ANALYTICS:
        flaky.add_fault(Fault(method, "status", status=503, times=-1))
    # the one 429 goes to the method only fetch_warehouses asks: the warehouse fetch, falling back to
    # the FBO method, may list SKUs through /v4/product/info/stocks itself, and whichever fetch came
    # first took a 429 put there (counted only when its source loads)
    flaky.add_fault(Fault("/v2/warehouse/list", "rate_limit", times=1, retry_after=1))
    # three small sellers on the first simulator: no role for the warehouse stock methods, a key
    # that expires in 5 days, and one that will be removed from the accounts list
    for account, methods, expires in (
        (NOROLE, frozenset(STOCK_METHODS) - set(AUTO_ORDER["warehouse_stocks"]), None),
        (EXPIRING, None, clock.NOW + timedelta(days=5)),
        (GONE, None, None),
    ):
        client_id, api_key = KEYS[account]
        seller = Account(client_id, api_key, build_catalogue(12, 4, int(client_id)), methods=methods)
        if expires is not None:
            seller.key_expires_at = expires
        ok.accounts[client_id] = seller
    running: dict[str, RunningSimulator] = {}
    cluster = None
    try:
        running = {OK: serve(ok), FLAKY: serve(flaky)}
        tag = f"{int(time.time()) % 100000}"
        target, metadata = f"ui_target_{tag}", f"ui_airflow_{tag}"
        create_database(pg_server.dsn, target)
        create_database(pg_server.dsn, metadata)
        host = f"{pg_server.user}@127.0.0.1:{pg_server.port}"
        dsn = f"postgresql://{host}/{target}"
        home = base / "airflow-home"
        dags = base / "dags"  # the project's DAG and a downstream DAG scheduled on its Asset
        dags.mkdir(parents=True, exist_ok=True)
        (dags / "ozon_inventory_sync.py").symlink_to(ROOT / "dags" / "ozon_inventory_sync.py")
        (dags / f"{CONSUMER}.py").write_text(CONSUMER_DAG)
        cluster = UiCluster(
            home,
            f"postgresql+psycopg2://{host}/{metadata}",
            dags_folder=dags,
            plugins_folder=ROOT / "plugins",
            log_dir=base / "airflow-logs",
            users=USERS,
            env={
                # the project first, whatever copy of it the virtualenv has installed
                "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
                "AIRFLOW_CONN_OZON_DEFAULT": _connection(running[OK], OK),
                "AIRFLOW_CONN_OZON_FLAKY": _connection(running[FLAKY], FLAKY),
                "AIRFLOW_CONN_OZON_BADKEY": _connection(running[OK], BAD),
                "AIRFLOW_CONN_OZON_NOROLE": _connection(running[OK], NOROLE),
                "AIRFLOW_CONN_OZON_EXPIRING": _connection(running[OK], EXPIRING),
                "AIRFLOW_CONN_OZON_GONE": _connection(running[OK], GONE),
                "AIRFLOW_CONN_OZON_POSTGRES": dsn,
                "AIRFLOW_VAR_OZON_INVENTORY_STAGING": str(home / "staging"),
                "OZON_INVENTORY_SCHEDULE": "manual",  # unpausing creates no run of its own
                "OZON_INVENTORY_RETRIES": "0",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            },
        )
        cluster.start()
        cluster.wait_dag(DAG_ID)
        cluster.wait_dag(CONSUMER)
        cluster.set_pool("ozon_api", 3, "Ozon fetches")
        cluster.unpause(DAG_ID)
        cluster.unpause(CONSUMER)
        print(f"\nAirflow up in {cluster.startup_s:.1f} s at {cluster.url}; logs in {cluster.log_dir}")
        run_ids = []
        for hour, accounts in ((0, FIRST), (1, LATER)):
            if hour:  # the one 429 in each run: the page shows the last run's figures
                flaky.add_fault(Fault("/v2/warehouse/list", "rate_limit", times=1, retry_after=1))
            started = time.monotonic()
            run_id = cluster.trigger(
                DAG_ID, clock.day(23, hour).strftime("%Y-%m-%dT%H:%M:%SZ"), conf={"accounts": accounts}
            )
            state = cluster.wait_run(DAG_ID, run_id, timeout=420)
            print(f"run {run_id}: {state} in {time.monotonic() - started:.1f} s")
            run_ids.append(run_id)
        with psycopg.connect(dsn) as conn:
            synthetic = insert_accounts(conn, accounts=SYNTHETIC)
        # a third run that stays running: its fetches wait for a slot of a pool that has none
        cluster.set_pool("ozon_api", 0, "Ozon fetches (held for the test)")
        running_id = cluster.trigger(
            DAG_ID, clock.day(23, 2).strftime("%Y-%m-%dT%H:%M:%SZ"), conf={"accounts": LATER}
        )
        cluster.wait_for(
            lambda: (
                len([t for t in cluster.task_instances(DAG_ID, running_id) if t["map_index"] >= 0])
                == PER_ACCOUNT * len(LATER)
            ),
            180,
            "the third run to map its accounts' tasks",
        )
        assert cluster.xcom(DAG_ID, running_id, "accounts") == LATER
        shots = base / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        yield UiStack(
            cluster, running, dsn, run_ids[0], shots, base / "ui-figures.json", synthetic, run_ids, running_id
        )
    finally:
        if cluster is not None:
            cluster.stop()
        for sim in running.values():
            sim.stop()


@pytest.fixture(scope="module")
def ui_stack(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    with ui_stack_running(pg_server, tmp_path_factory.mktemp("ui-e2e")) as stack:
        yield stack


# -- auth ------------------------------------------------------------------------------------------


def test_plugin_answers_only_users_who_may_read_the_dag(ui_stack):
    cluster = ui_stack.cluster
    routes = [
        "/ozon-inventory/api/accounts",
        "/ozon-inventory/api/summary",
        "/ozon-inventory/static/ozon-inventory.js",
    ]
    seen: dict[str, dict[str, int]] = {}
    for user in (None, "outsider", "viewer", "admin"):
        seen[user or "anonymous"] = {r: cluster.get_as(user, r).status_code for r in routes}
    seen["outsider"]["/api/v2/dags/ozon_inventory_sync"] = cluster.get_as(
        "outsider", f"/api/v2/dags/{DAG_ID}"
    ).status_code
    ui_stack.record("auth", seen)
    assert set(seen["anonymous"].values()) == {401}, seen
    assert set(seen["outsider"].values()) == {403}, seen  # as Airflow's own DAG endpoint answers
    assert set(seen["viewer"].values()) == {200} and set(seen["admin"].values()) == {200}, seen

    (plugin,) = [p for p in cluster.api("GET", "/api/v2/plugins")["plugins"] if p["name"] == "ozon_inventory"]
    assert {a["destination"] for a in plugin["react_apps"]} == {"nav", "dag", "dashboard"}
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/ozon-inventory"]


# -- grid and assets -------------------------------------------------------------------------------


def test_grid_labels_name_the_account_and_the_degraded_report_says_so(ui_stack):
    cluster = ui_stack.cluster
    accounts = cluster.xcom(DAG_ID, ui_stack.run_id, "accounts")
    assert accounts == FIRST
    tis = [t for t in cluster.task_instances(DAG_ID, ui_stack.run_id) if t["map_index"] >= 0]
    assert len(tis) == PER_ACCOUNT * len(FIRST)
    labels = {(t["task_id"], accounts[t["map_index"]]): (t["state"], t["rendered_map_index"]) for t in tis}
    for (_task, account), (state, label) in labels.items():
        if state != "upstream_failed":  # a task that never ran was never labelled
            assert label.split(" · ")[0] == account, labels
    assert labels[("account.report", OK)] == ("success", OK)
    assert labels[("account.report", FLAKY)] == ("failed", f"{FLAKY} · degraded: warehouse_stocks failed")
    assert labels[("account.report", BAD)] == ("failed", f"{BAD} · failed: nothing loaded")
    assert labels[("account.fetch_warehouse_stocks", FLAKY)][0] == "failed"
    assert labels[("account.report", NOROLE)] == ("failed", f"{NOROLE} · degraded: warehouse_stocks failed")


def test_load_emits_an_asset_event_per_account_with_fresh_stock(ui_stack):
    events = ui_stack.cluster.api(
        "GET", "/api/v2/assets/events", params={"source_dag_id": DAG_ID, "source_run_id": ui_stack.run_id}
    )["asset_events"]
    by_uri = {e["uri"]: e for e in events}
    assert set(by_uri) == {f"ozon-inventory://{a}/" for a in FIRST if a != BAD}  # nothing loaded: no event
    assert by_uri[f"ozon-inventory://{OK}/"]["extra"]["status"] == "complete"
    flaky = by_uri[f"ozon-inventory://{FLAKY}/"]["extra"]
    assert flaky["degraded"] is True and flaky["missing"] == ["warehouse_stocks"]
    assert flaky["run_id"] == ui_stack.run_id and set(flaky["applied"]) == {"stocks", "warehouses"}


def test_a_downstream_dag_runs_on_fresh_stock_and_reads_it_with_pandas(ui_stack):
    cluster = ui_stack.cluster

    def consumer_run() -> dict[str, Any] | None:
        runs = cluster.dag_runs(CONSUMER)
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    run = cluster.wait_for(consumer_run, 180, f"{CONSUMER} to run on the asset event", 2.0)
    assert run["run_type"] == "asset_triggered", run
    assert run["state"] == "success", cluster.task_states(CONSUMER, run["dag_run_id"])
    seen = cluster.xcom(CONSUMER, run["dag_run_id"], "fresh_stock")
    assert seen["extra"]["account"] == OK and seen["extra"]["status"] == "complete"
    assert seen["extra"]["run_id"] in ui_stack.run_ids
    ok = ui_stack.sims[OK].sim.accounts[KEYS[OK][0]].catalogue
    assert seen["rows"] == 511 and seen["free_to_sell"] == sum(r.free_to_sell for r in ok.rows)


# -- the page in a browser -------------------------------------------------------------------------


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(found).exists(), "Debian's chromium is missing: apt-get install -y chromium (.ci/run does)"
    return found


def search(page: Any, account: str) -> Any:
    """Type an account into the page's search box; its row once it is the only one shown."""
    from playwright.sync_api import expect

    page.get_by_test_id("search").fill(account)
    row = page.locator(f"[data-testid=account-row][data-account={account}]")
    expect(row).to_be_visible()
    expect(page.get_by_test_id("account-row")).to_have_count(1)
    return row


def test_the_page_in_a_real_browser(ui_stack):
    from playwright.sync_api import expect, sync_playwright

    cluster, shots = ui_stack.cluster, ui_stack.shots
    print(f"\nscreenshots in {shots}")
    figures: dict[str, Any] = {"accounts": SYNTHETIC + len(FIRST)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.set_default_timeout(60_000)  # a loaded 2-core machine: the UI alone takes ~10 s
            expect.set_options(timeout=60_000)
            # A person logs in through Airflow's login form and lands on the home dashboard.
            page.goto(cluster.url + "/")
            # the UI sends an anonymous visitor on to its login page (a client-side redirect, whose
            # intermediate navigations may be aborted: wait for the form, then check where it is)
            expect(page.locator("input[name=username]")).to_be_visible()
            expect(page).to_have_url(re.compile(r".*/auth/login.*"))
            page.locator("input[name=username]").fill("viewer")
            page.locator("input[name=password]").fill(cluster.passwords["viewer"])
            page.get_by_role("button", name="Sign in").click()
            widget = page.get_by_test_id("ozon-inventory-widget")
            expect(widget).to_be_visible()
            expect(widget.get_by_test_id("widget-failed")).to_have_attribute("data-count", "1")
            expect(widget.get_by_test_id("widget-degraded")).to_have_attribute(
                "data-count", str(2 + len(ui_stack.synthetic["degraded"]))
            )
            # while the third run is in progress the failing account stays failed, among the worst
            bad_item = widget.locator(f"[data-testid=widget-account][data-account={BAD}]")
            expect(bad_item).to_have_attribute("data-status", "failed")
            expect(bad_item.get_by_test_id("running")).to_be_visible()
            expect(bad_item).to_contain_text("failing for 2 runs since")
            page.screenshot(path=shots / "01-dashboard-widget-while-a-run-runs.png", full_page=True)
            # its name is a link to its row on the page
            bad_item.get_by_test_id("widget-account-link").click()
            page.wait_for_url(re.compile(r".*/plugin/ozon-inventory\?q=ozon_badkey$"))
            expect(page.get_by_test_id("account-row")).to_have_count(1)
            expect(page.get_by_test_id("account-row")).to_have_attribute("data-account", BAD)

            # The page in the navigation: 203 accounts, worst first, 25 a page.
            started = time.perf_counter()
            page.goto(cluster.url + "/plugin/ozon-inventory")
            rows = page.get_by_test_id("account-row")
            expect(rows).to_have_count(25)
            expect(page.get_by_test_id("sparkline").first).to_be_visible()
            figures["page_load_s"] = round(time.perf_counter() - started, 3)
            figures["page_api_ms"] = page.get_by_test_id("load-ms").inner_text()
            expect(page.get_by_text(f"{SYNTHETIC + len(FIRST)} accounts · worst first")).to_be_visible()
            first = rows.first
            expect(first).to_have_attribute("data-account", BAD)
            expect(first).to_have_attribute("data-status", "failed")  # not "pending" during the run
            expect(first.get_by_test_id("running")).to_be_visible()
            expect(first.get_by_test_id("failing")).to_have_text(
                re.compile(r"failing for 2 runs since (\S+ )?\d\d:\d\d")
            )
            expect(first.get_by_test_id("reason")).to_contain_text(
                "every source: Invalid Api-Key, please check the key and try again (HTTP 404, code 5)"
            )
            expect(first.get_by_test_id("reason")).to_contain_text("nothing was ever loaded")
            expect(first.get_by_test_id("action")).to_contain_text(
                f"fix the Api-Key or its roles in Airflow connection {BAD}"
            )
            flaky = page.locator(f"[data-testid=account-row][data-account={FLAKY}]")
            expect(flaky).to_have_attribute("data-status", "degraded")
            expect(flaky.locator("[data-source=warehouse_stocks]")).to_contain_text("failed")
            expect(flaky.get_by_test_id("requests")).to_contain_text("1 × 429")
            expect(flaky.get_by_test_id("action")).to_contain_text("Ozon did not answer in time")
            expect(flaky.get_by_test_id("action")).to_contain_text("wait")
            norole = page.locator(f"[data-testid=account-row][data-account={NOROLE}]")
            expect(norole).to_have_attribute("data-status", "degraded")
            expect(norole.get_by_test_id("running")).to_be_visible()
            expect(norole.get_by_test_id("reason")).to_contain_text(
                "warehouse_stocks: Api-Key is missing a required role for a method (HTTP 403, code 7)"
            )
            expect(norole.get_by_test_id("action")).to_contain_text(
                f"fix the Api-Key or its roles in Airflow connection {NOROLE}"
            )
            expect(norole.get_by_test_id("reason")).to_contain_text("it never loaded")
            expect(norole.get_by_test_id("reason")).not_to_contain_text("kept")
            expect(norole.get_by_test_id("age")).to_have_text("never loaded")
            expect(norole.get_by_test_id("task-link")).to_be_visible()
            expect(norole.get_by_test_id("failing")).to_contain_text("failing for 2 runs since")
            expect(page.get_by_test_id("count-stale")).to_have_attribute(
                "data-count", str(len(ui_stack.synthetic["stale"]))
            )
            statuses = [rows.nth(i).get_attribute("data-status") for i in range(25)]
            order = {"failed": 0, "degraded": 1, "stale": 2, "pending": 3, "complete": 4, "removed": 5}
            assert [order[s] for s in statuses] == sorted(order[s] for s in statuses), statuses
            page.screenshot(path=shots / "02-page-worst-first-while-a-run-runs.png", full_page=True)

            # The key that expires in 5 days: a badge in a complete row. The removed account says so.
            expiring = search(page, EXPIRING)
            expect(expiring).to_have_attribute("data-status", "complete")
            expect(expiring.get_by_test_id("key-warning")).to_have_text(
                re.compile(r"key expires in [45] days")
            )
            page.screenshot(path=shots / "07-key-expiring-badge.png", full_page=True)
            gone = search(page, GONE)
            expect(gone).to_have_attribute("data-status", "removed")
            expect(gone.get_by_test_id("reason")).to_contain_text("removed from the accounts list")
            page.screenshot(path=shots / "08-removed-account.png", full_page=True)

            # The account without the warehouse role: nothing compared against a source never loaded.
            search(page, NOROLE).get_by_test_id("account-name").click()
            expect(page.get_by_test_id("mismatches")).to_contain_text("not compared")
            page.get_by_test_id("show-mismatches").click()
            expect(page.get_by_test_id("mismatch-rows")).to_have_text(
                "Not compared: warehouse_stocks never loaded: there is nothing to compare."
            )
            page.screenshot(path=shots / "09-degraded-never-loaded-details.png", full_page=True)
            # The failed account: Ozon's error per source in its details; never "the tables agree".
            search(page, BAD).get_by_test_id("account-name").click()
            causes = page.get_by_test_id("account-detail").get_by_test_id("cause")
            expect(causes).to_have_count(3)
            expect(causes.first).to_have_text(
                "stocks: Invalid Api-Key, please check the key and try again (HTTP 404, code 5)"
            )
            page.get_by_test_id("show-mismatches").click()
            expect(page.get_by_test_id("mismatch-rows")).to_contain_text("Not compared")
            expect(page.get_by_test_id("mismatch-rows")).not_to_contain_text("agree")

            # ozon_default, found by search: its warehouse chart (27 warehouses: 15 bars + the rest).
            only = search(page, OK)
            expect(only).to_have_attribute("data-status", "complete")
            only.get_by_test_id("account-name").click()
            chart = page.get_by_test_id("warehouse-chart")
            expect(chart).to_be_visible()
            expect(chart.get_by_test_id("warehouse-bar")).to_have_count(15)
            for kind in ("free_to_sell", "promised", "reserved"):
                assert chart.locator(f"rect[data-kind={kind}]").count() == 15
            expect(page.get_by_test_id("warehouse-totals")).to_contain_text("and 12 other warehouses")
            expect(page.get_by_test_id("warehouse-totals")).to_contain_text("All 27 warehouses")
            expect(page.get_by_test_id("history-chart")).to_be_visible()
            # the account's history has its scale and its latest value: the current total stock
            expect(page.get_by_test_id("history-chart").get_by_test_id("chart-axes")).to_be_attached()
            total = sum(
                s.present
                for p in ui_stack.sims[OK].sim.accounts[KEYS[OK][0]].catalogue.products
                for s in p.stocks
            )
            expect(page.get_by_test_id("chart-last")).to_have_text(f"{total:,}")
            expect(page.get_by_test_id("detail-sources")).to_contain_text(
                "/v4/product/info/stocks".lstrip("/")
            )
            detail = page.get_by_test_id("account-detail")
            expect(detail.get_by_test_id("action")).to_have_text("What to do: nothing to do")
            page.screenshot(path=shots / "03-account-warehouse-chart.png", full_page=True)

            # A synthetic account with a reject: its reason one click away, the raw record one more.
            rejected = ui_stack.synthetic["with_rejects"][1]
            search(page, rejected).get_by_test_id("rejects").click()
            reason = page.get_by_test_id("reject-reason")
            expect(reason).to_contain_text("present is negative")
            reason.click()
            expect(page.get_by_test_id("reject-row")).to_contain_text('"present":-3')
            page.screenshot(path=shots / "04-rejects-with-reasons.png", full_page=True)

            # The link to the run opens Airflow's run view, where the report's label says "degraded".
            search(page, FLAKY).get_by_test_id("run-link").click()
            page.wait_for_url(f"**/dags/{DAG_ID}/runs/**")
            page.goto(f"{cluster.url}/dags/{DAG_ID}/runs/{ui_stack.run_id}/tasks/account.report/mapped")
            expect(page.get_by_text(f"{FLAKY} · degraded: warehouse_stocks failed")).to_be_visible()
            expect(page.get_by_text(f"{BAD} · failed: nothing loaded")).to_be_visible()
            page.screenshot(path=shots / "05-run-mapped-report-labels.png", full_page=True)

            # The DAG's tab.
            page.goto(f"{cluster.url}/dags/{DAG_ID}/plugin/ozon-inventory-dag")
            expect(page.get_by_test_id("account-row")).to_have_count(25)
            # narrower than the table, the tab scrolls it: its last column can be brought into view
            page.set_viewport_size({"width": 1400, "height": 1100})
            last = page.locator("[data-testid=accounts] th", has_text="total stock")
            last.scroll_into_view_if_needed()
            box = last.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1400, box
            page.screenshot(path=shots / "06-dag-tab.png", full_page=True)
        finally:
            browser.close()
    # The data behind the page, timed from outside the browser too (page 1 of 9, three times).
    timings = []
    token = cluster.token("viewer")
    for _ in range(3):
        started = time.perf_counter()
        answer = requests.get(
            cluster.url + "/ozon-inventory/api/accounts",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        timings.append(round((time.perf_counter() - started) * 1000, 1))
        assert answer.status_code == 200 and answer.json()["total"] == SYNTHETIC + len(FIRST)
    figures["api_ms"] = timings
    figures["screenshots"] = sorted(p.name for p in shots.iterdir())
    ui_stack.record("page", figures)
    assert len(figures["screenshots"]) == 9
