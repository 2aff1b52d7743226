"""A load the shrink guard stopped waits for an operator: approved, it loads this run's staged answers
(no new request to Ozon) and the ledger keeps who decided; refused, the run fails with the previous
snapshot whole. dag.test() leaves a human-in-the-loop task waiting for an answer recorded from
outside; ``answer`` records it as the REST API's ``PATCH …/hitlDetails`` does (the production
topology test sends the real request)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.conftest import CLIENT_ID
from tests.dags.test_dag_runs import env, run_dag, states  # noqa: F401 - the fixture

TASK = "account.approve_shrink"


def answer(option: str, user: str, asked: dict, timeout: float = 120.0) -> None:
    """Wait for approve_shrink to ask, note the request count then, and answer as ``user``."""
    from airflow import settings
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = settings.Session()
        try:
            ti = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.task_id == TASK, TaskInstance.state == TaskInstanceState.AWAITING_INPUT
                )
            )
            if ti is not None:
                detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                asked.update(subject=detail.subject, body=detail.body, requests=asked["count"]())
                detail.responded_by = {"id": user, "name": user}
                detail.responded_at = timezone.utcnow()
                detail.chosen_options = [option]
                detail.params_input = {}
                session.add(detail)
                handle_event_submit(
                    TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                )
                session.commit()
                return
        finally:
            session.close()
        time.sleep(0.5)
    asked["error"] = "approve_shrink never asked"


def shrunk_run(simulator, pg_dsn, option: str, user: str):
    """A good run, then the catalogue loses most of its products, then a run answered ``option``."""
    assert str(run_dag(10, day=6).state) == "success"
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    catalogue.remove_products(len(catalogue.products) - 40)
    asked: dict = {"count": lambda: len(simulator.sim.request_log())}
    responder = threading.Thread(target=answer, args=(option, user, asked))
    responder.start()
    dag_run = run_dag(11, day=6)
    responder.join(10)
    assert "error" not in asked, asked
    return dag_run, asked, catalogue


def test_an_approved_shrink_loads_this_runs_answers(env, pg_dsn, simulator):  # noqa: F811
    dag_run, asked, catalogue = shrunk_run(simulator, pg_dsn, "Approve", "ops_anna")
    got = states(dag_run)
    assert str(dag_run.state) == "success", got
    assert got[(TASK, 0)] == "success" and got[("account.validate", 0)] == "success"
    assert "ozon_default" in asked["subject"]
    assert "| stocks | products | 175 | 40 | -77% |" in asked["body"], asked["body"]
    assert len(simulator.sim.request_log()) == asked["requests"]  # nothing asked of Ozon after the approval
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ozon_product").fetchone() == (40,)
        expected = sum(len(p.stocks) for p in catalogue.products)
        assert conn.execute("SELECT count(*) FROM ozon_stock_by_type").fetchone() == (expected,)
        (decision,) = conn.execute(
            "SELECT shrink_decision FROM ozon_sync_run WHERE shrink_decision IS NOT NULL"
        ).fetchone()
    assert decision["decision"] == "approved" and decision["by"] == "ops_anna" and decision["at"]
    assert {"source": "stocks", "unit": "products", "before": 175, "after": 40} in decision["figures"]


def test_a_refused_shrink_fails_the_run_and_keeps_the_snapshot(env, pg_dsn, simulator):  # noqa: F811
    dag_run, _, _ = shrunk_run(simulator, pg_dsn, "Reject", "ops_boris")
    got = states(dag_run)
    assert str(dag_run.state) == "failed"
    assert got[(TASK, 0)] == "failed" and got[("account.load", 0)] == "upstream_failed", got
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ozon_product").fetchone() == (175,)
        assert conn.execute("SELECT count(*) FROM ozon_sync_run").fetchone() == (1,)  # only the good run


@pytest.fixture
def no_approval(monkeypatch):
    from ozon_inventory import tasks

    monkeypatch.setattr(
        tasks,
        "DAG_SETTINGS",
        tasks.DAG_SETTINGS.__class__(**{**tasks.DAG_SETTINGS.__dict__, "shrink_approval_hours": 0.0}),
    )


def test_with_approval_off_the_guard_fails_validate_as_before(env, pg_dsn, simulator, no_approval):  # noqa: F811
    assert str(run_dag(10, day=7).state) == "success"
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    catalogue.remove_products(len(catalogue.products) - 40)
    dag_run = run_dag(11, day=7)
    got = states(dag_run)
    assert got[("account.validate", 0)] == "failed" and got[(TASK, 0)] == "upstream_failed", got
    assert got[("account.load", 0)] == "upstream_failed"
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ozon_product").fetchone() == (175,)
