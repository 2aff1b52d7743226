"""The strict fixed one-second window: at most ``rate_limit`` requests per calendar second."""

from __future__ import annotations

import time

import pytest
import requests

from ozon_simulator import Account, SimulatorConfig, build_catalogue, default_simulator, serve
from ozon_simulator.__main__ import main
from tests.conftest import API_KEY, CLIENT_ID

V4 = "/v4/product/info/stocks"
HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}
BODY = {"limit": 1, "filter": {}}


def _wait_for_second_start() -> None:
    """Start a burst early in a calendar second, so it does not straddle two windows."""
    now = time.time()
    if now % 1 > 0.5:
        time.sleep(1 - now % 1 + 0.01)


def test_fixed_window_allows_rate_limit_per_calendar_second():
    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(rate_limit=5, rate_window="fixed")
    )
    running = serve(sim)
    try:
        session = requests.Session()
        _wait_for_second_start()
        answers = [session.post(running.url + V4, json=BODY, headers=HEADERS, timeout=5) for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        assert [a.headers["Ratelimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0", "0"]
        limited = answers[5]
        assert limited.json()["code"] == 8 and limited.headers["Retry-After"] == "1"
        time.sleep(1 - time.time() % 1 + 0.01)  # the next calendar second: a full budget again
        again = [session.post(running.url + V4, json=BODY, headers=HEADERS, timeout=5) for _ in range(5)]
        assert [a.status_code for a in again] == [200] * 5
    finally:
        running.stop()


def test_fixed_window_is_per_client_id_and_set_over_control_endpoint(simulator):
    simulator.sim.accounts["300400"] = Account("300400", "other-key", build_catalogue(5, 2))
    answer = requests.post(
        simulator.url + "/__sim/config", json={"rate_window": "fixed", "rate_limit": 3}, timeout=5
    )
    assert answer.status_code == 200 and answer.json()["rate_window"] == "fixed"
    _wait_for_second_start()
    statuses = [
        requests.post(simulator.url + V4, json=BODY, headers=HEADERS, timeout=5).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Another Client-Id has its own window: it is not refused for this one's use.
    other = requests.post(
        simulator.url + V4, json=BODY, headers={"Client-Id": "300400", "Api-Key": "other-key"}, timeout=5
    )
    assert other.status_code == 200 and other.headers["Ratelimit-Remaining"] == "2"


def test_bad_rate_window_is_refused(simulator):
    answer = requests.post(simulator.url + "/__sim/config", json={"rate_window": "sliding"}, timeout=5)
    assert answer.status_code == 400 and "rate_window" in answer.json()["message"]
    assert simulator.sim.config.rate_window == "bucket"
    with pytest.raises(ValueError, match="rate_window"):
        SimulatorConfig(rate_window="sliding")
    unknown = requests.post(simulator.url + "/__sim/config", json={"nope": 1}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["message"] == "unknown setting: nope"


def test_cli_takes_rate_window(monkeypatch):
    seen = {}

    def fake_serve(sim, host, port):
        seen["config"] = sim.config
        raise SystemExit(0)

    monkeypatch.setattr("ozon_simulator.__main__.serve", fake_serve)
    with pytest.raises(SystemExit):
        main(["--rate-window", "fixed", "--rate-limit", "10", "--products", "5", "--warehouses", "2"])
    assert seen["config"].rate_window == "fixed" and seen["config"].rate_limit == 10
