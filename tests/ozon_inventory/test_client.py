"""The Ozon client over real HTTP against the simulator: paging, retries, limits, errors, secrets."""

from __future__ import annotations

import logging
import re
import time

import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import (
    OzonApiError,
    OzonAuthError,
    OzonMethodDown,
    OzonMethodUnavailable,
    OzonPagingError,
    OzonSchemaChanged,
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


# -- Ozon's error under HTTP 200, and answers whose shape changed ---------------------------------


def requests_to(simulator, path: str) -> int:
    return simulator.sim.stats_snapshot()["requests"].get(path, 0)


@pytest.mark.parametrize(
    ("code", "message", "error", "text"),
    [
        (7, "Company is blocked", OzonAuthError, r"code 7 \(handled as HTTP 403\): Company is blocked"),
        (16, "Client-Id and Api-Key headers are required", OzonAuthError, r"handled as HTTP 401"),
        (5, "Obsolete method cannot be used", OzonMethodUnavailable, r"code 5 \(handled as HTTP 404\)"),
        (3, "invalid limit", OzonApiError, r"code 3 \(handled as HTTP 400\): invalid limit"),
        ("PERMISSION_DENIED", "Company is blocked", OzonAuthError, r"handled as HTTP 403"),
    ],
)
def test_an_error_body_under_http_200_is_that_error_at_once(client, simulator, code, message, error, text):
    simulator.sim.add_fault(Fault(V2_WAREHOUSE_LIST, "error_body", code=code, message=message, times=-1))
    with pytest.raises(
        error, match=rf"Ozon /v2/warehouse/list answered HTTP 200 with an error body, .*{text}"
    ) as caught:
        list(client.pages(METHODS[V2_WAREHOUSE_LIST]))
    assert caught.value.permanent and (caught.value.answered, caught.value.code) == (200, code)
    assert requests_to(simulator, V2_WAREHOUSE_LIST) == 1  # never read as "no warehouses", never retried


def test_an_internal_error_under_http_200_is_retried_like_a_500(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "error_body", code=13, times=2))
    assert len(products(list(client.pages(METHODS[V4_STOCKS])))) == 175
    assert client.stats[V4_STOCKS].retries == 2
    simulator.sim.add_fault(Fault(V4_STOCKS, "error_body", code=13, times=-1))
    with pytest.raises(
        OzonMethodDown,
        match=r"last status 200: HTTP 200 with an error body, code 13 \(internal, handled as HTTP 500\): "
        r"Internal error",
    ):
        list(client.pages(METHODS[V4_STOCKS]))


def test_a_rate_limit_under_http_200_is_retried_like_a_429(client, simulator):
    simulator.sim.add_fault(
        Fault(V4_STOCKS, "error_body", code=8, message="You have reached request rate limit per second")
    )
    assert len(products(list(client.pages(METHODS[V4_STOCKS])))) == 175
    assert client.stats[V4_STOCKS].responses_429 == 1 and not client.breaker.down


@pytest.mark.parametrize(
    ("method", "field", "text"),
    [
        (
            V4_STOCKS,
            "items",
            r"the answer has no 'items' \(its fields: cursor, items_v2, total, total_items\)",
        ),
        (V4_STOCKS, "cursor", r"the answer has no 'cursor'"),
        (
            V4_STOCKS,
            "items.stocks",
            r"'stocks' is missing in 175 of 175 items, and 'stocks_v2', which the documents do not name, came instead",
        ),
        (V4_STOCKS, "items.stocks.present", r"'present' is missing in \d+ of \d+ stocks\[\] entries"),
        (
            V4_STOCKS,
            "items.stocks.shipment_type",
            r"'shipment_type' is missing .* 'shipment_type_v2'.* came instead",
        ),
        (
            V2_STOCK_ON_WAREHOUSES,
            "result.rows.free_to_sell_amount",
            r"'free_to_sell_amount' is missing in 50 of 50 rows",
        ),
        (
            V2_STOCK_ON_WAREHOUSES,
            "result.rows.item_name",
            r"'item_name' is missing in 50 of 50 rows, and 'item_name_v2'",
        ),
        (V2_STOCK_ON_WAREHOUSES, "result", r"the answer has no 'result'"),
        (V2_WAREHOUSE_LIST, "warehouses.name", r"'name' is missing in 3 of 3 warehouses"),
        (V2_WAREHOUSE_LIST, "has_next", r"the answer has no 'has_next'"),
        (V1_WAREHOUSE_LIST, "result.is_rfbs", r"'is_rfbs' is missing in 3 of 3 warehouses"),
    ],
)
def test_an_answer_whose_shape_changed_fails_at_once_naming_the_field(client, simulator, method, field, text):
    simulator.sim.add_fault(Fault(method, "rename", field=field, times=-1))
    with pytest.raises(
        OzonSchemaChanged, match=rf"Ozon {re.escape(method)} answered in a changed shape: {text}"
    ) as caught:
        list(client.pages(METHODS[method], limit=50 if method == V2_STOCK_ON_WAREHOUSES else None))
    error = caught.value
    assert error.permanent and error.method == method and error.field == field.rsplit(".", 1)[-1]
    assert error.example and API_KEY not in str(error)
    assert requests_to(simulator, method) <= client.workers  # not retried (offset pages in flight aside)


