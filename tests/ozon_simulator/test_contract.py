"""Every simulator answer validates against its method's schema in BOTH official Ozon documents.

The schemas (field names and types, components resolved) were extracted from the English
2026-04 and the Russian 2025-08 OpenAPI documents into tests/data, so this runs with only the
repository. An answer is checked against each document that has the method; every field it
sends must be named by one of them, and every field either names must be sent: a client written
against either document finds what it expects.

Deliberate deviations, kept on purpose:

- ``/v1/warehouse/list`` ``working_days``: both documents say strings ``"1".."7"``, but every
  Ozon example and fixture sends integers, so the simulator sends integers.
- ``/v4/product/info/stocks`` ``items[].stocks[].warehouse_ids``: RU-2025-08 types it int64
  strings, EN-2026-04 integers, and it is deprecated since 18 Dec 2025; the simulator sends it
  empty, which both accept.
- ``/v4/product/info/stocks`` ``total_items`` is in neither document: Ozon added it on
  24 Sep 2026 (News of the RU-2026-10 document, API.md §1). It is served beside ``total``.
- ``/v1/product/info/stocks-by-warehouse/fbo`` is in neither document (added 2 Jul 2026); its
  shape is checked in test_fbo_by_warehouse.py.
- ``/v1/product/info/warehouse/stocks`` is only in EN-2026-04 (RU-2025-08 predates it); how its
  warehouses add up to v4 is checked in test_seller_warehouse_stocks.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import requests

from tests.conftest import API_KEY, CLIENT_ID

SCHEMAS = json.loads((Path(__file__).parents[1] / "data" / "ozon_openapi_schemas.json").read_text())
DOCUMENTS: dict[str, dict] = SCHEMAS["documents"]
HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}

V4 = "/v4/product/info/stocks"
SOW = "/v2/analytics/stock_on_warehouses"
ANALYTICS = "/v1/analytics/stocks"
WL1 = "/v1/warehouse/list"
WL2 = "/v2/warehouse/list"
ROLES = "/v1/roles"
FBO = "/v1/product/info/stocks-by-warehouse/fbo"
SELLER = "/v1/product/info/warehouse/stocks"
METHODS = (V4, SOW, ANALYTICS, WL1, WL2, ROLES, SELLER)

#: Fields Ozon added after both stored documents (known from its later News, see the docstring).
NEWER_FIELDS = {V4: {"total_items"}}

#: Where each method's rows sit in its answer.
ROWS = {
    V4: lambda d: d["items"],
    SOW: lambda d: d["result"]["rows"],
    ANALYTICS: lambda d: d["items"],
    WL1: lambda d: d["result"],
    WL2: lambda d: d["warehouses"],
    ROLES: lambda d: d["roles"],
    SELLER: lambda d: d["stocks"],
}


def full_request(method: str, sim) -> dict:
    """A request that sends every field the documents define for the method (neutral values)."""
    catalogue = sim.accounts[CLIENT_ID].catalogue
    skus = [str(r.sku) for r in catalogue.rows[:100]]
    return copy.deepcopy(
        {
            V4: {
                "cursor": "",
                "filter": {
                    "offer_id": [],
                    "product_id": [],
                    "visibility": "ALL",
                    "with_quant": {"created": False, "exists": False},
                },
                "limit": 50,
            },
            SOW: {"limit": 100, "offset": 0, "warehouse_type": "ALL"},
            ANALYTICS: {
                "skus": list(dict.fromkeys(skus)),
                "cluster_ids": [],
                "macrolocal_cluster_ids": [],
                "warehouse_ids": [],
                "item_tags": [],
                "turnover_grades": [],
            },
            WL1: {"limit": 200, "offset": 0},
            WL2: {"cursor": "", "limit": 200, "warehouse_ids": []},
            ROLES: {},
            FBO: {"cursor": "", "limit": 100, "offer_ids": [], "skus": []},
            SELLER: {"cursor": "", "limit": 100, "warehouse_id": catalogue.seller_warehouses[0].warehouse_id},
        }[method]
    )


def response_schema(document: str, method: str) -> dict:
    schema = copy.deepcopy(DOCUMENTS[document]["responses"][method])
    if method == WL1:  # deviation: integers, see the module docstring
        days = schema["properties"]["result"]["items"]["properties"]["working_days"]
        days["items"] = {"type": "integer", "minimum": 1, "maximum": 7}
    return schema


def documents_with(method: str) -> list[str]:
    return [name for name, doc in DOCUMENTS.items() if method in doc["responses"]]


@pytest.fixture
def answers(simulator):
    """One answer per method over HTTP (``/v1/warehouse/list`` allows one request a minute)."""
    out = {}
    for method in METHODS:
        answer = requests.post(
            simulator.url + method, json=full_request(method, simulator.sim), headers=HEADERS, timeout=5
        )
        assert answer.status_code == 200, (method, answer.text)
        out[method] = answer.json()
    return out


def test_every_method_is_in_some_document():
    for method in METHODS:
        assert documents_with(method), method
    assert documents_with(WL2) == ["EN-2026-04"]  # RU-2025-08 predates /v2/warehouse/list
    assert documents_with(SELLER) == ["EN-2026-04"]


@pytest.mark.parametrize(("document", "method"), [(d, m) for m in METHODS for d in documents_with(m)])
def test_answers_match_each_document(simulator, answers, document, method):
    request_schema = DOCUMENTS[document]["requests"].get(method)
    if request_schema is not None:  # RU-2025-08 has no body for /v1/warehouse/list, EN none for roles
        jsonschema.Draft7Validator(request_schema).validate(full_request(method, simulator.sim))
    data = answers[method]
    jsonschema.Draft7Validator(response_schema(document, method)).validate(data)
    assert ROWS[method](data), f"{method} answered no rows"


@pytest.mark.parametrize("method", METHODS)
def test_fields_are_exactly_those_the_documents_name(answers, method):
    """Sent ⊆ named by EN or RU, and named by EN or RU ⊆ sent (idc_cluster is RU-only, say)."""
    documented: set[str] = set()
    for document in documents_with(method):
        documented |= _paths(DOCUMENTS[document]["responses"][method])
    served = _served_paths(answers[method])
    assert served - NEWER_FIELDS.get(method, set()) <= documented, served - documented
    assert documented <= served, documented - served


def test_idc_cluster_is_served_as_the_russian_document_types_it(answers):
    items = answers[ANALYTICS]["items"]
    ru = DOCUMENTS["RU-2025-08"]["responses"][ANALYTICS]["properties"]["items"]["items"]["properties"]
    assert ru["idc_cluster"] == {"format": "double", "type": "number"}
    assert all(isinstance(i["idc_cluster"], float) for i in items)


@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_error_bodies_match_rpc_status(simulator, document):
    answer = requests.post(simulator.url + V4, json={}, headers=HEADERS, timeout=5)
    assert answer.status_code == 400
    jsonschema.Draft7Validator(DOCUMENTS[document]["error"]).validate(answer.json())


# -- null means "not sent" ---------------------------------------------------------------------

#: Optional fields per method (dotted for nested ones): sending null must equal not sending it.
OPTIONAL = {
    V4: ["cursor", "filter.offer_id", "filter.product_id", "filter.visibility", "filter.with_quant"],
    SOW: ["offset", "warehouse_type"],
    ANALYTICS: ["cluster_ids", "macrolocal_cluster_ids", "warehouse_ids", "item_tags", "turnover_grades"],
    WL1: ["offset"],
    WL2: ["cursor", "warehouse_ids"],
    FBO: ["cursor", "offer_ids", "skus"],
    SELLER: ["cursor"],
}


def _set(body: dict, dotted: str, value) -> dict:
    *parents, leaf = dotted.split(".")
    node = body
    for name in parents:
        node = node[name]
    if value is _DROP:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return body


_DROP = object()


@pytest.mark.parametrize(("method", "field"), [(m, f) for m, fields in OPTIONAL.items() for f in fields])
def test_null_means_the_default(simulator, method, field):
    """Ozon's gateway reads JSON null as "not sent"; so must the simulator (no 400, same answer)."""
    sim = simulator.sim
    account = sim.accounts[CLIENT_ID]
    with_null = _set(full_request(method, sim), field, None)
    without = _set(full_request(method, sim), field, _DROP)
    assert sim.handle(method, with_null, account) == sim.handle(method, without, account)


