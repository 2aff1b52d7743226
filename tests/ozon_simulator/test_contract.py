"""Every simulator answer validates against its method's schema in Ozon's OpenAPI document.

The schemas (field names and types, components resolved) were extracted from the official
document into tests/data, so this runs with only the repository.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import requests

from tests.conftest import API_KEY, CLIENT_ID

SCHEMAS = json.loads((Path(__file__).parents[1] / "data" / "ozon_openapi_schemas.json").read_text())
HEADERS = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}

REQUESTS = {
    "/v4/product/info/stocks": {"cursor": "", "filter": {"visibility": "ALL"}, "limit": 50},
    "/v2/analytics/stock_on_warehouses": {"limit": 100, "offset": 0, "warehouse_type": "ALL"},
    "/v1/analytics/stocks": None,  # filled with real SKUs below
    "/v1/warehouse/list": {"limit": 200, "offset": 0},
    "/v2/warehouse/list": {"cursor": "", "limit": 200},
}


def _schema(method: str) -> dict:
    schema = copy.deepcopy(SCHEMAS["responses"][method])
    if method == "/v1/warehouse/list":
        # Known deviation, kept on purpose: the schema says working_days are strings "1".."7",
        # but every Ozon example and fixture sends integers, so the simulator sends integers.
        days = schema["properties"]["result"]["items"]["properties"]["working_days"]
        days["items"] = {"type": "integer", "minimum": 1, "maximum": 7}
    return schema


@pytest.mark.parametrize("method", list(REQUESTS))
def test_answers_match_openapi_schema(simulator, method):
    body = REQUESTS[method]
    if body is None:
        skus = [r.sku for r in simulator.sim.accounts[CLIENT_ID].catalogue.rows[:100]]
        body = {"skus": [str(s) for s in dict.fromkeys(skus)]}
    jsonschema.Draft7Validator(SCHEMAS["requests"][method]).validate(body)
    answer = requests.post(simulator.url + method, json=body, headers=HEADERS, timeout=5)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    jsonschema.Draft7Validator(_schema(method)).validate(data)
    rows = {
        "/v4/product/info/stocks": lambda d: d["items"],
        "/v2/analytics/stock_on_warehouses": lambda d: d["result"]["rows"],
        "/v1/analytics/stocks": lambda d: d["items"],
        "/v1/warehouse/list": lambda d: d["result"],
        "/v2/warehouse/list": lambda d: d["warehouses"],
    }[method](data)
    assert rows, f"{method} answered no rows"
    # Every field the simulator sends is one the official schema names.
    item_props = _item_properties(_schema(method))
    for row in rows:
        assert set(row) <= set(item_props), set(row) - set(item_props)


def _item_properties(schema: dict) -> dict:
    node = schema
    while True:
        props = node.get("properties", {})
        arrays = [
            v for v in props.values() if v.get("type") == "array" and "properties" in v.get("items", {})
        ]
        objects = [v for v in props.values() if v.get("type") == "object" and "properties" in v]
        if arrays:
            return arrays[0]["items"]["properties"]
        node = objects[0]


def test_error_bodies_match_rpc_status(simulator):
    answer = requests.post(simulator.url + "/v4/product/info/stocks", json={}, headers=HEADERS, timeout=5)
    assert answer.status_code == 400
    jsonschema.validate(answer.json(), SCHEMAS["error"])
