"""The Ozon client over real HTTP against the simulator: paging, retries, limits, errors, secrets."""

from __future__ import annotations

import logging
import time

import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import (
    OzonApiError,
    OzonAuthError,
    OzonMethodDown,
    OzonMethodUnavailable,
    OzonPagingError,
    OzonSnapshotChanged,
    OzonTransientError,
)
from ozon_inventory.methods import (
    METHODS,
    V1_ANALYTICS_STOCKS,
    V1_WAREHOUSE_LIST,
    V2_STOCK_ON_WAREHOUSES,
    V2_WAREHOUSE_LIST,
    V4_STOCKS,
)
from ozon_simulator import Fault, SimulatorConfig, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID


def products(pages):
    return [item["product_id"] for page in pages for item in page.data["items"]]


@pytest.mark.parametrize(("last_page", "requests_made"), [("empty", 5), ("opaque", 6)])
def test_v4_paging_ends_with_either_last_page(last_page, requests_made):
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(last_page=last_page))
    running = serve(sim)
    try:
        client = OzonClient(running.url, CLIENT_ID, API_KEY, rate_limit=500)
        pages = list(client.pages(METHODS[V4_STOCKS], limit=35))  # 175 = 5 full pages
        assert sorted(products(pages)) == sorted(
            p.product_id for p in sim.accounts[CLIENT_ID].catalogue.products
        )
        assert (
            client.stats[V4_STOCKS].requests == requests_made == sim.stats_snapshot()["requests"][V4_STOCKS]
        )
    finally:
        running.stop()


def test_v4_short_page_ends_paging_without_an_extra_request(client, simulator):
    pages = list(client.pages(METHODS[V4_STOCKS], limit=1000))
    assert len(pages) == 1 and len(products(pages)) == 175
    assert pages[0].raw.startswith(b"{") and pages[0].request["limit"] == 1000


def test_repeated_cursor_is_an_error_naming_the_method(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "repeat_cursor", times=-1, after=1))
    with pytest.raises(OzonPagingError, match=r"/v4/product/info/stocks gave cursor .* again"):
        list(client.pages(METHODS[V4_STOCKS], limit=10))
    assert client.stats[V4_STOCKS].requests == 2


def test_page_cap_stops_paging(client):
    client.max_pages = 3
    with pytest.raises(OzonPagingError, match="more than 3 pages"):
        list(client.pages(METHODS[V4_STOCKS], limit=10))


def test_catalogue_changing_between_pages_is_detected(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "mutate", times=1))
    with pytest.raises(OzonSnapshotChanged, match="changed while paging"):
        list(client.pages(METHODS[V4_STOCKS], limit=50))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(V4_STOCKS, "status", status=500, times=2),
        Fault(V4_STOCKS, "status", status=503, times=1),
        Fault(V4_STOCKS, "html", times=2),
        Fault(V4_STOCKS, "malformed_json", times=2),
        Fault(V4_STOCKS, "truncated", times=2),
        Fault(V4_STOCKS, "slow", delay=1.5, times=1),
        Fault(V4_STOCKS, "rate_limit", retry_after=1, times=2),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
def test_transient_faults_are_retried(client, simulator, fault):
    client.timeout = 0.5
    times = fault.times
    simulator.sim.add_fault(fault)
    started = time.monotonic()
    pages = list(client.pages(METHODS[V4_STOCKS], limit=1000))
    assert len(products(pages)) == 175
    stat = client.stats[V4_STOCKS]
    assert stat.requests == times + 1 and stat.retries == times and stat.errors == times
    if fault.kind == "rate_limit":
        assert time.monotonic() - started >= times * fault.retry_after * 0.9


def test_retries_run_out_with_a_clear_error(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "status", status=502, times=-1))
    client.max_retries = 3
    with pytest.raises(
        OzonTransientError, match=r"/v4/product/info/stocks failed after 4 attempts: HTTP 502"
    ):
        list(client.pages(METHODS[V4_STOCKS]))
    assert simulator.sim.stats_snapshot()["requests"][V4_STOCKS] == 4


@pytest.mark.parametrize(
    ("client_id", "api_key", "error", "text"),
    [
        (
            "abc",
            API_KEY,
            OzonAuthError,
            "HTTP 400, code 3: Client-Id header value should be positive integer",
        ),
        (CLIENT_ID, "wrong-key", OzonAuthError, "HTTP 404, code 5: Invalid Api-Key"),
    ],
)
def test_auth_errors_fail_at_once(simulator, client_id, api_key, error, text):
    client = OzonClient(simulator.url, client_id, api_key, backoff=0.01)
    with pytest.raises(error, match=text) as caught:
        list(client.pages(METHODS[V4_STOCKS]))
    assert caught.value.method == V4_STOCKS
    assert simulator.sim.stats_snapshot()["requests"][V4_STOCKS] == 1


