"""The page's FastAPI app: Airflow's auth in front of every route, and what each route answers.

The app is mounted as the api-server mounts it; authentication and authorization are Airflow's own
(``requires_access_dag`` with the simple auth manager and real JWTs). The data comes from a target
database that the real stages loaded (``conftest.loaded``) or from synthetic accounts.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ozon_inventory.methods import AUTO_ORDER
from ozon_inventory.ui.queries import AirflowFacts
from tests import clock
from tests.ozon_inventory.ui.conftest import Page, new_database, token
from tests.ozon_inventory.ui.synthetic import insert_accounts

ROUTES = [
    "/api/summary",
    "/api/accounts",
    "/api/accounts/acc_ok",
    "/api/accounts/acc_ok/rejects",
    "/api/accounts/acc_ok/mismatches",
    "/static/ozon-inventory.js",
]


# -- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_caller_is_refused_on_every_route(page, route):
    answer = page.get(route, headers={})
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"detail": "Not authenticated"}


def test_anonymous_person_is_sent_to_login(page):
    answer = page.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("/auth/login")
    assert "next=" in answer.headers["location"]


def test_a_forged_token_is_refused(page):
    answer = page.get("/api/accounts", headers={"Authorization": "Bearer not.a.jwt"})
    assert answer.status_code == 403


def test_user_without_a_role_may_not_read_the_dag(page, auth_manager):
    """The simple auth manager's user with no role ("outsider:" in simple_auth_manager_users) is
    authenticated and may read nothing: 403, as Airflow's own DAG endpoints answer."""
    headers = {"Authorization": f"Bearer {token(auth_manager, 'outsider', None)}"}
    for route in ROUTES:
        answer = page.get(route, headers=headers)
        assert answer.status_code == 403, (route, answer.text)


def test_user_of_another_team_may_not_read_the_dag(page, auth_manager, monkeypatch):
    """Per DAG: with the DAG's bundle owned by team "ozon" (multi-team mode), a viewer of team
    "marketing" is refused and a viewer of team "ozon" may read; the check names ozon_inventory_sync."""
    from airflow.models.dag import DagModel

    asked: list[str] = []

    def team_of(dag_id: str, session: object = None) -> str | None:
        asked.append(dag_id)
        return "ozon" if dag_id == "ozon_inventory_sync" else None

    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(team_of))
    other = {"Authorization": f"Bearer {token(auth_manager, 'ana', 'viewer', ['marketing'])}"}
    same = {"Authorization": f"Bearer {token(auth_manager, 'oleg', 'viewer', ['ozon'])}"}
    assert page.get("/api/accounts", headers=other).status_code == 403
    assert page.get("/api/accounts", headers=same).status_code == 200
    assert set(asked) == {"ozon_inventory_sync"}


def test_viewer_reads_with_a_bearer_token_or_the_ui_cookie(page, auth_manager):
    assert page.get("/api/accounts").status_code == 200
    page.client.cookies.set("_token", token(auth_manager, "ops", "viewer"))
    try:
        assert page.get("/api/summary", headers={}).status_code == 200
    finally:
        page.client.cookies.clear()


# -- what the routes answer ------------------------------------------------------------------------


def test_overview_worst_first_with_sources_requests_and_history(page, loaded):
    page.facts["acc_broken"] = AirflowFacts(
        run_id="manual__broken",
        run_after=datetime.now(UTC),
        run_state="failed",
        map_index=3,
        outcome="failed",
        failed_tasks=("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate"),
    )
    data = page.json("/api/accounts")
    order = [(a["account"], a["status"]) for a in data["accounts"]]
    assert order[:2] == [("acc_broken", "failed"), ("acc_degraded", "degraded")]
    assert {a for a, s in order[2:]} == {"acc_ok", "acc_rejects"} and {s for _, s in order[2:]} == {
        "complete"
    }
    assert data["counts"] == {
        "failed": 1,
        "degraded": 1,
        "stale": 0,
        "pending": 0,
        "complete": 2,
        "removed": 0,
    }
    rows = {a["account"]: a for a in data["accounts"]}

    broken = rows["acc_broken"]
    assert "fetch_stocks" in broken["reason"] and "nothing was ever loaded" in broken["reason"]
    assert broken["run_link"] == "dags/ozon_inventory_sync/runs/manual__broken"
    assert (
        broken["task_link"]
        == "dags/ozon_inventory_sync/runs/manual__broken/tasks/account.fetch_stocks/mapped/3"
    )

    degraded = rows["acc_degraded"]
    # the source never loaded: no "kept the last good rows", no snapshot age
    assert degraded["reason"] == "warehouse_stocks: Internal error (HTTP 503); it never loaded"
    assert degraded["never_loaded"] == ["warehouse_stocks"] and degraded["age_s"] is None
    assert [s["source"] for s in degraded["sources"] if s["missing"]] == ["warehouse_stocks"]

    ok = rows["acc_ok"]
    assert ok["run_id"] == loaded.runs["acc_ok"][-1]
    assert ok["run_link"] == f"dags/ozon_inventory_sync/runs/{loaded.runs['acc_ok'][-1]}"
    assert all(s["as_of"] and s["method"] for s in ok["sources"])
    assert ok["age_s"] is not None and ok["age_s"] < 600
    # the ledger's per-source figures: v4 once (plus the 429's retry), analytics pages, warehouse list, roles
    assert ok["requests"]["responses_429"] == 1 and ok["requests"]["requests"] >= 4
    # total stock over time: the last point is the current total of present over every stock type
    total = sum(s.present for p in loaded.catalogue.products for s in p.stocks)
    assert ok["sparkline"] and ok["sparkline"][-1][1] == total
    assert ok.get("key_expires_at") is None  # no key expiry was read into this database


