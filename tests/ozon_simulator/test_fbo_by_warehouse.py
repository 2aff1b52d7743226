"""/v1/product/info/stocks-by-warehouse/fbo: FBO stock per SKU × Ozon warehouse, in every form."""

from __future__ import annotations

from collections import defaultdict

import pytest
import requests

from ozon_simulator import Fault, SimulatorConfig, build_catalogue, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID

FBO = "/v1/product/info/stocks-by-warehouse/fbo"
HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}


def post(running, body, method=FBO):
    return requests.post(running.url + method, json=body, headers=HEADERS, timeout=5)


def _all_entries(running, limit=100, rows_key="products", **filters):
    cursor, entries, pages = "", [], 0
    while True:
        answer = post(running, {"cursor": cursor, "limit": limit, **filters})
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert set(data) == {"cursor", "has_next", rows_key}
        entries += data[rows_key]
        pages += 1
        if not data["has_next"]:
            assert data["cursor"] == ""
            return entries, pages
        cursor = data["cursor"]


def test_entries_add_up_to_v4_fbo_stock_with_analytics_warehouse_ids(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    entries, pages = _all_entries(simulator)
    assert len(entries) == len(catalogue.rows) == 511 and pages == 6
    assert len({(e["sku"], e["warehouse_id"]) for e in entries}) == 511
    present, reserved = defaultdict(int), defaultdict(int)
    for e in entries:
        assert set(e) == {"offer_id", "present", "product_id", "reserved", "sku", "warehouse_id"}
        assert all(
            isinstance(e[k], int) for k in ("present", "product_id", "reserved", "sku", "warehouse_id")
        )
        present[e["sku"]] += e["present"]
        reserved[e["sku"]] += e["reserved"]
    v4 = post(simulator, {"limit": 1000, "filter": {}}, "/v4/product/info/stocks").json()
    fbo = {s["sku"]: s for item in v4["items"] for s in item["stocks"] if s["type"] == "fbo"}
    for sku, stock in fbo.items():
        assert (present[sku], reserved[sku]) == (stock["present"], stock["reserved"]), sku
    assert set(present) <= set(fbo)
    # Warehouse ids are those /v1/analytics/stocks gives for the same SKUs.
    skus = sorted(present)[:100]
    analytics = post(simulator, {"skus": [str(s) for s in skus]}, "/v1/analytics/stocks").json()["items"]
    assert {(i["sku"], i["warehouse_id"]) for i in analytics} == {
        (e["sku"], e["warehouse_id"]) for e in entries if e["sku"] in set(skus)
    }


def test_filters_by_skus_or_offer_ids(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    row = catalogue.rows[0]
    other = catalogue.rows[-1]
    offer = catalogue.product_of_sku(other.sku).offer_id  # with commas, quotes or tabs: any Unicode
    entries, _ = _all_entries(simulator, skus=[str(row.sku)], offer_ids=[offer])
    assert {e["sku"] for e in entries} == {row.sku, other.sku}
    assert len(entries) == len(catalogue.rows_of_sku(row.sku)) + len(catalogue.rows_of_sku(other.sku))
    as_numbers, _ = _all_entries(simulator, skus=[row.sku])  # int64 as a JSON number works too
    assert {e["sku"] for e in as_numbers} == {row.sku}
    assert _all_entries(simulator, skus=["1"])[0] == []


def test_empty_filter_is_all_products_or_an_error_as_configured(simulator):
    assert post(simulator, {"limit": 10}).status_code == 200
    assert post(simulator, {"limit": 10, "skus": None, "offer_ids": []}).status_code == 200
    requests.post(simulator.url + "/__sim/config", json={"fbo_by_warehouse_requires_filter": True}, timeout=5)
    refused = post(simulator, {"limit": 10})
    assert refused.status_code == 400 and refused.json()["code"] == 3
    assert "offer_ids or skus" in refused.json()["message"]
    sku = simulator.sim.accounts[CLIENT_ID].catalogue.rows[0].sku
    assert post(simulator, {"limit": 10, "skus": [str(sku)]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "invalid GetProductInfoStocksByWarehouseFboRequest.Limit: value must be inside range [1, 1000]"),
        (
            {"limit": 1001},
            "invalid GetProductInfoStocksByWarehouseFboRequest.Limit: value must be inside range [1, 1000]",
        ),
        (
            {"limit": 10, "skus": [str(i) for i in range(1001)]},
            "invalid GetProductInfoStocksByWarehouseFboRequest.Skus: value must contain no more than 1000 item(s)",
        ),
        ({"limit": 10, "skus": ["abc"]}, 'proto: invalid value for int64 field skus: "abc"'),
        ({"limit": 10, "cursor": "nope"}, "invalid cursor"),
    ],
)
def test_invalid_requests(simulator, body, message):
    answer = post(simulator, body)
    assert answer.status_code == 400
    assert answer.json() == {"code": 3, "message": message, "details": []}


@pytest.mark.parametrize("form", ["products", "items", "products_strings", "items_strings"])
def test_every_form_carries_the_same_entries(form):
    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(fbo_by_warehouse_form=form)
    )
    running = serve(sim)
    try:
        key = "items" if form.startswith("items") else "products"
        entries, _ = _all_entries(running, limit=1000, rows_key=key)
        expected = [
            (r.sku, sim.accounts[CLIENT_ID].catalogue.ozon_warehouses[r.warehouse].warehouse_id, r.present)
            for r in sim.accounts[CLIENT_ID].catalogue.rows
        ]
        assert [(int(e["sku"]), int(e["warehouse_id"]), int(e["present"])) for e in entries] == expected
        kind = str if form.endswith("_strings") else int
        assert all(
            isinstance(e[k], kind) for e in entries for k in ("sku", "product_id", "present", "reserved")
        )
    finally:
        running.stop()


def test_bad_form_is_refused(simulator):
    answer = requests.post(simulator.url + "/__sim/config", json={"fbo_by_warehouse_form": "rows"}, timeout=5)
    assert answer.status_code == 400 and "fbo_by_warehouse_form" in answer.json()["message"]


def test_faults_apply_to_the_method(simulator):
    first = post(simulator, {"limit": 10}).json()
    simulator.sim.set_faults([Fault(FBO, "status", status=503), Fault(FBO, "repeat_cursor")])
    assert post(simulator, {"limit": 10}).status_code == 503
    stuck = post(simulator, {"limit": 10, "cursor": first["cursor"]}).json()
    assert stuck["cursor"] == first["cursor"] and stuck["has_next"]  # paging would never advance
    moved = post(simulator, {"limit": 10, "cursor": first["cursor"]}).json()
    assert moved["cursor"] not in ("", first["cursor"])
    simulator.sim.set_faults([Fault(FBO, "obsolete")])
    gone = post(simulator, {"limit": 10})
    assert gone.status_code == 404 and gone.json()["message"] == "Obsolete method cannot be used"


def test_changes_keep_the_sums():
    catalogue = build_catalogue(300, 12, seed=5, rows_per_sku=4)
    catalogue.change_stock(0.2, seed=9)
    catalogue.remove_products(7)
    for product in catalogue.products:
        for stock in product.stocks:
            if stock.type == "fbo":
                rows = catalogue.rows_of_sku(stock.sku)
                assert sum(r.present for r in rows) == stock.present
                assert sum(r.reserved for r in rows) == stock.reserved