def test_missing_role_fails_at_once(simulator):
    simulator.sim.accounts[CLIENT_ID].methods = frozenset({V4_STOCKS})
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY)
    with pytest.raises(OzonAuthError, match="HTTP 403, code 7: Api-Key is missing a required role"):
        list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES]))


def test_bad_request_fails_at_once(client, simulator):
    with pytest.raises(OzonApiError, match="HTTP 400, code 3: .*visibility") as caught:
        list(client.pages(METHODS[V4_STOCKS], request={"filter": {"visibility": "BOGUS"}}))
    assert caught.value.permanent


def test_switched_off_method_is_recognised(client, simulator):
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "obsolete", times=-1))
    with pytest.raises(OzonMethodUnavailable, match="Obsolete method cannot be used"):
        list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES]))


def test_stock_on_warehouses_offset_pages_in_parallel(client, simulator):
    pages = list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50))
    rows = [r for p in pages for r in p.data["result"]["rows"]]
    assert len(rows) == 511 == len({(r["sku"], r["warehouse_name"]) for r in rows})
    assert [p.number for p in pages] == list(range(1, 12))
    minimum = 511 // 50 + 1
    assert minimum <= client.stats[V2_STOCK_ON_WAREHOUSES].requests <= minimum + client.workers - 1


def test_analytics_stocks_in_sku_batches(client, simulator):
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    skus = [s.sku for p in catalogue.products for s in p.stocks if s.type == "fbo"]
    pages = list(client.pages(METHODS[V1_ANALYTICS_STOCKS], skus=skus))
    assert client.stats[V1_ANALYTICS_STOCKS].requests == -(-len(skus) // 100)
    assert sum(p.rows for p in pages) == 511
    assert all(len(p.request["skus"]) <= 100 for p in pages)


def test_warehouse_lists(client, simulator):
    v1 = list(client.pages(METHODS[V1_WAREHOUSE_LIST]))
    v2 = list(client.pages(METHODS[V2_WAREHOUSE_LIST], limit=2))
    assert [w["warehouse_id"] for w in v1[0].data["result"]] == [
        w["warehouse_id"] for p in v2 for w in p.data["warehouses"]
    ]
    assert client.stats[V1_WAREHOUSE_LIST].requests == 1 and client.stats[V2_WAREHOUSE_LIST].requests == 2


def test_rate_budget_is_reached_not_exceeded():
    sim = default_simulator(client_id="555", api_key=API_KEY, config=SimulatorConfig(rate_limit=40))
    running = serve(sim)
    try:
        client = OzonClient(running.url, "555", API_KEY, rate_limit=40, workers=4)
        skus = list(range(1, 100 * 100 + 1))  # 100 batches of 100 unknown SKUs: 100 requests
        started = time.monotonic()
        list(client.pages(METHODS[V1_ANALYTICS_STOCKS], skus=skus))
        elapsed = time.monotonic() - started
        stat = client.stats[V1_ANALYTICS_STOCKS]
        assert stat.requests == 100 and stat.errors == 0  # no 429: the budget kept under the limit
        assert stat.rate >= 0.9 * 40, f"reached {stat.rate:.1f}/s of 40/s in {elapsed:.2f}s"
    finally:
        running.stop()


def test_api_key_never_in_logs_errors_or_reprs(simulator, caplog):
    caplog.set_level(logging.DEBUG)
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, backoff=0.01, max_retries=1)
    simulator.sim.add_fault(Fault(V4_STOCKS, "status", status=500, times=-1))
    with pytest.raises(OzonTransientError) as caught:
        list(client.pages(METHODS[V4_STOCKS]))
    bad = OzonClient(simulator.url, CLIENT_ID, API_KEY + "x")
    with pytest.raises(OzonAuthError) as denied:
        list(bad.pages(METHODS[V2_WAREHOUSE_LIST]))
    texts = [caplog.text, str(caught.value), repr(caught.value), str(denied.value), repr(client), str(client)]
    assert "ENDPOINT_USAGE method=/v4/product/info/stocks status=500" in caplog.text
    assert not any(API_KEY in text for text in texts)


def test_int64_and_string_numbers_are_accepted_in_requests(client, simulator):
    product = simulator.sim.accounts[CLIENT_ID].catalogue.products[3]
    pages = list(
        client.pages(
            METHODS[V4_STOCKS], request={"filter": {"product_id": [product.product_id], "visibility": "ALL"}}
        )
    )
    assert products(pages) == [product.product_id]