def test_key_expiry_is_shown_once_the_project_keeps_it(page, loaded):
    assert page.json("/api/accounts")["key_expiry"] is True  # ozon_account_key: schema version 6
    assert {a["account"]: a for a in page.json("/api/accounts")["accounts"]}["acc_ok"][
        "key_expires_at"
    ] is None
    expires = clock.NOW + timedelta(days=60)
    with psycopg.connect(loaded.dsn) as conn:
        conn.execute(
            "INSERT INTO ozon_account_key VALUES ('acc_ok', '1', %s, now(), '{}') ON CONFLICT DO NOTHING",
            (expires,),
        )
    try:
        data = page.json("/api/accounts")
        rows = {a["account"]: a for a in data["accounts"]}
        assert data["key_expiry"] is True
        assert datetime.fromisoformat(rows["acc_ok"]["key_expires_at"]) == expires
        assert rows["acc_degraded"]["key_expires_at"] is None
        assert datetime.fromisoformat(page.json("/api/accounts/acc_ok")["key_expires_at"]) == expires
    finally:
        with psycopg.connect(loaded.dsn) as conn:
            conn.execute("DELETE FROM ozon_account_key WHERE account = 'acc_ok'")


def test_account_detail_chart_sources_and_reject_reasons(page, loaded):
    detail = page.json("/api/accounts/acc_rejects")
    chart = detail["warehouses"]
    rows = loaded.catalogue.rows
    assert chart["totals"]["warehouses"] == 27
    # the chart's bars and "other" add up to the whole FBO stock the load wrote (minus the rejected row)
    bars = chart["bars"] + ([chart["other"]] if chart["other"] else [])
    assert len(chart["bars"]) == 15 and chart["other"]["warehouses"] == 12
    assert sum(b["promised"] for b in bars) == chart["totals"]["promised"]
    assert chart["totals"]["free_to_sell"] <= sum(r.free_to_sell for r in rows) + 3
    assert set(detail["by_source"]) >= {"stocks", "warehouse_stocks", "warehouses"}
    assert detail["by_source"]["warehouse_stocks"]["method"] == "/v2/analytics/stock_on_warehouses"
    assert detail["rejects"] == 1
    (reason,) = detail["reject_reasons"]
    assert reason["source"] == "warehouse_stocks" and reason["rows"] == 1

    listed = page.json(
        "/api/accounts/acc_rejects/rejects", reason=reason["reason"], source="warehouse_stocks"
    )
    assert listed["total"] == 1 and listed["run_id"] == loaded.runs["acc_rejects"][-1]
    (row,) = listed["rows"]
    assert row["reason"] == reason["reason"] and -3 in row["record"].values()
    assert [r["run_id"] for r in detail["runs"]] == loaded.runs["acc_rejects"]


def test_a_failed_source_shows_why_it_failed(page, loaded):
    """The fetch's own words reach the page: the source's row and the account's reason name the
    cause (here Ozon's 503 after the retries; for an answer whose shape changed, its field)."""
    detail = page.json("/api/accounts/acc_degraded")
    failed = detail["by_source"]["warehouse_stocks"]
    assert failed["status"] == "missing" and "HTTP 503: Internal error" in failed["error"]
    assert failed["field"] is None and detail["by_source"]["stocks"]["error"] is None
    # Ozon's words and the last method the fetch tried (which one depends on when the breaker opened)
    (cause,) = detail["causes"]
    assert cause["source"] == "warehouse_stocks" and cause["method"] in AUTO_ORDER["warehouse_stocks"]
    assert (cause["status"], cause["message"], cause["kind"]) == (503, "Internal error", "transient")
    assert detail["reason"] == "warehouse_stocks: Internal error (HTTP 503); it never loaded"
    assert detail["action"].startswith("Ozon did not answer in time (429, 5xx, timeouts): wait")
    assert "clear fetch_warehouse_stocks with its downstream tasks" in detail["action"]


