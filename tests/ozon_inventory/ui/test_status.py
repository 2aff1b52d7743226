"""What the page says about each account: the last finished outcome (with a run in progress beside
it), why it failed in Ozon's words, what to do about it, since when, the key's expiry, removal.

Airflow's facts come from ``airflow_state.facts_of`` over runs and task states as the metadata
database holds them; the target database is the one the real stages loaded (``conftest.loaded``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ozon_inventory.exceptions import OzonAuthError
from ozon_inventory.fetch import failure
from ozon_inventory.ui.airflow_state import Run, facts_of
from tests import clock

TASKS = ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate", "merge", "load", "report")
INVALID_KEY = failure(
    OzonAuthError("/v4/product/info/stocks", 404, 5, "Invalid Api-Key, please check the key and try again")
)


def states(**given: str) -> dict[str, str | None]:
    """One account's task states in one run: ``default`` for every task not given."""
    default = given.pop("default", "success")
    return {f"account.{t}": given.get(t, default) for t in TASKS}


BAD_KEY = states(
    fetch_stocks="failed",
    fetch_warehouse_stocks="failed",
    fetch_warehouses="failed",
    validate="failed",
    merge="upstream_failed",
    load="upstream_failed",
    report="failed",
)
DEGRADED = states(fetch_warehouse_stocks="failed", report="failed")


def history(loaded: Any) -> tuple[list[Run], dict[str, Any]]:
    """The runs of ``runs_of`` and the facts Airflow's metadata of them gives."""
    runs, listed, task_states, outcomes = runs_of(loaded)
    return runs, facts_of(runs, listed, task_states, outcomes)


def runs_of(loaded: Any) -> tuple[list[Run], dict[str, Any], dict[Any, Any], dict[Any, Any]]:
    """Four runs, newest first: run 4 in progress (acc_rejects no longer listed), run 3 the one the
    ledger holds, runs 2 and 1 before. acc_badkey failed in every finished run."""
    ledger_run = loaded.runs["acc_degraded"][-1]
    at = [clock.NOW - timedelta(hours=h) for h in (0.1, 1, 2, 3)]
    runs = [
        Run("manual__run4", at[0], "running", at[0]),
        Run(ledger_run, at[1], "failed", at[1]),
        Run("manual__run2", at[2], "failed", at[2]),
        Run("manual__run1", at[3], "failed", at[3]),
    ]
    listed = {
        "manual__run4": ["acc_ok", "acc_degraded", "acc_badkey"],
        ledger_run: ["acc_ok", "acc_rejects", "acc_degraded", "acc_badkey"],
        "manual__run2": ["acc_badkey", "acc_degraded"],
        "manual__run1": ["acc_badkey", "acc_degraded"],
    }
    task_states = {
        # run 4: acc_ok's tasks wait, the others' first fetches already failed
        ("manual__run4", 0): states(default="queued"),
        ("manual__run4", 1): states(default="running", fetch_warehouse_stocks="failed"),
        ("manual__run4", 2): states(default="scheduled", fetch_stocks="failed"),
        (ledger_run, 0): states(),
        (ledger_run, 1): states(),
        (ledger_run, 2): DEGRADED,
        (ledger_run, 3): BAD_KEY,
        ("manual__run2", 0): BAD_KEY,
        ("manual__run2", 1): DEGRADED,
        ("manual__run1", 0): BAD_KEY,
        ("manual__run1", 1): DEGRADED,
    }
    outcomes = {
        (ledger_run, 3): {
            "status": "failed",
            "conn_id": "acc_badkey",
            "errors": {s: INVALID_KEY for s in ("stocks", "warehouse_stocks", "warehouses")},
        }
    }
    return runs, listed, task_states, outcomes


def test_facts_are_the_last_finished_run_with_the_running_one_beside_it(loaded):
    runs, facts = history(loaded)
    bad, degraded, ok = facts["acc_badkey"], facts["acc_degraded"], facts["acc_ok"]
    # run 4's failed fetch says nothing yet: the outcome is run 3's
    assert (bad.run_id, bad.outcome, bad.running_run_id) == (runs[1].run_id, "failed", "manual__run4")
    assert bad.failed_tasks == ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate")
    assert (degraded.outcome, degraded.running_run_id) == ("degraded", "manual__run4")
    assert (ok.outcome, ok.running_run_id) == ("ok", "manual__run4")
    # failing for three finished runs, since the first of them started
    assert (bad.failing_runs, bad.failing_since) == (3, runs[3].started)
    assert (degraded.failing_runs, ok.failing_runs) == (3, 0)
    assert bad.errors["stocks"]["code"] == 5
    assert facts["acc_rejects"].listed is False and ok.listed is True
    assert bad.failing_at_least is False
    # had the DAG older runs than those looked at, a streak reaching the oldest is a lower bound
    capped = facts_of(*runs_of(loaded), window_full=True)
    assert capped["acc_badkey"].failing_at_least is True and capped["acc_degraded"].failing_at_least is True