@pytest.mark.parametrize("total_fields", ["total_items", "total", "both"])
def test_total_or_total_items_either_works(total_fields):
    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(total_fields=total_fields)
    )
    running = serve(sim)
    try:
        client = OzonClient(running.url, CLIENT_ID, API_KEY, rate_limit=500)
        assert len(products(client.pages(METHODS[V4_STOCKS], limit=100))) == 175
        sim.add_fault(Fault(V4_STOCKS, "mutate", times=1))
        with pytest.raises(OzonSnapshotChanged):
            list(client.pages(METHODS[V4_STOCKS], limit=100))
    finally:
        running.stop()


def test_expected_rows_keep_offset_paging_at_the_minimum(client, simulator):
    list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50, expected_rows=511))
    assert client.stats[V2_STOCK_ON_WAREHOUSES].requests == 511 // 50 + 1  # nothing past the end
    client.stats.clear()
    rows = sum(
        p.rows for p in client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50, expected_rows=100)
    )  # grew since
    assert rows == 511 and client.stats[V2_STOCK_ON_WAREHOUSES].requests == 511 // 50 + 1


def test_rows_removed_before_the_offset_while_paging_are_noticed_not_skipped(simulator):
    """Offset pages overlap by one row: a shift makes the overlap row differ, so nothing is skipped silently."""
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000, workers=1)
    catalogue = simulator.sim.accounts[CLIENT_ID].catalogue
    pages = client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50)
    first = next(pages)
    assert first.rows == 50
    with simulator.sim.lock:
        del catalogue.rows[10:13]  # three rows vanish from the part already read
    with pytest.raises(OzonSnapshotChanged, match="rows moved while paging .* offset 49"):
        list(pages)


def test_offset_pages_hold_each_row_once_with_the_overlap(client, simulator):
    pages = list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50))
    keys = [(r["sku"], r["warehouse_name"]) for p in pages for r in p.data["result"]["rows"]]
    assert len(keys) == len(set(keys)) == 511 == sum(p.rows for p in pages)
    assert [p.request["offset"] for p in pages] == [49 * i for i in range(11)]


def test_a_dead_method_is_declared_down_after_a_few_requests(simulator):
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000, backoff=0.01, backoff_max=0.05)
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "status", status=503, times=-1))
    started = time.monotonic()
    with pytest.raises(OzonMethodDown, match=r"/v2/analytics/stock_on_warehouses is down .*last status 503"):
        list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50))
    sent = simulator.sim.stats_snapshot()["requests"][V2_STOCK_ON_WAREHOUSES]
    assert client.breaker_threshold <= sent <= client.breaker_threshold + client.workers - 1
    assert time.monotonic() - started < 5
    with pytest.raises(OzonMethodDown):  # no further request in this run
        list(client.pages(METHODS[V2_STOCK_ON_WAREHOUSES], limit=50))
    assert simulator.sim.stats_snapshot()["requests"][V2_STOCK_ON_WAREHOUSES] == sent


def test_rate_limits_do_not_open_the_breaker_and_retry_after_is_honoured(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "rate_limit", times=6, retry_after=1))
    client.max_retries = 8
    started = time.monotonic()
    pages = list(client.pages(METHODS[V4_STOCKS]))
    assert sum(p.rows for p in pages) == 175
    assert time.monotonic() - started >= 6  # six 429s, each with Retry-After: 1
    assert client.stats[V4_STOCKS].responses_429 == 6 and not client.breaker.down


@pytest.mark.parametrize("form", ["products", "items", "products_strings", "items_strings"])
def test_fbo_by_warehouse_every_documented_form_is_read(form):
    """/v1/product/info/stocks-by-warehouse/fbo's schema is unconfirmed: rows under products or items,
    int64 values as numbers or strings; cursor paging until has_next is false."""
    from ozon_inventory.methods import V1_FBO_BY_WAREHOUSE

    sim = default_simulator(
        client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig(fbo_by_warehouse_form=form)
    )
    running = serve(sim)
    try:
        client = OzonClient(running.url, CLIENT_ID, API_KEY, rate_limit=1000)
        method = METHODS[V1_FBO_BY_WAREHOUSE]
        pages = list(client.pages(method, limit=100))
        rows = [row for page in pages for row in method.rows(page.data)]
        assert len(rows) == 511 == sum(p.rows for p in pages) and len(pages) == 6
        present: dict[int, int] = {}
        for row in rows:
            present[int(row["sku"])] = present.get(int(row["sku"]), 0) + int(row["present"])
        v4 = {
            s.sku: s.present
            for p in sim.accounts[CLIENT_ID].catalogue.products
            for s in p.stocks
            if s.type == "fbo"
        }
        assert present == {sku: n for sku, n in v4.items() if sku in present} and set(present) <= set(v4)
    finally:
        running.stop()