def test_mismatches_and_unknown_account(page):
    assert page.json("/api/accounts/acc_ok/mismatches")["total"] == 0
    answer = page.get("/api/accounts/nobody")
    assert answer.status_code == 404 and "nobody" in answer.json()["detail"]


def test_stale_when_the_snapshot_is_older_than_the_threshold(page, monkeypatch):
    monkeypatch.setenv("OZON_INVENTORY_UI_STALE_AFTER_MIN", "0.001")
    time.sleep(0.1)
    data = page.json("/api/accounts")
    counts = data["counts"]
    assert counts["stale"] == 2 and counts["complete"] == 0  # acc_ok and acc_rejects; degraded stays degraded
    stale = [a for a in data["accounts"] if a["status"] == "stale"]
    assert all(a["action"].startswith("check that ozon_inventory_sync is unpaused") for a in stale)


def test_summary_for_the_dashboard(page):
    data = page.json("/api/summary")
    assert data["total"] == 3 and data["counts"]["degraded"] == 1
    assert [a["account"] for a in data["worst"]] == ["acc_degraded"]


def test_browser_code_is_served(page):
    answer = page.get("/static/ozon-inventory.js")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/javascript")
    assert 'globalThis["Ozon inventory"] = Page' in answer.text
    assert page.get("/static/../app.py").status_code == 404
    assert page.get("/", follow_redirects=False).headers["location"] == "/plugin/ozon-inventory"


def test_two_hundred_accounts_paged_worst_first(pg_server, auth_manager):
    dsn = new_database(pg_server)
    with psycopg.connect(dsn) as conn:
        written = insert_accounts(conn, accounts=200)
    page = Page(dsn, auth_manager)
    started = time.perf_counter()
    first = page.json("/api/accounts", page_size=25)
    cold_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    page.json("/api/accounts", page_size=25)
    warm_ms = (time.perf_counter() - started) * 1000
    print(f"\n/api/accounts with 200 accounts: {cold_ms:.0f} ms (sparklines cached after: {warm_ms:.0f} ms)")
    assert first["total"] == 200 and first["pages"] == 8 and len(first["accounts"]) == 25
    assert first["counts"]["degraded"] == len(written["degraded"]) and first["counts"]["stale"] == len(
        written["stale"]
    )
    head = [a["account"] for a in first["accounts"][: len(written["degraded"]) + len(written["stale"])]]
    assert set(head) == set(written["degraded"]) | set(written["stale"])
    seen = []
    for number in range(1, first["pages"] + 1):
        seen += [a["account"] for a in page.json("/api/accounts", page=number, page_size=25)["accounts"]]
    assert sorted(seen) == written["accounts"]  # every account once
    assert all(len(a["sparkline"]) >= 3 for a in first["accounts"])
    found = page.json("/api/accounts", q="synthetic_199")
    assert [a["account"] for a in found["accounts"]] == ["synthetic_199"]
    only = page.json("/api/accounts", status="degraded")
    assert sorted(a["account"] for a in only["accounts"]) == sorted(written["degraded"])
    assert cold_ms < 5000


def test_empty_target_database(pg_server, auth_manager):
    page = Page(new_database(pg_server), auth_manager)
    data = page.json("/api/accounts")
    assert data["total"] == 0 and data["accounts"] == []
    page.facts["ozon_default"] = AirflowFacts(
        "manual__1", datetime.now(UTC) - timedelta(minutes=1), "running", 0, "running"
    )
    (row,) = page.json("/api/accounts")["accounts"]
    assert row["status"] == "pending" and "running" in row["reason"]


def test_failed_tasks_are_named_causes_first_in_the_dag_order():
    from ozon_inventory.ui.airflow_state import _failed

    bad_key = {
        "account.fetch_stocks": "failed",
        "account.fetch_warehouse_stocks": "failed",
        "account.fetch_warehouses": "failed",
        "account.validate": "failed",
        "account.merge": "upstream_failed",
        "account.load": "upstream_failed",
        "account.report": "failed",
    }
    assert _failed(bad_key) == ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate")
    assert _failed({"account.load": "success", "account.report": "failed"}) == ("report",)
    assert _failed({"account.merge": "upstream_failed", "account.load": "upstream_failed"}) == (
        "merge",
        "load",
    )
    assert _failed({"account.report": "success"}) == ()