def test_warehouse_type_null_over_http(simulator):
    """The reported case: ``"warehouse_type": null`` got 400 ``unknown value None``."""
    answer = requests.post(
        simulator.url + SOW,
        json={"limit": 10, "offset": None, "warehouse_type": None},
        headers=HEADERS,
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["result"]["rows"]) == 10


def test_nested_filter_null_and_whole_body_null(simulator):
    null_filter = requests.post(
        simulator.url + V4,
        json={"limit": 5, "cursor": None, "filter": {"visibility": None, "offer_id": None}},
        headers=HEADERS,
        timeout=5,
    )
    assert null_filter.status_code == 200 and len(null_filter.json()["items"]) == 5
    roles = requests.post(simulator.url + ROLES, data=b"null", headers=HEADERS, timeout=5)
    assert roles.status_code == 200


# -- Ozon's wording, never a Python repr -------------------------------------------------------

BAD = [
    (V4, {"filter": {}}, "invalid GetProductInfoStocksRequest.Limit: value must be inside range [1, 1000]"),
    (
        V4,
        {"limit": None, "filter": {}},
        "invalid GetProductInfoStocksRequest.Limit: value must be inside range [1, 1000]",
    ),
    (V4, {"limit": 10}, "invalid GetProductInfoStocksRequest.Filter: value is required"),
    (V4, {"limit": 10, "filter": None}, "invalid GetProductInfoStocksRequest.Filter: value is required"),
    (
        V4,
        {"limit": 10, "filter": {"visibility": "NOPE"}},
        'proto: invalid value for enum field visibility: "NOPE"',
    ),
    (V4, {"limit": "ten", "filter": {}}, 'proto: invalid value for int64 field limit: "ten"'),
    (
        V4,
        {"limit": 10, "filter": {"product_id": [True]}},
        "proto: invalid value for int64 field productId: true",
    ),
    (V4, {"limit": 10, "filter": {"offer_id": "x"}}, 'proto: invalid value for repeated field offerId: "x"'),
    (SOW, {"limit": 10, "warehouse_type": "fbo"}, 'proto: invalid value for enum field warehouseType: "fbo"'),
    (
        SOW,
        {"limit": 10, "offset": -1},
        "invalid StockOnWarehouseRequest.Offset: value must be greater than or equal to 0",
    ),
    (SOW, {"offset": 0}, "invalid StockOnWarehouseRequest.Limit: value must be inside range [1, 1000]"),
    (
        ANALYTICS,
        {"skus": []},
        "invalid AnalyticsStocksRequest.Skus: value must contain between 1 and 100 items",
    ),
    (
        ANALYTICS,
        {"skus": None},
        "invalid AnalyticsStocksRequest.Skus: value must contain between 1 and 100 items",
    ),
    (
        ANALYTICS,
        {"skus": [str(i) for i in range(101)]},
        "invalid AnalyticsStocksRequest.Skus: value must contain between 1 and 100 items",
    ),
    (ANALYTICS, {"skus": ["1"], "item_tags": ["OLD"]}, 'proto: invalid value for enum field itemTags: "OLD"'),
    (
        ANALYTICS,
        {"skus": ["1"], "cluster_ids": ["1"], "macrolocal_cluster_ids": ["2"]},
        "use only one of cluster_ids or macrolocal_cluster_ids",
    ),
    (WL2, {"limit": 0}, "invalid WarehouseListV2Request.Limit: value must be inside range [1, 200]"),
    (WL2, {"limit": 10, "cursor": 5}, "proto: invalid value for string field cursor: 5"),
    (
        SELLER,
        {"warehouse_id": 1},
        "invalid ProductInfoWarehouseStocksRequest.Limit: value must be inside range [1, 1000]",
    ),
    (
        SELLER,
        {"limit": 10},
        "invalid ProductInfoWarehouseStocksRequest.WarehouseId: value must be greater than or equal to 1",
    ),
]


