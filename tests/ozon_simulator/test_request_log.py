"""The request log per Client-Id and the rate-limit citizenship summary built from it."""

from __future__ import annotations

import requests

from ozon_simulator import Account, OzonSimulator, SimulatorConfig, build_catalogue, serve
from tests.conftest import API_KEY, CLIENT_ID

V4 = "/v4/product/info/stocks"
V2_WH = "/v2/warehouse/list"
OTHER_ID, OTHER_KEY = "300400", "other-key"


def _two_accounts(rate_limit: float = 50.0) -> OzonSimulator:
    catalogue = build_catalogue(20, 5, seed=3)
    return OzonSimulator(
        [Account(CLIENT_ID, API_KEY, catalogue), Account(OTHER_ID, OTHER_KEY, build_catalogue(10, 3))],
        SimulatorConfig(rate_limit=rate_limit),
    )


def _post(url: str, method: str, body: dict, client_id: str | None, key: str | None) -> int:
    headers = {k: v for k, v in (("Client-Id", client_id), ("Api-Key", key)) if v is not None}
    return requests.post(url + method, json=body, headers=headers, timeout=5).status_code


def test_every_ozon_request_is_logged_per_client_id():
    running = serve(_two_accounts())
    try:
        url = running.url
        assert _post(url, V4, {"limit": 5, "filter": {}}, CLIENT_ID, API_KEY) == 200
        assert _post(url, V2_WH, {"limit": 10}, CLIENT_ID, API_KEY) == 200
        assert _post(url, V4, {"limit": 5, "filter": {}}, OTHER_ID, OTHER_KEY) == 200
        assert _post(url, V4, {"limit": 5, "filter": {}}, OTHER_ID, "wrong") == 404
        assert _post(url, V4, {"limit": 5, "filter": {}}, None, None) == 401
        assert _post(url, V4, {}, CLIENT_ID, API_KEY) == 400
        requests.get(url + "/__sim/stats", timeout=5)  # control calls are not logged

        mine = running.sim.request_log(CLIENT_ID)
        assert [(e["method"], e["status"]) for e in mine] == [(V4, 200), (V2_WH, 200), (V4, 400)]
        assert all(isinstance(e["time"], float) for e in mine)
        assert [e["time"] for e in mine] == sorted(e["time"] for e in mine)
        other = running.sim.request_log(OTHER_ID)
        assert [e["status"] for e in other] == [200, 404]  # a wrong key still names its Client-Id
        assert [e["status"] for e in running.sim.request_log("-")] == [401]
        assert len(running.sim.request_log()) == 6

        over_http = requests.get(url + "/__sim/requests", params={"client_id": CLIENT_ID}, timeout=5).json()
        assert over_http == mine
        assert len(requests.get(url + "/__sim/requests", timeout=5).json()) == 6
    finally:
        running.stop()


def test_citizenship_counts_429s_and_the_peak_one_second_window():
    running = serve(_two_accounts(rate_limit=5))
    try:
        statuses = [_post(running.url, V4, {"limit": 1, "filter": {}}, CLIENT_ID, API_KEY) for _ in range(8)]
        _post(running.url, V4, {"limit": 1, "filter": {}}, OTHER_ID, OTHER_KEY)
        summary = requests.get(
            running.url + "/__sim/citizenship", params={"client_id": CLIENT_ID}, timeout=5
        ).json()
        assert summary == {
            "requests": 8,
            "responses_429": statuses.count(429),
            "peak_requests_per_1s": 8,
            "per_method": {V4: 8},
        }
        assert 429 in statuses
        assert running.sim.citizenship()["requests"] == 9
        assert running.sim.citizenship("nobody") == {
            "requests": 0,
            "responses_429": 0,
            "peak_requests_per_1s": 0,
            "per_method": {},
        }
        assert requests.post(running.url + "/__sim/stats/reset", timeout=5).status_code == 200
        assert running.sim.request_log() == []
    finally:
        running.stop()


def test_peak_is_a_sliding_window_shorter_than_one_second():
    sim = _two_accounts()
    for t in (100.0, 100.5, 100.99, 101.0, 101.4, 103.0):
        sim.record(t, CLIENT_ID, V4, 200)
    sim.record(100.2, OTHER_ID, V4, 429)
    # 100.5, 100.99, 101.0 and 101.4 are within 0.9 s; 100.0 and 101.0 are a full second apart.
    assert sim.citizenship(CLIENT_ID)["peak_requests_per_1s"] == 4
    everyone = sim.citizenship()
    assert (everyone["requests"], everyone["responses_429"], everyone["peak_requests_per_1s"]) == (7, 1, 4)
    sim.record(100.3, OTHER_ID, V4, 200)  # 100.2, 100.3, 100.5, 100.99, 101.0: five within 0.8 s
    assert sim.citizenship()["peak_requests_per_1s"] == 5
