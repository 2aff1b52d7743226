"""``/v1/product/info/warehouse/stocks``: the stock of each of the seller's own FBS/rFBS warehouses,
paged with cursor and ``has_next``, adding up per SKU to v4's fbs and rfbs figures."""

from __future__ import annotations

from collections import Counter

import requests

from tests.conftest import API_KEY, CLIENT_ID

HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}
METHOD = "/v1/product/info/warehouse/stocks"


def all_pages(url: str, warehouse_id: int, limit: int) -> tuple[list[dict], int]:
    """Every entry of one warehouse, following the cursor while ``has_next``; and the pages taken."""
    entries, cursor, pages = [], "", 0
    while True:
        answer = requests.post(
            url + METHOD,
            json={"cursor": cursor, "limit": limit, "warehouse_id": warehouse_id},
            headers=HEADERS,
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        entries += page["stocks"]
        assert len(page["stocks"]) <= limit
        if not page["has_next"]:
            assert page["cursor"] == ""
            return entries, pages
        assert page["cursor"]
        cursor = page["cursor"]


def per_kind(url: str, catalogue) -> dict[str, tuple[Counter, Counter]]:
    """present and reserved per SKU, summed over the seller's warehouses of each kind."""
    out = {"fbs": (Counter(), Counter()), "rfbs": (Counter(), Counter())}
    for warehouse in catalogue.seller_warehouses:
        entries, _ = all_pages(url, warehouse.warehouse_id, 1000)
        present, reserved = out["rfbs" if warehouse.is_rfbs else "fbs"]
        for e in entries:
            assert e["warehouse_id"] == warehouse.warehouse_id
            assert e["free_stock"] == max(e["present"] - e["reserved"], 0)
            present[e["sku"]] += e["present"]
            reserved[e["sku"]] += e["reserved"]
    return out


def v4_totals(catalogue) -> dict[str, tuple[Counter, Counter]]:
    out = {"fbs": (Counter(), Counter()), "rfbs": (Counter(), Counter())}
    for product in catalogue.products:
        for s in product.stocks:
            if s.type in out:
                out[s.type][0][s.sku] += s.present
                out[s.type][1][s.sku] += s.reserved
    return {kind: (+present, +reserved) for kind, (present, reserved) in out.items()}


def test_the_warehouses_add_up_to_v4_and_keep_doing_so(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    assert {w.is_rfbs for w in catalogue.seller_warehouses} == {False, True}
    assert per_kind(simulator.url, catalogue) == v4_totals(catalogue)
    for product in catalogue.products[:40]:  # the stock moves: the split follows
        for s in product.stocks:
            s.present += 3 if s.type in ("fbs", "rfbs") else 0
    catalogue.version += 1
    assert per_kind(simulator.url, catalogue) == v4_totals(catalogue)


def test_pages_follow_the_cursor_and_end_with_has_next_false(simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    warehouse = catalogue.seller_warehouses[0]
    whole, pages = all_pages(simulator.url, warehouse.warehouse_id, 1000)
    limit = max(1, len(whole) // 4)  # a few pages, well within the simulator's 50 requests a second
    paged, many = all_pages(simulator.url, warehouse.warehouse_id, limit)
    assert len(whole) >= 8 and pages == 1 and many == -(-len(whole) // limit) and paged == whole
    assert [e["sku"] for e in whole] == sorted(e["sku"] for e in whole)  # by SKU, each once
    assert len({e["sku"] for e in whole}) == len(whole)


def test_an_unknown_warehouse_is_refused_and_no_warehouse_costs_no_rows(simulator):
    answer = requests.post(
        simulator.url + METHOD, json={"limit": 10, "warehouse_id": 123}, headers=HEADERS, timeout=5
    )
    assert answer.status_code == 404 and answer.json()["code"] == 5
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    assert catalogue.seller_stocks(123) == []
