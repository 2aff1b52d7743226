"""The rate budget per Client-Id: in process memory, and shared through a real PostgreSQL."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ozon_inventory import ratelimit
from ozon_inventory.ratelimit import (
    LocalBudget,
    PostgresBudget,
    RateBudgetUnavailable,
    budget_for,
)

WAREHOUSE_LIST = "/v1/warehouse/list"
LIMITS = {WAREHOUSE_LIST: (1.0, 60.0)}


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def fake_budget(**kwargs: Any) -> tuple[LocalBudget, FakeTime]:
    fake = FakeTime()
    return LocalBudget("100200", clock=fake.clock, sleep=fake.sleep, **kwargs), fake


def peak_per_window(times: list[float], width: float = 1.0) -> int:
    """The most requests in any half-open window [t, t + width)."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def spawn() -> Any:
    return multiprocessing.get_context("spawn")


# -- in process ---------------------------------------------------------------------------------


def test_local_budget_spaces_requests_evenly_at_rate_times_headroom():
    budget, fake = fake_budget(rate=50, headroom=1.0)
    sent = []
    for _ in range(101):
        budget.acquire()
        sent.append(fake.now)
    assert sent[0] == 1000.0  # the first goes at once
    assert all(b - a == pytest.approx(0.02) for a, b in itertools.pairwise(sent))
    assert peak_per_window(sent, width=1.0 - 1e-9) == 50  # (less float rounding)

    budget, fake = fake_budget(rate=50, headroom=0.9)
    first, second = budget.acquire(), budget.acquire()
    assert first == 0 and second == pytest.approx(1 / 45)


def test_local_budget_saves_no_burst_while_idle():
    budget, fake = fake_budget(rate=50, headroom=1.0)
    budget.acquire()
    fake.sleep(10)  # idle: no credit is saved up
    assert budget.acquire() == 0
    assert budget.acquire() == pytest.approx(0.02)


def test_local_budget_method_limit_and_its_share_of_the_client_budget():
    budget, fake = fake_budget(rate=50, headroom=1.0, method_limits=LIMITS)
    assert budget.acquire(WAREHOUSE_LIST) == 0
    assert budget.acquire("/v2/warehouse/list") == pytest.approx(0.02)  # no limit of its own
    assert budget.acquire(WAREHOUSE_LIST) == pytest.approx(60.0, abs=0.03)  # once a minute
    assert fake.now == pytest.approx(1060.0, abs=0.03)


def test_local_budget_pause_and_remaining():
    budget, _ = fake_budget(rate=50, headroom=1.0)
    budget.acquire()
    budget.pause(2.5)  # a 429 with Retry-After: 2.5
    assert budget.acquire() == pytest.approx(2.5)
    budget.observe_remaining(3)  # some left: nothing changes
    assert budget.acquire() == pytest.approx(0.02)
    budget.observe_remaining(0)  # none left: wait for the next second
    assert budget.acquire() == pytest.approx(1.0)
    budget.pause(0)
    assert budget.acquire() == pytest.approx(0.02)


def test_a_pause_reaches_threads_already_waiting_for_their_slot():
    budget = LocalBudget("100200", rate=5, headroom=1.0)  # a slot every 200 ms
    budget.acquire()
    done: list[float] = []
    started = time.monotonic()

    def wait_for_slot() -> None:
        budget.acquire()
        done.append(time.monotonic())

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()  # holds the slot at +200 ms
    time.sleep(0.05)
    budget.pause(0.5)  # a 429 seen by another thread
    waiter.join()
    assert done[0] - started >= 0.55 - 0.01  # the slot inside the pause was given up


def test_local_budget_threads_never_exceed_the_window():
    budget = LocalBudget("100200", rate=50, headroom=0.9)
    sent: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 1.2

    def work() -> None:
        while time.monotonic() < stop:
            budget.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak_per_window(sent) <= 46


def test_budget_for_is_process_wide_per_client_id():
    one = budget_for("100200")
    assert isinstance(one, LocalBudget)
    assert budget_for("100200") is one
    assert budget_for("100201") is not one
    assert one.intervals == {"*": pytest.approx(1 / 45)}  # 50/s at the default headroom 0.9
    limited = budget_for("100200", 50, 1.0, LIMITS)
    assert isinstance(limited, LocalBudget)
    assert limited.intervals == {"*": pytest.approx(0.02), WAREHOUSE_LIST: pytest.approx(60.0)}
    ratelimit._registry.clear()
    assert budget_for("100200") is not one
    with pytest.raises(ValueError, match="headroom"):
        budget_for("100200", 50, 1.5)
    with pytest.raises(ValueError, match="positive"):
        budget_for("100200", 50, 0.9, {WAREHOUSE_LIST: (0.0, 60.0)})


# -- shared through PostgreSQL ------------------------------------------------------------------


