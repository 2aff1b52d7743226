"""The simulator plays Ozon's documented behaviour: auth, validation, paging, limits and faults."""

from __future__ import annotations

import json

import pytest
import requests

from ozon_simulator import Fault, SimulatorConfig, build_catalogue, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID

V4 = "/v4/product/info/stocks"
HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}


def post(sim, method, body, headers=HEADERS):
    return requests.post(sim.url + method, data=json.dumps(body), headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("headers", "status", "code", "text"),
    [
        ({}, 401, 16, "Client-Id and Api-Key headers are required"),
        (
            {"Client-Id": "abc", "Api-Key": API_KEY},
            400,
            3,
            "Client-Id header value should be positive integer",
        ),
        (
            {"Client-Id": CLIENT_ID, "Api-Key": "wrong"},
            404,
            5,
            "Invalid Api-Key, please check the key and try again",
        ),
    ],
)
def test_auth_errors_have_ozon_bodies(simulator, headers, status, code, text):
    answer = post(simulator, V4, {"limit": 1, "filter": {}}, headers)
    assert (answer.status_code, answer.json()["code"], answer.json()["message"]) == (status, code, text)


def test_missing_role_is_403_code_7():
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY)
    sim.accounts[CLIENT_ID].methods = frozenset({V4})
    running = serve(sim)
    try:
        answer = post(running, "/v2/analytics/stock_on_warehouses", {"limit": 10})
        assert answer.status_code == 403
        assert answer.json()["code"] == 7
        assert post(running, V4, {"limit": 1, "filter": {}}).status_code == 200
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("method", "body"),
    [
        (V4, {"filter": {}}),
        (V4, {"limit": 1001, "filter": {}}),
        (V4, {"limit": 10}),
        (V4, {"limit": 10, "filter": {"visibility": "NOPE"}}),
        ("/v1/analytics/stocks", {"skus": []}),
        ("/v1/analytics/stocks", {"skus": [str(i) for i in range(101)]}),
        ("/v1/warehouse/list", {"limit": 201}),
        ("/v1/warehouse/list", {}),
        ("/v2/warehouse/list", {"limit": 0}),
        ("/v2/analytics/stock_on_warehouses", {"offset": 0}),
    ],
)
def test_invalid_bodies_are_400_code_3(simulator, method, body):
    answer = post(simulator, method, body)
    assert answer.status_code == 400
    assert answer.json()["code"] == 3


def test_not_json_body_is_400(simulator):
    answer = requests.post(simulator.url + V4, data=b"{nope", headers=HEADERS, timeout=5)
    assert answer.status_code == 400 and answer.json()["code"] == 3


@pytest.mark.parametrize("last_page", ["empty", "opaque"])
def test_v4_cursor_paging_both_last_page_behaviours(last_page):
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(last_page=last_page))
    running = serve(sim)
    try:
        cursor, seen, pages = "", [], []
        while True:
            data = post(running, V4, {"cursor": cursor, "limit": 100, "filter": {}}).json()
            pages.append(data)
            seen += [i["product_id"] for i in data["items"]]
            if not data["items"] or not data["cursor"]:
                break
            cursor = data["cursor"]
        assert len(seen) == len(set(seen)) == 175
        assert pages[0]["total"] == pages[0]["total_items"] == 175
        if last_page == "empty":
            assert [len(p["items"]) for p in pages] == [100, 75] and pages[-1]["cursor"] == ""
        else:
            assert [len(p["items"]) for p in pages] == [100, 75, 0]
            assert pages[1]["cursor"] != ""
    finally:
        running.stop()


def test_v4_filters(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    product = catalogue.products[5]
    by_offer = post(simulator, V4, {"limit": 10, "filter": {"offer_id": [product.offer_id]}}).json()
    assert [i["product_id"] for i in by_offer["items"]] == [product.product_id]
    by_id = post(simulator, V4, {"limit": 10, "filter": {"product_id": [str(product.product_id)]}}).json()
    assert by_id["items"] == by_offer["items"]
    archived = post(simulator, V4, {"limit": 1000, "filter": {"visibility": "ARCHIVED"}}).json()
    assert archived["total"] == sum(p.visibility != "VISIBLE" for p in catalogue.products)


def test_catalogue_is_consistent_across_methods():
    catalogue = build_catalogue(2000, 30, seed=7, rows_per_sku=10)
    assert len({w.name for w in catalogue.ozon_warehouses}) == 30
    assert 15_000 < len(catalogue.rows) < 25_000
    for product in catalogue.products:
        for stock in product.stocks:
            assert stock.sku > 2**31
            if stock.type == "fbo":
                rows = catalogue.rows_of_sku(stock.sku)
                assert sum(r.free_to_sell for r in rows) == stock.present - stock.reserved
                assert sum(r.reserved for r in rows) == stock.reserved
    offers = "".join(p.offer_id for p in catalogue.products)
    for char in ',"\\\t ё*':
        assert char in offers
    again = build_catalogue(2000, 30, seed=7, rows_per_sku=10)
    assert [(r.sku, r.warehouse, r.free_to_sell) for r in again.rows] == [
        (r.sku, r.warehouse, r.free_to_sell) for r in catalogue.rows
    ]


def test_old_system_dataset_shape(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    assert len(catalogue.products) == 175
    assert len(catalogue.rows) == 511
    assert len({r.warehouse for r in catalogue.rows}) == 27
    names = {w.name for w in catalogue.ozon_warehouses}
    assert {"САНКТ_ПЕТЕРБУРГ_РФЦ", "ХОРУГВИНО_РФЦ", "СПБ_БУГРЫ_РФЦ", "МИНСК_МПСЦ", "ЕРЕВАН_МРФЦ"} <= names


def test_rate_limit_429_with_retry_after_and_remaining_header():
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(rate_limit=5))
    running = serve(sim)
    try:
        answers = [post(running, V4, {"limit": 1, "filter": {}}) for _ in range(8)]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        limited = answers[statuses.index(429)]
        assert limited.json() == {
            "code": 8,
            "message": "You have reached request rate limit per second",
            "details": [],
        }
        assert int(limited.headers["Retry-After"]) >= 1
        assert all("Ratelimit-Remaining" in a.headers for a in answers)
        assert [int(a.headers["Ratelimit-Remaining"]) for a in answers[:3]] == [4, 3, 2]
    finally:
        running.stop()


def test_v1_warehouse_list_is_one_request_a_minute(simulator):
    assert post(simulator, "/v1/warehouse/list", {"limit": 200}).status_code == 200
    second = post(simulator, "/v1/warehouse/list", {"limit": 200})
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 30


def test_v1_warehouse_list_without_limit_when_configured():
    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(v1_warehouse_list_requires_limit=False)
    )
    running = serve(sim)
    try:
        answer = post(running, "/v1/warehouse/list", {})
        assert answer.status_code == 200 and len(answer.json()["result"]) == 3
    finally:
        running.stop()


