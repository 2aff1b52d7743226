"""OAuth tokens, /v1/roles, key expiry and the account control endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
import requests

from ozon_simulator import Account, OzonSimulator, SimulatorConfig, build_catalogue, serve
from tests.conftest import API_KEY, CLIENT_ID
from tests.ozon_simulator.test_contract import DOCUMENTS

V4 = "/v4/product/info/stocks"
ROLES = "/v1/roles"
BODY = {"limit": 1, "filter": {}}
KEY = {"Client-Id": CLIENT_ID, "Api-Key": API_KEY}
TOKEN = "oauth-token-for-tests"
DEACTIVATED = "Api-key is deactivated, use another one or generate a new one"


@pytest.fixture
def running():
    account = Account(CLIENT_ID, API_KEY, build_catalogue(10, 3), oauth_token=TOKEN)
    server = serve(OzonSimulator([account], SimulatorConfig(rate_limit=3)))
    yield server
    server.stop()


def _post(running, method, headers, body=None):
    return requests.post(
        running.url + method, json=BODY if body is None else body, headers=headers, timeout=5
    )


def test_bearer_token_authenticates_as_its_account(running):
    answer = _post(running, V4, {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["items"]
    assert running.sim.request_log(CLIENT_ID)[0]["status"] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong", "Client-Id": "7"},
    ],
)
def test_wrong_bearer_token_is_401_with_rpc_status(running, headers):
    answer = _post(running, V4, headers)
    assert answer.status_code == 401
    body = answer.json()
    for document in DOCUMENTS.values():
        jsonschema.validate(body, document["error"])
    assert body["code"] == 16 and "token" in body["message"]


def test_other_authorization_schemes_still_need_the_key_headers(running):
    answer = _post(running, V4, {"Authorization": "Basic abc"})
    assert answer.status_code == 401
    assert answer.json()["message"] == "Client-Id and Api-Key headers are required"


def test_oauth_and_api_key_share_one_rate_budget_and_log(running):
    statuses = [_post(running, V4, {"Authorization": f"Bearer {TOKEN}"}).status_code for _ in range(2)]
    statuses += [_post(running, V4, KEY).status_code for _ in range(2)]
    assert statuses == [200, 200, 200, 429]
    assert running.sim.citizenship(CLIENT_ID)["requests"] == 4


def test_roles_answers_roles_and_key_expiry(running):
    account = running.sim.accounts[CLIENT_ID]
    answer = _post(running, ROLES, KEY, {})
    assert answer.status_code == 200
    data = answer.json()
    assert set(data) == {"roles", "expires_at"}  # the schema is checked in test_contract
    assert data["roles"][0]["name"] == "Admin" and V4 in data["roles"][0]["methods"]
    expires = datetime.fromisoformat(data["expires_at"])
    assert data["expires_at"].endswith("Z")
    assert abs(expires - account.key_expires_at) < timedelta(milliseconds=1)
    assert timedelta(days=79) < expires - datetime.now(UTC) <= timedelta(days=80)
    # No body at all is fine too (the EN document defines none).
    assert requests.post(running.url + ROLES, headers=KEY, timeout=5).status_code == 200
    # An OAuth token is not an Api-Key: roles, no key expiry.
    oauth = _post(running, ROLES, {"Authorization": f"Bearer {TOKEN}"}, {}).json()
    assert oauth["roles"] and "expires_at" not in oauth


def test_roles_of_a_restricted_key_and_roles_needs_no_role(running):
    running.sim.accounts[CLIENT_ID].methods = frozenset({"/v2/warehouse/list"})
    data = _post(running, ROLES, KEY, {}).json()
    assert data["roles"] == [{"name": "Custom", "methods": ["/v2/warehouse/list"]}]
    assert _post(running, V4, KEY).json()["message"] == "Api-Key is missing a required role for a method"


def test_expired_key_is_deactivated_but_roles_still_tells_when(running):
    past = "2026-01-02T03:04:05Z"
    control = requests.post(
        running.url + "/__sim/account", json={"client_id": CLIENT_ID, "key_expires_at": past}, timeout=5
    )
    assert control.status_code == 200
    assert (
        control.json()["key_expired"] is True
        and control.json()["key_expires_at"] == "2026-01-02T03:04:05.000Z"
    )
    answer = _post(running, V4, KEY)
    assert answer.status_code == 403
    assert answer.json() == {"code": 7, "message": DEACTIVATED, "details": []}
    roles = _post(running, ROLES, KEY, {})
    assert roles.status_code == 200 and roles.json()["expires_at"] == "2026-01-02T03:04:05.000Z"
    # The OAuth token is not the key: it keeps working.
    assert _post(running, V4, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # A key that never expires has no expires_at.
    requests.post(
        running.url + "/__sim/account", json={"client_id": CLIENT_ID, "key_expires_at": None}, timeout=5
    )
    assert "expires_at" not in _post(running, ROLES, KEY, {}).json()


def test_account_control_adds_accounts_and_refuses_bad_settings(running):
    added = requests.post(
        running.url + "/__sim/account",
        json={
            "client_id": "300400",
            "api_key": "second",
            "oauth_token": "t2",
            "products": 4,
            "warehouses": 2,
        },
        timeout=5,
    ).json()
    assert added["products"] == 4 and added["oauth"] is True and "api_key" not in added
    assert _post(running, V4, {"Authorization": "Bearer t2"}).json()["total"] == 4
    assert _post(running, V4, {"Client-Id": "300400", "Api-Key": "second"}).status_code == 200
    for bad in (
        {"client_id": "x"},
        {"client_id": "500600"},
        {"client_id": CLIENT_ID, "key_expires_at": "soon"},
        {"client_id": CLIENT_ID, "colour": "red"},
    ):
        answer = requests.post(running.url + "/__sim/account", json=bad, timeout=5)
        assert answer.status_code == 400, bad
        assert "'" not in answer.json()["message"]