@pytest.mark.parametrize(("method", "body", "message"), BAD)
def test_errors_use_ozon_wording(simulator, method, body, message):
    answer = requests.post(simulator.url + method, json=body, headers=HEADERS, timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {"code": 3, "message": message, "details": []}
    assert not re.search(r"'|\bNone\b|\bTrue\b|\bFalse\b", message)


def test_not_json_is_refused_without_a_repr(simulator):
    for raw in (b"{nope", b"[1, 2]", b'"text"'):
        answer = requests.post(simulator.url + V4, data=raw, headers=HEADERS, timeout=5)
        assert answer.status_code == 400 and answer.json()["code"] == 3
        assert answer.json()["message"].startswith("proto: syntax error")
        assert "'" not in answer.json()["message"]


# -- helpers -------------------------------------------------------------------------------------


def _paths(schema: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every property a schema names (``[]`` for array items)."""
    out: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        out.add(prefix + name)
        out |= _paths(sub, f"{prefix}{name}.")
    items = schema.get("items")
    if isinstance(items, dict):
        out |= _paths(items, prefix + "[].")
    return out


def _served_paths(value, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for name, sub in value.items():
            out.add(prefix + name)
            out |= _served_paths(sub, f"{prefix}{name}.")
    elif isinstance(value, list):
        for item in value:
            out |= _served_paths(item, prefix + "[].")
    return out