def test_a_failing_account_stays_failed_and_first_during_a_run(page, loaded):
    _, page.facts = history(loaded)
    rows = {a["account"]: a for a in page.json("/api/accounts")["accounts"]}
    bad = rows["acc_badkey"]
    assert bad["status"] == "failed" and "pending" not in bad["reason"]
    assert bad["running"] == {
        "run_id": "manual__run4",
        "run_link": "dags/ozon_inventory_sync/runs/manual__run4",
    }
    assert rows["acc_degraded"]["status"] == "degraded" and rows["acc_degraded"]["running"]
    assert rows["acc_ok"]["status"] == "complete" and rows["acc_ok"]["running"]["run_id"] == "manual__run4"
    worst = page.json("/api/summary")["worst"]
    assert [w["account"] for w in worst] == ["acc_badkey", "acc_degraded"]
    assert worst[0]["running"]["run_id"] == "manual__run4"


def test_each_account_says_ozons_error_and_the_action_its_kind_calls_for(page, loaded):
    _, page.facts = history(loaded)
    rows = {a["account"]: a for a in page.json("/api/accounts")["accounts"]}
    bad = rows["acc_badkey"]
    assert [(c["source"], c["status"], c["code"], c["kind"]) for c in bad["causes"]] == [
        ("stocks", 404, 5, "auth"),
        ("warehouse_stocks", 404, 5, "auth"),
        ("warehouses", 404, 5, "auth"),
    ]
    assert bad["causes"][0]["message"] == "Invalid Api-Key, please check the key and try again"
    assert bad["reason"].startswith(
        "every source: Invalid Api-Key, please check the key and try again (HTTP 404, code 5) in the last finished run; "
    )
    assert bad["reason"].endswith("nothing was ever loaded")
    # permanent: the key must change first; not "clear the failed fetch task" alone
    assert bad["action"].startswith("fix the Api-Key or its roles in Airflow connection acc_badkey")
    assert "clearing alone fails again" in bad["action"]
    degraded = rows["acc_degraded"]
    assert degraded["action"].startswith("Ozon did not answer in time") and "wait" in degraded["action"]
    assert "kept" not in degraded["reason"]  # its warehouse_stocks never loaded
    assert rows["acc_ok"]["action"] == "nothing to do" and rows["acc_ok"]["causes"] == []


def test_since_when_from_airflow_and_else_from_the_ledger(page, loaded):
    runs, page.facts = history(loaded)
    rows = {a["account"]: a for a in page.json("/api/accounts")["accounts"]}
    assert rows["acc_badkey"]["failing"] == {
        "runs": 3,
        "since": runs[3].started.isoformat(),
        "at_least": False,
    }
    assert rows["acc_ok"]["failing"] is None
    page.facts = {}  # no Airflow history: the ledger's degraded runs tell it
    rows = {a["account"]: a for a in page.json("/api/accounts")["accounts"]}
    failing = rows["acc_degraded"]["failing"]
    assert failing["runs"] == 1 and failing["since"] == rows["acc_degraded"]["loaded_at"]
    assert page.json("/api/accounts/acc_degraded")["failing"] == failing


def test_a_source_that_never_loaded_has_no_age_and_no_mismatches_against_nothing(page):
    row = next(a for a in page.json("/api/accounts")["accounts"] if a["account"] == "acc_degraded")
    assert row["snapshot_as_of"] is None and row["never_loaded"] == ["warehouse_stocks"]
    source = next(s for s in row["sources"] if s["source"] == "warehouse_stocks")
    assert source["as_of"] is None and source["age_s"] is None
    listed = page.json("/api/accounts/acc_degraded/mismatches")
    assert listed["compared"] is False and listed["total"] == 0 == len(listed["rows"])
    assert listed["why"] == "warehouse_stocks never loaded: there is nothing to compare"
    detail = page.json("/api/accounts/acc_degraded")
    assert detail["mismatches_now"] == 0 and detail["mismatches_compared"] is False
    ok = page.json("/api/accounts/acc_ok")  # the header's count is the count listed
    assert ok["mismatches_now"] == page.json("/api/accounts/acc_ok/mismatches")["total"]
    assert ok["mismatches_compared"] is True