def test_faults_over_control_endpoint(simulator):
    faults = [{"method": V4, "kind": "status", "status": 502, "times": 2}]
    assert requests.post(simulator.url + "/__sim/faults", json=faults, timeout=5).status_code == 200
    statuses = [post(simulator, V4, {"limit": 1, "filter": {}}).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    requests.post(
        simulator.url + "/__sim/faults", json=[{"method": V4, "kind": "obsolete", "times": -1}], timeout=5
    )
    gone = post(simulator, V4, {"limit": 1, "filter": {}})
    assert gone.status_code == 404 and gone.json()["message"] == "Obsolete method cannot be used"
    requests.delete(simulator.url + "/__sim/faults", timeout=5)
    assert post(simulator, V4, {"limit": 1, "filter": {}}).status_code == 200
    stats = requests.get(simulator.url + "/__sim/stats", timeout=5).json()
    assert stats["requests"][V4] == 5


def test_unknown_fault_kind_is_refused(simulator):
    answer = requests.post(simulator.url + "/__sim/faults", json=[{"method": V4, "kind": "boom"}], timeout=5)
    assert answer.status_code == 400 and "boom" in answer.json()["message"]
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(V4, "boom")


def test_shape_faults_rename_fields_where_the_path_says(simulator):
    """``rename`` walks a dotted path from the answer's root into every list on the way; ``count``
    limits it to the first elements of the first list; ``to`` "" drops the field."""
    faults = [
        {"method": V4, "kind": "rename", "field": "items.stocks", "count": 2, "times": 1},
        {"method": V4, "kind": "rename", "field": "items.stocks.present", "to": "", "times": 1},
        {"method": V4, "kind": "rename", "field": "cursor", "to": "next", "times": 1},
    ]
    requests.post(simulator.url + "/__sim/faults", json=faults, timeout=5)
    items = post(simulator, V4, {"limit": 5, "filter": {}}).json()["items"]
    assert ["stocks_v2" in i for i in items] == [True, True, False, False, False]
    assert "stocks" not in items[0] and "stocks" in items[2]
    for _ in range(2):  # the faults take the next answers, one each, in the order given
        answer = post(simulator, V4, {"limit": 5, "filter": {}}).json()
    assert "next" in answer and "cursor" not in answer
    with pytest.raises(ValueError, match="needs field"):
        Fault(V4, "rename")


def test_error_bodies_trickles_and_broken_gzip(simulator):
    import gzip
    import time
    import zlib

    simulator.sim.add_fault(Fault(V4, "error_body", code=7, message="Company is blocked"))
    blocked = post(simulator, V4, {"limit": 1, "filter": {}})
    assert blocked.status_code == 200 and blocked.json() == {
        "code": 7,
        "message": "Company is blocked",
        "details": [],
    }

    simulator.sim.add_fault(Fault(V4, "bad_gzip"))
    raw = requests.post(
        simulator.url + V4, json={"limit": 1, "filter": {}}, headers=HEADERS, stream=True, timeout=5
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    with pytest.raises(zlib.error):
        gzip.decompress(raw.raw.read(decode_content=False))

    simulator.sim.add_fault(Fault(V4, "trickle", delay=1.0))
    started = time.monotonic()
    slow = post(simulator, V4, {"limit": 20, "filter": {}})
    assert slow.status_code == 200 and len(slow.json()["items"]) == 20
    assert time.monotonic() - started >= 0.9  # every byte came, spread over the delay

    simulator.sim.configure({"compress": True})
    plain = requests.post(simulator.url + V4, json={"limit": 1, "filter": {}}, headers=HEADERS, timeout=5)
    assert plain.headers["Content-Encoding"] == "gzip" and len(plain.json()["items"]) == 1


def test_catalogue_changes_over_control_endpoint(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    before = [(r.sku, r.free_to_sell) for r in catalogue.rows]
    changed = requests.post(
        simulator.url + "/__sim/catalogue", json={"action": "change", "fraction": 0.1}, timeout=5
    )
    assert changed.json()["changed_rows"] == 51
    after = [(r.sku, r.free_to_sell) for r in catalogue.rows]
    assert sum(a != b for a, b in zip(before, after, strict=True)) > 0
    removed = requests.post(
        simulator.url + "/__sim/catalogue", json={"action": "remove", "count": 5}, timeout=5
    )
    assert len(removed.json()["removed_products"]) == 5 and len(catalogue.products) == 170