def test_a_field_renamed_in_a_few_rows_leaves_those_rows_to_validation(client, simulator):
    simulator.sim.add_fault(Fault(V4_STOCKS, "rename", field="items.stocks.present", count=10, times=-1))
    pages = list(client.pages(METHODS[V4_STOCKS]))
    assert len(products(pages)) == 175  # the rows come; validation rejects the ten, naming the field


def test_an_example_row_never_carries_a_credential(client):
    example = client._example({"offer_id": "echo " + API_KEY * 20, "stocks": []})
    assert API_KEY not in example and API_KEY[:10] not in example and len(example) <= 301


# -- a deadline per answer; transport and decoding errors in plain words ------------------------------


def test_a_trickling_answer_is_cut_at_the_timeout_and_retried(client, simulator):
    client.timeout = 0.6
    simulator.sim.add_fault(Fault(V4_STOCKS, "trickle", delay=4.0, times=1))
    started = time.monotonic()
    assert len(products(list(client.pages(METHODS[V4_STOCKS])))) == 175
    assert time.monotonic() - started < 2.5  # cut near 0.6 s, not after the 4 s the answer took
    assert client.stats[V4_STOCKS].retries == 1


def test_an_answer_that_always_trickles_takes_the_method_down_in_bounded_time(client, simulator, caplog):
    client.timeout = 0.4
    simulator.sim.add_fault(Fault(V4_STOCKS, "trickle", delay=5.0, times=-1))
    started = time.monotonic()
    with pytest.raises(
        OzonMethodDown, match=r"timed out after 0.4 s: the answer was still arriving \(\d+ bytes in\)"
    ):
        list(client.pages(METHODS[V4_STOCKS]))
    assert time.monotonic() - started < client.breaker_threshold * 0.4 + 2.5


def test_a_broken_gzip_body_names_the_method_and_the_encoding(client, simulator, caplog):
    simulator.sim.add_fault(Fault(V4_STOCKS, "bad_gzip", times=1))
    assert len(products(list(client.pages(METHODS[V4_STOCKS])))) == 175
    assert re.search(
        r"Ozon /v4/product/info/stocks attempt 1 failed \(HTTP 200 with a broken body \(\d+ bytes\): it is marked "
        r"Content-Encoding: gzip, but is not valid gzip data \(Error -3 while decompressing data: invalid block type\)\)",
        caplog.text,
    )


def test_gzip_answers_are_read(simulator):
    simulator.sim.configure({"compress": True})
    client = OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000)
    pages = list(client.pages(METHODS[V4_STOCKS]))
    assert len(products(pages)) == 175 and pages[0].raw.startswith(b"{")


def test_invalid_json_names_the_method_and_says_so(client, simulator, caplog):
    simulator.sim.add_fault(Fault(V4_STOCKS, "malformed_json", times=1))
    list(client.pages(METHODS[V4_STOCKS]))
    assert re.search(
        r"Ozon /v4/product/info/stocks attempt 1 failed \(HTTP 200 with a broken body \(\d+ bytes\): not valid JSON",
        caplog.text,
    )