def slot_in(dsn: str, client_id: str, scope: str = "*") -> float:
    """Seconds from now to the row's next free slot, on the database's clock."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM tat - clock_timestamp())::float8 FROM ozon_rate_budget"
            " WHERE client_id = %s AND scope = %s",
            (client_id, scope),
        ).fetchone()
    assert row is not None
    return float(row[0])


def test_shared_budget_spacing_scopes_and_pause(pg_dsn):
    budget = budget_for("100200", 50, 1.0, LIMITS, database=pg_dsn)
    assert isinstance(budget, PostgresBudget)
    assert "100200" in repr(budget)
    assert budget.acquire() == 0  # creates the table, takes the first slot
    waits = [budget.acquire() for _ in range(20)]
    assert all(0 <= w <= 0.021 for w in waits)
    # evenly spaced: 21 slots of 20 ms lie 0.4 s ahead of the first
    assert sum(waits) >= 0.3

    assert budget.acquire(WAREHOUSE_LIST) >= 0
    assert 59.9 < slot_in(pg_dsn, "100200", WAREHOUSE_LIST) <= 60.0  # the next in a minute

    budget.observe_remaining(5)
    assert slot_in(pg_dsn, "100200") < 0.05
    budget.observe_remaining(0)
    assert 0.95 < slot_in(pg_dsn, "100200") <= 1.0  # everyone waits for the next second
    budget.pause(0.3)  # shorter than the pause already there: changes nothing
    assert 0.9 < slot_in(pg_dsn, "100200") <= 1.0

    other = PostgresBudget("999", pg_dsn, rate=50, headroom=1.0)  # another Client-Id: not paused
    assert other.acquire() == 0
    waited = PostgresBudget("100200", pg_dsn, rate=50, headroom=1.0).acquire()
    assert 0.85 < waited <= 1.0  # another holder of the Client-Id waited for the pause


def _hammer(dsn: str, client_id: str, threads: int, seconds: float, ready: Any, out: Any) -> None:
    """One worker process: ``threads`` threads acquiring for ``seconds`` once every process is ready."""
    budget = budget_for(client_id, 50.0, database=dsn)
    budget.acquire()  # connect (and create the table) before the clock starts
    ready.wait()
    stop = time.time() + seconds
    sent: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        while time.time() < stop:
            budget.acquire()
            with lock:
                sent.append(time.time())

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(sent)


def run_processes(
    target: Callable[..., None], *args_per_process: tuple[Any, ...], barrier: bool = False
) -> list[Any]:
    """Run ``target(*args, [barrier,] queue)`` in one spawned process per args; what each puts."""
    ctx = spawn()
    queue = ctx.Queue()
    ready = (ctx.Barrier(len(args_per_process)),) if barrier else ()
    procs = [ctx.Process(target=target, args=(*args, *ready, queue)) for args in args_per_process]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return results


def test_four_processes_share_one_budget(pg_dsn):
    """4 processes × 2 threads for 2 s at 50/s (default headroom 0.9: 45/s) against one PostgreSQL:
    never more than 50 in a second, however busy the machine. How close to the budget the requests
    come is measured by the benchmark (``scripts/benchmark.py``, its citizenship figures), not here."""
    results = run_processes(_hammer, *[(pg_dsn, "100200", 2, 2.0)] * 4, barrier=True)
    sent = sorted(t for times in results for t in times)
    assert all(times for times in results)  # every process got its share
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    peak = peak_per_window(sent)
    print(f"\n4 processes × 2 threads: {len(sent)} requests, {rate:.1f}/s, peak {peak} per 1-s window")
    assert peak <= 50


def _pause_then_report(dsn: str, client_id: str, seconds: float, out: Any) -> None:
    budget_for(client_id, 50.0, database=dsn).pause(seconds)
    out.put(time.time())


def test_a_pause_in_one_process_delays_the_others(pg_dsn):
    budget = budget_for("100200", 50.0, database=pg_dsn)
    budget.acquire()
    [paused_at] = run_processes(_pause_then_report, (pg_dsn, "100200", 1.0))
    budget.acquire()
    went = time.time()
    assert 1.0 - 0.02 <= went - paused_at < 1.3


def test_budget_table_survives_concurrent_creation(pg_dsn):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_use(n: int) -> None:
        budget = PostgresBudget(f"c{n}", pg_dsn)  # a connection of its own
        barrier.wait()
        try:
            budget.acquire()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ozon_rate_budget").fetchone() == (8,)


def test_budget_recovers_from_a_dropped_connection(pg_dsn):
    budget = PostgresBudget("100200", pg_dsn)
    budget.acquire()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'ozon_inventory rate budget'"
        )
    assert budget.acquire() >= 0  # reconnected
    budget.close()


def test_a_budget_table_gone_names_the_migration_and_creates_nothing(pg_dsn):
    """The fetch runs no DDL (only the migrate task does): a missing table is named, with the fix."""
    budget = PostgresBudget("100200", pg_dsn)
    budget.acquire()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE ozon_rate_budget")
    with pytest.raises(RateBudgetUnavailable, match=r'"ozon_rate_budget" does not exist.*migrate task'):
        budget.acquire()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('ozon_rate_budget')").fetchone() == (None,)
    budget.close()


def test_unreachable_budget_database_fails_fast_naming_it_without_the_password():
    from scripts.localpg import free_port

    port = free_port()  # nothing listens there
    dsn = f"postgresql://ozon:s3cret-pw@127.0.0.1:{port}/inventory?connect_timeout=2"
    budget = budget_for("100200", database=dsn)
    started = time.monotonic()
    with pytest.raises(RateBudgetUnavailable) as caught:
        budget.acquire()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"database inventory on 127.0.0.1:{port} as ozon" in message
    assert "100200" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(budget)