def test_an_expiring_key_is_a_warning_badge_in_a_complete_row(page, loaded, monkeypatch):
    with psycopg.connect(loaded.dsn) as conn:
        conn.execute(
            "INSERT INTO ozon_account_key VALUES ('acc_ok', '1', %s, now(), '{}'), ('acc_rejects', '1', %s, now(), '{}')",
            (clock.NOW + timedelta(days=5), clock.NOW + timedelta(days=60)),
        )
    try:
        rows = {a["account"]: a for a in page.json("/api/accounts")["accounts"]}
        ok = rows["acc_ok"]
        assert ok["status"] == "complete" and ok["key_warning"]["expired"] is False
        assert 4 < ok["key_warning"]["days_left"] <= 5
        assert rows["acc_rejects"]["key_warning"] is None  # 60 days: no badge
        assert page.json("/api/accounts/acc_ok")["key_warning"] == ok["key_warning"]
        monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_KEY_WARN_DAYS", "3")  # as the DAG's own warning
        assert (
            next(a for a in page.json("/api/accounts")["accounts"] if a["account"] == "acc_ok")["key_warning"]
            is None
        )
    finally:
        with psycopg.connect(loaded.dsn) as conn:
            conn.execute("DELETE FROM ozon_account_key")


def test_an_account_removed_from_the_accounts_list(page, loaded, monkeypatch):
    _, page.facts = history(loaded)  # the newest run no longer lists acc_rejects
    data = page.json("/api/accounts")
    rows = {a["account"]: a for a in data["accounts"]}
    assert rows["acc_rejects"]["status"] == "removed"
    assert rows["acc_rejects"]["reason"].startswith("removed from the accounts list")
    assert rows["acc_rejects"]["action"] == "nothing to do"
    assert data["accounts"][-1]["account"] == "acc_rejects" and data["counts"]["removed"] == 1
    assert "acc_rejects" not in [w["account"] for w in page.json("/api/summary")["worst"]]
    # the Variable ozon_inventory_accounts, when set, is the list, whatever the runs listed
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ACCOUNTS", '["acc_rejects", "acc_badkey"]')
    page.facts = {}
    counts = page.json("/api/accounts")["counts"]
    assert counts["removed"] == 2 and counts["complete"] == 1  # acc_ok, acc_degraded; acc_rejects stays
    assert [a["account"] for a in page.json("/api/accounts", status="removed")["accounts"]] == [
        "acc_degraded",
        "acc_ok",
    ]


def test_a_degraded_row_links_its_failed_fetch(page, loaded):
    runs, page.facts = history(loaded)
    row = next(a for a in page.json("/api/accounts")["accounts"] if a["account"] == "acc_degraded")
    assert row["task_link"] == (
        f"dags/ozon_inventory_sync/runs/{runs[1].run_id}/tasks/account.fetch_warehouse_stocks/mapped/2"
    )


def test_a_failed_account_whose_key_expired_says_so(page, loaded):
    """The fetches refuse to send an expired key (nothing reaches Ozon, no error of Ozon's): the
    page tells the expiry and the one action, a new key."""
    _, facts = history(loaded)
    page.facts = {"acc_badkey": replace(facts["acc_badkey"], errors={})}
    with psycopg.connect(loaded.dsn) as conn:
        conn.execute(
            "INSERT INTO ozon_account_key VALUES ('acc_badkey', '1', %s, now(), '{}')",
            (clock.NOW - timedelta(days=2),),
        )
    try:
        row = next(a for a in page.json("/api/accounts")["accounts"] if a["account"] == "acc_badkey")
        assert row["status"] == "failed" and [c["kind"] for c in row["causes"]] == ["key_expired"]
        day = (clock.NOW - timedelta(days=2)).date().isoformat()
        assert row["reason"].startswith(f"the Api-Key expired on {day}; ")
        assert row["action"].startswith("issue a new Api-Key in Seller Center → Settings → API keys")
        assert "Airflow connection acc_badkey" in row["action"]
        assert row["key_warning"]["expired"] is True
    finally:
        with psycopg.connect(loaded.dsn) as conn:
            conn.execute("DELETE FROM ozon_account_key")


def test_a_shrink_guard_stop_says_the_last_snapshot_is_whole(page, loaded):
    _, facts = history(loaded)
    stop = "snapshot shrank by more than 50 %"
    page.facts = {
        "acc_ok": replace(
            facts["acc_badkey"],
            run_id="manual__run5",
            started=datetime.now(UTC),  # a run after acc_ok's last load
            failed_tasks=("validate",),
            errors={"validate": {"kind": "shrink_guard", "message": stop, "summary": stop}},
        )
    }
    row = next(a for a in page.json("/api/accounts")["accounts"] if a["account"] == "acc_ok")
    assert row["status"] == "failed" and row["causes"][0]["kind"] == "shrink_guard"
    assert row["reason"] == f"validate: {stop} in the last finished run; the previous snapshot is kept"
    assert row["action"].startswith("nothing was loaded and the last snapshot is whole")
    assert "allow_shrink: true" in row["action"]
