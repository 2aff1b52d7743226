"""An offline Ozon Seller API: the stock and warehouse methods, as the project's API notes document them.

Methods: ``/v4/product/info/stocks``, ``/v2/analytics/stock_on_warehouses``, ``/v1/analytics/stocks``,
``/v1/product/info/stocks-by-warehouse/fbo``, ``/v1/warehouse/list``, ``/v2/warehouse/list``,
``/v1/product/info/warehouse/stocks`` (the stock of each FBS/rFBS warehouse of the seller) and
``/v1/roles``. It answers on 127.0.0.1 over real HTTP/1.1 (keep-alive), with Ozon's auth checks
(Api-Key or OAuth Bearer token, key expiry) and error bodies, requests read as Ozon's gateway reads
them (``ozon_simulator.body``: null is "not sent", Ozon's error wording), per-Client-Id rate limits
(429 code 8 with ``Retry-After``; ``Ratelimit-Remaining`` on every answer; token bucket or fixed
one-second window), and faults that tests inject per method. Where Ozon's behaviour is unconfirmed
the simulator can play each reading (the last page of ``/v4/product/info/stocks``, ``total`` vs
``total_items``, a body-less ``/v1/warehouse/list``, the forms of the FBO-by-warehouse answer).

Control endpoints under ``/__sim/`` (no auth) let a test or an operator change the simulator while
it runs: ``POST /__sim/faults`` (a list of faults), ``DELETE /__sim/faults``, ``POST /__sim/catalogue``
(``{"action": "change", "fraction": 0.01}`` / ``{"action": "remove", "count": 5}``),
``POST /__sim/config`` (any ``SimulatorConfig`` field, e.g. ``{"rate_window": "fixed"}``),
``POST /__sim/account`` (``{"client_id": "100200", "key_expires_at": "2026-01-01T00:00:00Z"}``;
also ``oauth_token``, ``methods``, or a new account with ``api_key``),
``GET /__sim/stats``, ``POST /__sim/stats/reset``, and the request log:
``GET /__sim/requests?client_id=X`` (every request to an Ozon method: time, client_id, method,
status) and ``GET /__sim/citizenship?client_id=X`` (how well a client kept to the rate limits).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ozon_simulator.body import ApiError, Body, as_json
from ozon_simulator.catalogue import Catalogue, SellerWarehouse, build_catalogue

V4_STOCKS = "/v4/product/info/stocks"
V2_STOCK_ON_WAREHOUSES = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS_STOCKS = "/v1/analytics/stocks"
V1_WAREHOUSE_LIST = "/v1/warehouse/list"
V2_WAREHOUSE_LIST = "/v2/warehouse/list"
V1_FBO_BY_WAREHOUSE = "/v1/product/info/stocks-by-warehouse/fbo"
V1_ROLES = "/v1/roles"
V1_WAREHOUSE_STOCKS = "/v1/product/info/warehouse/stocks"
#: The stock and warehouse methods a key can be given roles for.
STOCK_METHODS = (
    V4_STOCKS,
    V2_STOCK_ON_WAREHOUSES,
    V1_ANALYTICS_STOCKS,
    V1_FBO_BY_WAREHOUSE,
    V1_WAREHOUSE_LIST,
    V2_WAREHOUSE_LIST,
    V1_WAREHOUSE_STOCKS,
)
METHODS = (*STOCK_METHODS, V1_ROLES)

#: New API keys live 3 months (API.md §0); a simulated key has 80 days left unless a test says otherwise.
DEFAULT_KEY_LIFETIME = timedelta(days=80)

#: How many requests the request log keeps (oldest dropped first), so a long run stays bounded.
REQUEST_LOG_CAP = 2_000_000

#: Per-method limits stricter than the per-Client-Id default: (requests, per seconds).
METHOD_LIMITS: dict[str, tuple[int, float]] = {V1_WAREHOUSE_LIST: (1, 60.0)}

VISIBILITY = frozenset(
    [
        "ALL",
        "VISIBLE",
        "INVISIBLE",
        "EMPTY_STOCK",
        "NOT_MODERATED",
        "MODERATED",
        "DISABLED",
        "STATE_FAILED",
        "READY_TO_SUPPLY",
        "VALIDATION_STATE_PENDING",
        "VALIDATION_STATE_FAIL",
        "VALIDATION_STATE_SUCCESS",
        "TO_SUPPLY",
        "IN_SALE",
        "REMOVED_FROM_SALE",
        "BANNED",
        "OVERPRICED",
        "CRITICALLY_OVERPRICED",
        "EMPTY_BARCODE",
        "BARCODE_EXISTS",
        "QUARANTINE",
        "ARCHIVED",
        "OVERPRICED_WITH_STOCK",
        "PARTIAL_APPROVED",
        "AUTO_ARCHIVED",
        "MANUAL_ARCHIVED",
        "SEASONAL_AUTO_ARCHIVED",
        "VISIBLE_WITH_FBO_STOCK",
    ]
)
WAREHOUSE_TYPES = frozenset({"ALL", "EXPRESS_DARK_STORE", "NOT_EXPRESS_DARK_STORE"})
ITEM_TAGS = frozenset({"ITEM_ATTRIBUTE_NONE", "ECONOM", "NOVEL", "DISCOUNT", "FBS_RETURN", "SUPER"})
TURNOVER_GRADES = frozenset(
    {
        "TURNOVER_GRADE_NONE",
        "DEFICIT",
        "POPULAR",
        "ACTUAL",
        "SURPLUS",
        "NO_SALES",
        "WAS_NO_SALES",
        "RESTRICTED_NO_SALES",
        "COLLECTING_DATA",
        "WAITING_FOR_SUPPLY",
        "WAS_DEFICIT",
        "WAS_POPULAR",
        "WAS_ACTUAL",
        "WAS_SURPLUS",
    }
)
#: The days of sales the simulated averages (``ads``) spread the stock over.
SALES_DAYS = 28
_DAY_NAMES = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")

FAULT_KINDS = frozenset(
    {
        "status",  # an HTTP error with an rpcStatus body (5xx by default)
        "slow",  # answer after ``delay`` seconds (past the client's timeout)
        "rate_limit",  # 429 code 8 with Retry-After
        "malformed_json",  # 200 with a body that is not JSON
        "html",  # an HTML error page from a proxy
        "truncated",  # the connection closes before the announced Content-Length
        "repeat_cursor",  # v4 answers the cursor it was sent, so paging never advances
        "obsolete",  # the method is switched off
        "mutate",  # the catalogue changes after this answer (a product is inserted at the head)
        "error_body",  # HTTP 200 whose body is Ozon's error (``code``, ``message``), no rows
        "rename",  # ``field`` (a dotted path into the answer) renamed to ``to`` ("" drops it)
        "trickle",  # the answer's body dribbles out over ``delay`` seconds (headers at once)
        "bad_gzip",  # HTTP 200 marked ``Content-Encoding: gzip`` whose body is not valid gzip
    }
)


@dataclass
class Fault:
    """A fault on one method: applies to ``times`` answers (-1: until cleared) after ``after`` good ones."""

    method: str
    kind: str
    times: int = 1
    after: int = 0
    status: int = 503
    delay: float = 0.0
    message: str = ""
    retry_after: int = 1
    code: int = 13  # error_body: Ozon's code (13 internal, 7 permission denied, 16 unauthenticated, ...)
    #: rename: where, from the answer's root; each list on the way is entered (``items.stocks.present``)
    field: str = ""
    to: str | None = None  # rename: the new name (default ``<name>_v2``; "" drops the field)
    count: int = 0  # rename: only the first ``count`` elements of the first list on the way (0: all)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind}; known: {', '.join(sorted(FAULT_KINDS))}")
        if self.kind == "rename" and not self.field:
            raise ValueError("a rename fault needs field, a dotted path into the answer")


def _key_expiry() -> datetime:
    return datetime.now(UTC) + DEFAULT_KEY_LIFETIME


@dataclass
class Account:
    """A seller account the simulator knows: its key, its roles and its catalogue.

    ``oauth_token`` lets a request authenticate with ``Authorization: Bearer <token>`` instead of
    ``Client-Id`` + ``Api-Key`` (Ozon's applications do so); it is counted and rate-limited as
    this account's ``client_id``. ``key_expires_at`` is when the Api-Key stops working (None:
    never); ``/v1/roles`` reports it, so a client can warn before the key dies.
    """

    client_id: str
    api_key: str
    catalogue: Catalogue
    methods: frozenset[str] | None = None  # methods its key has a role for; None = all
    oauth_token: str | None = None
    key_expires_at: datetime | None = field(default_factory=_key_expiry)

    def key_expired(self, now: datetime | None = None) -> bool:
        return self.key_expires_at is not None and self.key_expires_at <= (now or datetime.now(UTC))


#: How the per-Client-Id limit counts: a token bucket, or a fixed calendar-second window.
RATE_WINDOWS = ("bucket", "fixed")
#: Readings of the unconfirmed ``/v1/product/info/stocks-by-warehouse/fbo`` answer: rows under
#: ``products`` (API.md) or ``items``; int64 values as numbers or (``_strings``) as strings.
FBO_BY_WAREHOUSE_FORMS = ("products", "items", "products_strings", "items_strings")


@dataclass
class SimulatorConfig:
    """Settings a test can change while the simulator runs (``POST /__sim/config``)."""

    rate_limit: float = 50.0  # requests per second per Client-Id, across methods
    # Ozon does not document how it counts "50 per second", so the simulator plays both readings
    # and a client must pass both: "bucket" refills continuously (a burst of ``rate_limit``, then
    # ``rate_limit`` per second); "fixed" allows at most ``rate_limit`` requests in each calendar
    # second ``floor(time.time())``, so 50 at 0.99 s and 50 at 1.01 s is fine but 51 in one is not.
    rate_window: str = "bucket"
    latency: float = 0.0  # seconds added to every answer
    last_page: str = "empty"  # "empty": cursor "" on the last page; "opaque": a cursor to an empty page
    total_fields: str = "both"  # "both", "total_items" (after the switch-off of total) or "total"
    v1_warehouse_list_requires_limit: bool = True
    max_analytics_limit: int = 1000  # UNCONFIRMED upstream; the simulator enforces this one
    # /v1/product/info/stocks-by-warehouse/fbo: whether a request must name offer_ids or skus
    # (True: 400 without them) or an empty filter means every FBO product (False).
    fbo_by_warehouse_requires_filter: bool = False
    fbo_by_warehouse_form: str = "products"  # one of FBO_BY_WAREHOUSE_FORMS
    compress: bool = False  # answers gzip-compressed (Content-Encoding) when the request accepts gzip

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse values the simulator cannot play (also after ``POST /__sim/config``)."""
        if self.rate_window not in RATE_WINDOWS:
            raise ValueError(f"rate_window must be one of {', '.join(RATE_WINDOWS)}, not {self.rate_window}")
        if self.fbo_by_warehouse_form not in FBO_BY_WAREHOUSE_FORMS:
            raise ValueError(
                f"fbo_by_warehouse_form must be one of {', '.join(FBO_BY_WAREHOUSE_FORMS)}, "
                f"not {self.fbo_by_warehouse_form}"
            )


class _TokenBucket:
    def __init__(self, rate: float, per: float = 1.0):
        self.capacity = rate
        self.rate = rate / per
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self) -> tuple[bool, int, float]:
        """Take a token: (allowed, tokens left, seconds until the next token)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0.0
        return False, 0, (1 - self.tokens) / self.rate


def _bearer(headers: Any) -> str | None:
    """The token of ``Authorization: Bearer <token>`` ("" when empty), None without a Bearer header."""
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def uses_oauth(headers: Any) -> bool:
    """Whether a request authenticates with an OAuth token rather than an Api-Key."""
    return not headers.get("Api-Key") and _bearer(headers) is not None


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and ``Z``, as in Ozon's examples (``2026-02-18T09:54:23.296Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rate_limited(retry_after: int) -> ApiError:
    """Ozon's 429: code 8, ``Retry-After`` in whole seconds, nothing left of the budget."""
    return ApiError(
        429,
        8,
        "You have reached request rate limit per second",
        {"Retry-After": str(retry_after), "Ratelimit-Remaining": "0"},
    )


def _encode_cursor(offset: int, version: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}:v{version}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, offset, _ = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if kind != "o":
            raise ValueError(kind)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, 3, "invalid cursor") from exc  # Ozon's wording is not known


class OzonSimulator:
    """The simulated API: state, faults and method handlers (no HTTP here, see ``serve``)."""

    def __init__(self, accounts: list[Account], config: SimulatorConfig | None = None):
        self.accounts = {a.client_id: a for a in accounts}
        self.config = config or SimulatorConfig()
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        self._windows: dict[str, tuple[int, int]] = {}  # client_id -> (calendar second, requests in it)
        self.stats: dict[str, Any] = {}
        # (time, client_id, method, status) per request; its own lock, so logging never waits
        # for a handler that holds ``lock`` while it builds a large answer.
        self._log: deque[tuple[float, str, str, int]] = deque(maxlen=REQUEST_LOG_CAP)
        self._log_lock = threading.Lock()
        self.reset_stats()

    # -- state ---------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Forget the counters and the request log."""
        with self.lock:
            self.stats = {
                "requests": defaultdict(int),
                "statuses": defaultdict(int),
                "first": None,
                "last": None,
            }
        with self._log_lock:
            self._log.clear()

    def record(self, when: float, client_id: str, method: str, status: int) -> None:
        """Log one request to an Ozon method (``when`` is its arrival, ``time.time()``)."""
        with self._log_lock:
            self._log.append((when, client_id, method, status))

    def request_log(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """The logged requests, oldest first, of one Client-Id or of all.

        ``client_id`` is the account the request authenticated as, else the raw ``Client-Id``
        header, else ``"-"``. ``time`` is when the request arrived (what Ozon's limiter counts).
        """
        with self._log_lock:
            entries = list(self._log)
        entries.sort(key=lambda e: e[0])  # threads log at answer time, so arrivals may interleave
        return [
            {"time": t, "client_id": cid, "method": method, "status": status}
            for t, cid, method, status in entries
            if client_id is None or cid == client_id
        ]

    def citizenship(self, client_id: str | None = None) -> dict[str, Any]:
        """How a client treated the rate limits: requests, 429s, peak rate and per-method counts.

        ``peak_requests_per_1s`` is the largest number of requests that arrived within any
        sliding window shorter than one second (requests i..j with ``t_j - t_i < 1.0``), so a
        client that stays within 50/s by Ozon's reading of it never shows more than 50.
        """
        log = self.request_log(client_id)
        times = [e["time"] for e in log]
        peak, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            peak = max(peak, end - start + 1)
        per_method: dict[str, int] = defaultdict(int)
        for entry in log:
            per_method[entry["method"]] += 1
        return {
            "requests": len(log),
            "responses_429": sum(e["status"] == 429 for e in log),
            "peak_requests_per_1s": peak,
            "per_method": dict(per_method),
        }

    def stats_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.stats["requests"]),
                "statuses": dict(self.stats["statuses"]),
                "first": self.stats["first"],
                "last": self.stats["last"],
            }

    def set_account(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Change an account (``POST /__sim/account``), or add one when ``client_id`` is new.

        Settings: ``key_expires_at`` (RFC 3339, or null for a key that never expires),
        ``oauth_token``, ``methods`` (a list, or null for every role), ``api_key``. A new account
        needs ``api_key`` and gets ``build_catalogue(products, warehouses, seed)``.
        """
        known = {
            "client_id",
            "api_key",
            "key_expires_at",
            "oauth_token",
            "methods",
            "products",
            "warehouses",
            "seed",
        }
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown account setting: {', '.join(sorted(unknown))}")
        client_id = str(settings.get("client_id") or "")
        if not client_id.isdigit() or int(client_id) <= 0:
            raise ValueError("client_id should be positive integer")
        with self.lock:
            account = self.accounts.get(client_id)
            if account is None:
                if not settings.get("api_key"):
                    raise ValueError("a new account needs api_key")
                catalogue = build_catalogue(
                    int(settings.get("products", 175)),
                    int(settings.get("warehouses", 27)),
                    int(settings.get("seed", 42)),
                )
                account = self.accounts[client_id] = Account(client_id, str(settings["api_key"]), catalogue)
            if settings.get("api_key"):
                account.api_key = str(settings["api_key"])
            if "key_expires_at" in settings:
                account.key_expires_at = _parse_time(settings["key_expires_at"])
            if "oauth_token" in settings:
                account.oauth_token = settings["oauth_token"] or None
            if "methods" in settings:
                methods = settings["methods"]
                account.methods = None if methods is None else frozenset(str(m) for m in methods)
            return _describe(account)

    def set_faults(self, faults: list[Fault]) -> None:
        with self.lock:
            self.faults = list(faults)

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        self.set_faults([])

    def _take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method != method or fault.times == 0:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                if fault.times > 0:
                    fault.times -= 1
                return Fault(**asdict(fault))
        return None

    def configure(self, settings: dict[str, Any]) -> SimulatorConfig:
        """Change settings while running; a new rate limit or window applies from the next request."""
        with self.lock:
            before = (self.config.rate_limit, self.config.rate_window)
            updated = SimulatorConfig(**(asdict(self.config) | settings))  # checks every value
            for key, value in asdict(updated).items():
                setattr(self.config, key, value)  # same object: holders of sim.config see it
            if (self.config.rate_limit, self.config.rate_window) != before:
                self._buckets.clear()
                self._windows.clear()
            return self.config

    def _rate_check(self, client_id: str, method: str) -> int:
        """Apply the per-Client-Id limit and the per-method buckets; return Ratelimit-Remaining."""
        with self.lock:
            if self.config.rate_window == "fixed":
                remaining = self._fixed_window_take(client_id)
            else:
                remaining = self._bucket_take(client_id, "*", self.config.rate_limit, 1.0)
            if method in METHOD_LIMITS:
                remaining = min(remaining, self._bucket_take(client_id, method, *METHOD_LIMITS[method]))
            return remaining

    def _bucket_take(self, client_id: str, key: str, rate: float, per: float) -> int:
        bucket = self._buckets.get((client_id, key))
        if bucket is None:
            bucket = self._buckets[(client_id, key)] = _TokenBucket(rate, per)
        ok, left, wait = bucket.take()
        if not ok:
            raise _rate_limited(max(1, int(wait + 0.999)))
        return left

    def _fixed_window_take(self, client_id: str) -> int:
        """Count the request in its calendar second; past ``int(rate_limit)`` in it is a 429.

        ``Retry-After`` is 1: the next second starts within one.
        """
        second = int(time.time() // 1)
        start, used = self._windows.get(client_id, (second, 0))
        if start != second:
            used = 0
        limit = int(self.config.rate_limit)
        if used >= limit:
            raise _rate_limited(1)
        self._windows[client_id] = (second, used + 1)
        return limit - used - 1

    # -- dispatch ------------------------------------------------------------------------------

    def authenticate(self, headers: Any, method: str) -> Account:
        """The account a request speaks for, or Ozon's auth error.

        ``Client-Id`` + ``Api-Key`` when an Api-Key is sent; otherwise ``Authorization: Bearer``
        (an OAuth token stands for the account alone, so a ``Client-Id`` beside it is ignored).
        An expired key answers like a deactivated one, except on ``/v1/roles``, which still
        answers so a client can tell its user when the key expired.
        """
        client_id, api_key = headers.get("Client-Id"), headers.get("Api-Key")
        if uses_oauth(headers):
            return self._authenticate_oauth(_bearer(headers) or "", method)
        if not client_id or not api_key:
            raise ApiError(401, 16, "Client-Id and Api-Key headers are required")
        if not client_id.isdigit() or int(client_id) <= 0:
            raise ApiError(400, 3, "Client-Id header value should be positive integer")
        account = self.accounts.get(client_id)
        if account is None or account.api_key != api_key:
            raise ApiError(404, 5, "Invalid Api-Key, please check the key and try again")
        if method != V1_ROLES and account.key_expired():
            raise ApiError(403, 7, "Api-key is deactivated, use another one or generate a new one")
        self._check_role(account, method)
        return account

    def _authenticate_oauth(self, token: str, method: str) -> Account:
        """A Bearer token: the account whose ``oauth_token`` it is, else 401 code 16.

        Ozon's wording for a bad token is not public (API.md); this message is the simulator's.
        """
        account = next((a for a in self.accounts.values() if token and a.oauth_token == token), None)
        if account is None:
            raise ApiError(401, 16, "Invalid OAuth token, please check the token and try again")
        self._check_role(account, method)
        return account

    @staticmethod
    def _check_role(account: Account, method: str) -> None:
        """Every key may ask ``/v1/roles``; other methods need a role that lists them."""
        if method != V1_ROLES and account.methods is not None and method not in account.methods:
            raise ApiError(403, 7, "Api-Key is missing a required role for a method")

    def handle(
        self, method: str, body: dict[str, Any], account: Account, oauth: bool = False
    ) -> dict[str, Any]:
        catalogue = account.catalogue
        if method == V1_ROLES:
            return self.roles(account, oauth)
        if method == V4_STOCKS:
            return self.v4_stocks(catalogue, body)
        if method == V2_STOCK_ON_WAREHOUSES:
            return self.stock_on_warehouses(catalogue, body)
        if method == V1_ANALYTICS_STOCKS:
            return self.analytics_stocks(catalogue, body)
        if method == V1_FBO_BY_WAREHOUSE:
            return self.fbo_stocks_by_warehouse(catalogue, body)
        if method == V1_WAREHOUSE_LIST:
            return self.warehouse_list_v1(catalogue, body)
        if method == V2_WAREHOUSE_LIST:
            return self.warehouse_list_v2(catalogue, body)
        if method == V1_WAREHOUSE_STOCKS:
            return self.seller_warehouse_stocks(catalogue, body)
        raise ApiError(404, 5, "Not Found")

    # -- methods -------------------------------------------------------------------------------

    def roles(self, account: Account, oauth: bool = False) -> dict[str, Any]:
        """``/v1/roles``: the key's roles with their methods, and when the key expires.

        Shape of the EN-2026-04 schema (``expires_at`` date-time; RU-2025-08 has ``roles`` only).
        A key with every role is "Admin", as in Ozon's example; a restricted key has one role
        listing its methods. An OAuth token is not an Api-Key, so it gets no ``expires_at``.
        """
        if account.methods is None:
            roles = [{"name": "Admin", "methods": list(STOCK_METHODS)}]
        else:
            roles = [{"name": "Custom", "methods": sorted(account.methods)}]
        answer: dict[str, Any] = {"roles": roles}
        if not oauth and account.key_expires_at is not None:
            answer["expires_at"] = rfc3339(account.key_expires_at)
        return answer

    def v4_stocks(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v4/product/info/stocks``: products with their stock per type, cursor paging."""
        req = Body(body, "GetProductInfoStocksRequest")
        limit = req.int("limit", 0, 1, 1000)
        filt = req.object("filter", "GetProductInfoStocksRequest_Filter", required=True)
        visibility = filt.enum("visibility", VISIBILITY, "ALL")
        offer_ids = set(filt.strings("offer_id"))
        product_ids = set(filt.ints("product_id"))
        quant = filt.object("with_quant", "GetProductInfoStocksRequest_Filter_WithQuant")
        quant.flag("created"), quant.flag("exists")  # Economy tariff, switched off: read, inert
        cursor = req.string("cursor")
        offset = _decode_cursor(cursor) if cursor else 0

        products = catalogue.products
        if visibility != "ALL" or offer_ids or product_ids:
            products = [
                p
                for p in products
                if (not offer_ids or p.offer_id in offer_ids)
                and (not product_ids or p.product_id in product_ids)
                and _visible(p, visibility)
            ]
        page = products[offset : offset + limit]
        end = offset + len(page)
        if end < len(products):
            next_cursor = _encode_cursor(end, catalogue.version)
        elif self.config.last_page == "opaque":
            next_cursor = _encode_cursor(end, catalogue.version) if page else cursor
        else:
            next_cursor = ""
        answer: dict[str, Any] = {
            "cursor": next_cursor,
            "items": [
                {
                    "offer_id": p.offer_id,
                    "product_id": p.product_id,
                    "stocks": [
                        {
                            "present": s.present,
                            "reserved": s.reserved,
                            "shipment_type": s.shipment_type,
                            "sku": s.sku,
                            "type": s.type,
                            # Deprecated 18 Dec 2025 and typed differently by the two documents
                            # (RU-2025-08: int64 strings, EN-2026-04: integers): sent empty, as
                            # both allow, so a client that reads it meets it.
                            "warehouse_ids": [],
                        }
                        for s in p.stocks
                    ],
                }
                for p in page
            ],
        }
        if self.config.total_fields in ("both", "total"):
            answer["total"] = len(products)
        if self.config.total_fields in ("both", "total_items"):
            answer["total_items"] = len(products)
        return answer

    def stock_on_warehouses(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v2/analytics/stock_on_warehouses``: SKU × Ozon warehouse rows, offset paging, no total."""
        req = Body(body, "StockOnWarehouseRequest")
        limit = req.int("limit", 0, 1, self.config.max_analytics_limit)
        offset = req.int("offset", 0, low=0)
        wtype = req.enum("warehouse_type", WAREHOUSE_TYPES, "ALL")
        rows = catalogue.rows
        if wtype != "ALL":
            express = wtype == "EXPRESS_DARK_STORE"
            rows = [r for r in rows if catalogue.ozon_warehouses[r.warehouse].express == express]
        whs = catalogue.ozon_warehouses
        out = []
        for r in rows[offset : offset + limit]:
            product = catalogue.product_of_sku(r.sku)
            out.append(
                {
                    "sku": r.sku,
                    "warehouse_name": whs[r.warehouse].name,
                    "item_code": product.offer_id if product else "",
                    "item_name": product.name if product else "",
                    "promised_amount": r.promised,
                    "free_to_sell_amount": r.free_to_sell,
                    "reserved_amount": r.reserved,
                }
            )
        return {"result": {"rows": out}}

    def analytics_stocks(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/analytics/stocks``: up to 100 SKUs, their rows per Ozon warehouse, no paging.

        The cluster and warehouse filters apply; ``item_tags`` and ``turnover_grades`` are
        checked but select nothing out (no simulated SKU has tags, every grade is ``ACTUAL``).
        """
        req = Body(body, "AnalyticsStocksRequest")
        skus = req.ints("skus", 1, 100)
        cluster_ids = set(req.ints("cluster_ids"))
        macrolocal_ids = set(req.ints("macrolocal_cluster_ids"))
        warehouse_ids = set(req.ints("warehouse_ids"))
        req.enums("item_tags", ITEM_TAGS)
        req.enums("turnover_grades", TURNOVER_GRADES)
        if cluster_ids and macrolocal_ids:
            raise ApiError(400, 3, "use only one of cluster_ids or macrolocal_cluster_ids")
        whs = catalogue.ozon_warehouses
        rows = [
            r
            for sku in sorted(set(skus))
            for r in catalogue.rows_of_sku(sku)
            if (not cluster_ids or whs[r.warehouse].cluster_id in cluster_ids)
            and (not macrolocal_ids or whs[r.warehouse].macrolocal_cluster_id in macrolocal_ids)
            and (not warehouse_ids or whs[r.warehouse].warehouse_id in warehouse_ids)
        ]
        cluster_sum: dict[tuple[int, int], int] = defaultdict(int)  # over the whole cluster, unfiltered
        for sku in set(skus):
            for r in catalogue.rows_of_sku(sku):
                cluster_sum[(r.sku, whs[r.warehouse].cluster_id)] += r.free_to_sell
        items = []
        for r in rows:
            wh = whs[r.warehouse]
            product = catalogue.product_of_sku(r.sku)
            ads = round(r.free_to_sell / SALES_DAYS, 2)
            ads_cluster = round(cluster_sum[(r.sku, wh.cluster_id)] / SALES_DAYS, 2)
            items.append(
                {
                    "sku": r.sku,
                    "offer_id": product.offer_id if product else "",
                    "name": product.name if product else "",
                    "warehouse_id": wh.warehouse_id,
                    "warehouse_name": wh.name,
                    "cluster_id": wh.cluster_id,
                    "cluster_name": wh.cluster_name,
                    "macrolocal_cluster_id": wh.macrolocal_cluster_id,
                    "available_stock_count": r.free_to_sell,
                    "valid_stock_count": 0,
                    "waiting_docs_stock_count": 0,
                    "expiring_stock_count": 0,
                    "transit_defect_stock_count": 0,
                    "stock_defect_stock_count": 0,
                    "excess_stock_count": 0,
                    "other_stock_count": r.reserved,
                    "requested_stock_count": r.promised,
                    "transit_stock_count": 0,
                    "return_from_customer_stock_count": 0,
                    "return_to_seller_stock_count": 0,
                    "ads": ads,
                    "ads_cluster": ads_cluster,
                    # Days the stock lasts at the average daily sales: the same SALES_DAYS for
                    # the warehouse and its cluster, 0 where nothing sells.
                    "idc": float(SALES_DAYS) if ads else 0.0,
                    "idc_cluster": float(SALES_DAYS) if ads_cluster else 0.0,
                    "days_without_sales": 0,
                    "days_without_sales_cluster": 0,
                    "turnover_grade": "ACTUAL",
                    "turnover_grade_cluster": "ACTUAL",
                    "item_tags": [],
                }
            )
        return {"items": items}

    def fbo_stocks_by_warehouse(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/product/info/stocks-by-warehouse/fbo``: FBO present/reserved per SKU × Ozon warehouse.

        Its schema is in neither stored document (added 2 Jul 2026); the shape is API.md's
        (§2 b, from a generated SDK, UNCONFIRMED). One entry per warehouse row of the catalogue,
        so per SKU the entries add up to v4's fbo ``present``/``reserved`` and the warehouse ids
        are ``/v1/analytics/stocks``'s. Ozon says "pass offer_ids or skus"; whether an empty
        filter means every FBO product or an error is unknown, so ``fbo_by_warehouse_requires_filter``
        picks (default: every product). With both lists an entry matches either. ``limit``
        counts entries; the cursor is "" once ``has_next`` is false. ``fbo_by_warehouse_form``
        plays the other readings: rows under ``items``, int64 values as strings.
        """
        req = Body(body, "GetProductInfoStocksByWarehouseFboRequest")
        limit = req.int("limit", 0, 1, 1000)
        offer_ids = set(req.strings("offer_ids", max_items=1000))
        skus = set(req.ints("skus", max_items=1000))
        if self.config.fbo_by_warehouse_requires_filter and not offer_ids and not skus:
            raise req.invalid("offer_ids", "pass offer_ids or skus")
        cursor = req.string("cursor")
        offset = _decode_cursor(cursor) if cursor else 0
        rows = catalogue.rows  # paged in place: no copy of a large catalogue per page
        if offer_ids or skus:
            wanted = skus | {s.sku for p in catalogue.products if p.offer_id in offer_ids for s in p.stocks}
            rows = [r for sku in sorted(wanted) for r in catalogue.rows_of_sku(sku)]
        page = [(r, catalogue.product_of_sku(r.sku)) for r in rows[offset : offset + limit]]
        end = offset + len(page)
        has_next = end < len(rows)
        as_text = self.config.fbo_by_warehouse_form.endswith("_strings")

        def number(value: int) -> int | str:
            return str(value) if as_text else value

        rows_key = "items" if self.config.fbo_by_warehouse_form.startswith("items") else "products"
        return {
            "cursor": _encode_cursor(end, catalogue.version) if has_next else "",
            "has_next": has_next,
            rows_key: [
                {
                    "offer_id": product.offer_id if product else "",
                    "present": number(r.present),
                    "product_id": number(product.product_id if product else 0),
                    "reserved": number(r.reserved),
                    "sku": number(r.sku),
                    "warehouse_id": number(catalogue.ozon_warehouses[r.warehouse].warehouse_id),
                }
                for r, product in page
            ],
        }

    def warehouse_list_v1(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/warehouse/list``: the seller's FBS/rFBS warehouses, ``working_days`` as ints."""
        req = Body(body, "WarehouseListRequest")
        default_limit = 0 if self.config.v1_warehouse_list_requires_limit else 200
        limit = req.int("limit", default_limit, 1, 200)
        offset = req.int("offset", 0, low=0)
        result = []
        for w in catalogue.seller_warehouses[offset : offset + limit]:
            result.append(
                {
                    "warehouse_id": w.warehouse_id,
                    "name": w.name,
                    "is_rfbs": w.is_rfbs,
                    "has_entrusted_acceptance": False,
                    "first_mile_type": {
                        "dropoff_point_id": "",
                        "dropoff_timeslot_id": 0,
                        "first_mile_is_changing": False,
                        "first_mile_type": "DropOff",
                    },
                    "is_kgt": False,
                    "can_print_act_in_advance": False,
                    "min_working_days": 1,
                    "is_karantin": False,
                    "has_postings_limit": False,
                    "postings_limit": -1,
                    "min_postings_limit": 0,
                    "working_days": list(w.working_days),  # ints, as every Ozon example
                    "is_timetable_editable": True,
                    "is_economy": False,
                    "status": w.status,
                }
            )
        return {"result": result}

    def warehouse_list_v2(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v2/warehouse/list``: every field of the EN-2026-04 schema, as in its example."""
        req = Body(body, "WarehouseListV2Request")
        limit = req.int("limit", 0, 1, 200)
        ids = set(req.ints("warehouse_ids", max_items=200))
        cursor = req.string("cursor")
        offset = _decode_cursor(cursor) if cursor else 0
        whs = [w for w in catalogue.seller_warehouses if not ids or w.warehouse_id in ids]
        page = whs[offset : offset + limit]
        end = offset + len(page)
        has_next = end < len(whs)
        return {
            "cursor": _encode_cursor(end, catalogue.version) if has_next else "",
            "has_next": has_next,
            "warehouses": [_warehouse_v2(w) for w in page],
        }

    def seller_warehouse_stocks(self, catalogue: Catalogue, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/product/info/warehouse/stocks``: the stock of one FBS/rFBS warehouse of the seller.

        EN-2026-04's schema (RU-2025-08 lacks the method): ``limit`` 1–1000 and ``warehouse_id``
        required, cursor paging with ``has_next`` (the cursor is "" once it is false). Per SKU, the
        seller's warehouses of a kind add up to v4's ``fbs`` / ``rfbs`` figures
        (``Catalogue.seller_stocks``); a SKU with nothing there is not listed. An id that is not one
        of the seller's warehouses is refused as Ozon refuses an unknown id (code 5, 404).
        """
        req = Body(body, "ProductInfoWarehouseStocksRequest")
        limit = req.int("limit", 0, 1, 1000)
        warehouse_id = req.int("warehouse_id", 0, low=1)
        cursor = req.string("cursor")
        offset = _decode_cursor(cursor) if cursor else 0
        if not any(w.warehouse_id == warehouse_id for w in catalogue.seller_warehouses):
            raise ApiError(404, 5, "warehouse not found")
        entries = catalogue.seller_stocks(warehouse_id)
        page = entries[offset : offset + limit]
        end = offset + len(page)
        has_next = end < len(entries)
        updated = rfc3339(datetime.now(UTC).replace(microsecond=0))
        return {
            "cursor": _encode_cursor(end, catalogue.version) if has_next else "",
            "has_next": has_next,
            "stocks": [
                {
                    "sku": s.sku,
                    "product_id": product.product_id,
                    "offer_id": product.offer_id,
                    "warehouse_id": warehouse_id,
                    "present": present,
                    "reserved": reserved,
                    "free_stock": max(present - reserved, 0),
                    "updated_at": updated,
                }
                for product, s, present, reserved in page
            ],
        }


def _warehouse_v2(w: SellerWarehouse) -> dict[str, Any]:
    """One ``warehouses[]`` entry of ``/v2/warehouse/list`` with every documented field.

    Values follow the official example: lower-case ``status`` ("created"), ``working_days`` by
    name, times in RFC 3339. ``warehouse_type`` has no documented values; FBS/RFBS is a guess.
    """
    return {
        "warehouse_id": w.warehouse_id,
        "name": w.name,
        "status": w.status,
        "warehouse_type": "RFBS" if w.is_rfbs else "FBS",
        "is_rfbs": w.is_rfbs,
        "is_kgt": False,
        "is_express": False,
        "is_comfort": False,
        "is_auto_assembly": False,
        "is_waybill_enabled": False,
        "with_item_list": False,
        "has_entrusted_acceptance": False,
        "has_postings_limit": False,
        "postings_limit": -1,
        "min_postings_limit": 0,
        "cut_in_time": 1080,
        "sla_cut_in": 1440,
        "phone": "+7(999)999-99-99",
        "courier_comment": "",
        "courier_phones": [],
        "carriage_label_type": "BIG",
        "address_info": {
            "address": f"Россия, {w.name}",
            "latitude": 55.75,
            "longitude": 37.62,
            "utc": "UTC+03:00",
        },
        "first_mile": {
            "type": "DROP_OFF",
            "dropoff_point_id": "",
            "timeslot_id": 0,
            "timeslot_from": "09:00",
            "timeslot_to": "18:00",
            "first_mile_is_changing": False,
        },
        "timetable": {
            "timetable_from": "2025-03-01T00:00:00Z",
            "timetable_to": "2027-03-01T00:00:00Z",
            "working_hours": [{"time_from": "2025-03-01T09:00:00Z", "time_to": "2025-03-01T18:00:00Z"}],
        },
        "working_days": [_DAY_NAMES[d - 1] for d in w.working_days],
        "created_at": "2025-03-01T09:00:00Z",
        "updated_at": "2026-10-01T09:00:00Z",
    }


def _rename(node: Any, path: list[str], to: str | None, count: int) -> None:
    """Rename the field at ``path`` in ``node``, entering every list on the way (the first ``count``
    elements of the first one, all when 0); ``to`` "" drops it."""
    if isinstance(node, list):
        for element in node[:count] if count else node:
            _rename(element, path, to, 0)
        return
    if not isinstance(node, dict) or not path:
        return
    key, rest = path[0], path[1:]
    if rest:
        _rename(node.get(key), rest, to, count)
    elif key in node:
        value = node.pop(key)
        new = f"{key}_v2" if to is None else to
        if new:
            node[new] = value


def _broken_gzip(body: bytes) -> bytes:
    """A gzip header followed by bytes that are not deflate data: the gzip stream fails to decode."""
    return gzip.compress(body)[:10] + b"\xff\xfenot a deflate stream" * 4


def _fault(spec: Any) -> Fault:
    """A fault from its JSON form, refusing unknown fields by name."""
    if not isinstance(spec, dict):
        raise ValueError("a fault is an object with method and kind")
    unknown = set(spec) - set(Fault.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown fault field: {', '.join(sorted(unknown))}")
    return Fault(**spec)


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; UTC when neither) or None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"key_expires_at should be an RFC 3339 time, got: {value}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _describe(account: Account) -> dict[str, Any]:
    """An account as the control endpoint shows it: no Api-Key or token, only whether they are set."""
    return {
        "client_id": account.client_id,
        "key_expires_at": rfc3339(account.key_expires_at) if account.key_expires_at else None,
        "key_expired": account.key_expired(),
        "oauth": account.oauth_token is not None,
        "methods": None if account.methods is None else sorted(account.methods),
        "products": len(account.catalogue.products),
    }


def _visible(product: Any, visibility: str) -> bool:
    if visibility == "ALL":
        return True
    if visibility in ("VISIBLE", "IN_SALE"):
        return product.visibility == "VISIBLE"
    if visibility in ("INVISIBLE", "ARCHIVED"):
        return product.visibility != "VISIBLE"
    if visibility == "EMPTY_STOCK":
        return all(s.present == 0 for s in product.stocks)
    return True


def _encode(payload: Any) -> bytes:
    """An answer's JSON, compact as Ozon sends it.

    orjson where it can: a page of 1,000 analytics rows takes it 0.14 ms instead of Python's 3 ms, and
    the simulator shares the test machine's two cores with what it measures (Ozon's servers do not).
    Python's writer for what orjson refuses (an integer past 64 bits, a lone surrogate); the simulator
    makes no non-finite floats, the one thing orjson would write differently (as null).
    """
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _method: str | None = None  # the Ozon method being answered (None for control calls)
    _arrived: float = 0.0  # time.time() when the request arrived
    _client_id: str = "-"  # the account it authenticated as, else the raw Client-Id header
    _fault: Fault | None = None  # a fault that changes how the answer is sent (trickle, bad_gzip)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging: the client logs every request itself."""

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
        fault, self._fault = self._fault, None
        accepts_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "").lower()
        if fault is not None and fault.kind == "bad_gzip":
            body, headers = _broken_gzip(body), headers | {"Content-Encoding": "gzip"}
        elif self._method is not None and self.server.sim.config.compress and accepts_gzip:
            body, headers = gzip.compress(body), headers | {"Content-Encoding": "gzip"}
        self._count(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if fault is not None and fault.kind == "trickle":
            self._trickle(body, fault.delay)
        else:
            self.wfile.write(body)

    def _trickle(self, body: bytes, seconds: float, pieces: int = 40) -> None:
        """Send ``body`` a piece at a time over ``seconds``: every read of the client gets bytes,
        so only a deadline for the whole answer ends it. A client that gave up closes the socket."""
        step = max(1, -(-len(body) // pieces))
        try:
            for start in range(0, len(body), step):
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
                time.sleep(seconds / pieces)
        except OSError:  # the client cut the answer (its deadline)
            self.close_connection = True

    def _count(self, status: int) -> None:
        """Count an answer of a Seller API method before it is sent (control calls are not counted)."""
        method = getattr(self, "_method", None)
        if method is None:
            return
        sim = self.server.sim
        with sim.lock:
            stats = sim.stats
            stats["requests"][method] += 1
            stats["statuses"][f"{method} {status}"] += 1
            now = time.time()
            stats["first"] = stats["first"] or now
            stats["last"] = now
        sim.record(self._arrived, self._client_id, method, status)
        self._method = None

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, _encode(payload), "application/json", headers or {})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._method = None
        sim = self.server.sim
        url = urlsplit(self.path)
        client_id = parse_qs(url.query).get("client_id", [None])[0]
        if url.path == "/__sim/stats":
            self._send_json(200, sim.stats_snapshot())
        elif url.path == "/__sim/requests":
            self._send_json(200, sim.request_log(client_id))
        elif url.path == "/__sim/citizenship":
            self._send_json(200, sim.citizenship(client_id))
        elif url.path == "/__sim/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"code": 5, "message": "Not Found"})

    def do_DELETE(self) -> None:
        self._method = None
        if self.path == "/__sim/faults":
            self.server.sim.clear_faults()
            self._send_json(200, {"faults": []})
        else:
            self._send_json(404, {"code": 5, "message": "Not Found"})

    def do_POST(self) -> None:
        self._arrived = time.time()
        raw = self._read_body()
        self._method = None
        self._fault = None
        if self.path.startswith("/__sim/"):
            self._control(raw)
            return
        sim = self.server.sim
        method = self._method = self.path.split("?", 1)[0]
        self._client_id = self.headers.get("Client-Id") or "-"
        headers: dict[str, str] = {}
        try:
            if method not in METHODS:
                raise ApiError(404, 5, "Not Found")
            account = sim.authenticate(self.headers, method)
            self._client_id = account.client_id
            headers["Ratelimit-Remaining"] = str(sim._rate_check(account.client_id, method))
            fault = sim._take_fault(method)
            if sim.config.latency:
                time.sleep(sim.config.latency)
            if fault is not None and self._play_fault(fault, headers):
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise ApiError(400, 3, f"proto: syntax error: {exc}") from exc
            if body is None:  # a JSON null body is an empty message, as for the gateway
                body = {}
            if not isinstance(body, dict):
                raise ApiError(400, 3, f"proto: syntax error: unexpected token {as_json(body)}")
            with sim.lock:
                answer = sim.handle(method, body, account, uses_oauth(self.headers))
            if fault is not None and fault.kind == "repeat_cursor" and "cursor" in answer:
                answer["cursor"] = body.get("cursor") or answer["cursor"]
            if fault is not None and fault.kind == "mutate":
                with sim.lock:
                    account.catalogue.insert_product_first()
            if fault is not None and fault.kind == "rename":
                _rename(answer, fault.field.split("."), fault.to, fault.count)
            self._send_json(200, answer, headers)
        except ApiError as err:
            self._send_json(
                err.status, {"code": err.code, "message": err.message, "details": []}, headers | err.headers
            )

    def _play_fault(self, fault: Fault, headers: dict[str, str]) -> bool:
        """Answer with the fault; False when the fault changes a normal answer instead."""
        if fault.kind == "status":
            message = fault.message or ("Internal error" if fault.status >= 500 else "error")
            self._send_json(fault.status, {"code": 13, "message": message, "details": []}, headers)
        elif fault.kind == "slow":
            time.sleep(fault.delay)
            return False
        elif fault.kind == "error_body":  # what a gateway sends when it maps an error to 200
            message = fault.message or "Internal error"
            self._send_json(200, {"code": fault.code, "message": message, "details": []}, headers)
        elif fault.kind in ("trickle", "bad_gzip"):
            self._fault = fault  # the normal answer, sent as the fault says (``_send``)
            return False
        elif fault.kind == "rate_limit":
            self._send_json(
                429,
                {"code": 8, "message": "You have reached request rate limit per second"},
                headers | {"Retry-After": str(fault.retry_after), "Ratelimit-Remaining": "0"},
            )
        elif fault.kind == "malformed_json":
            self._send(200, b'{"items": [{"offer_id": "x", "product_id": 1,', "application/json", headers)
        elif fault.kind == "html":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            self._send(502, page, "text/html", headers)
        elif fault.kind == "truncated":
            body = b'{"items": [], "cursor": "", "total": 0}'
            self._count(200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) * 4))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif fault.kind == "obsolete":
            message = fault.message or "Obsolete method cannot be used"
            status = fault.status if fault.status != 503 else 404
            self._send_json(status, {"code": 5, "message": message, "details": []}, headers)
        else:
            return False
        return True

    def _control(self, raw: bytes) -> None:
        sim = self.server.sim
        try:
            payload = json.loads(raw or b"{}")
            if self.path == "/__sim/faults":
                faults = [_fault(f) for f in payload]
                sim.set_faults(faults)
                self._send_json(200, {"faults": [asdict(f) for f in faults]})
            elif self.path == "/__sim/catalogue":
                self._send_json(200, self._change_catalogue(payload))
            elif self.path == "/__sim/config":
                unknown = set(payload) - set(asdict(sim.config))
                if unknown:
                    raise ValueError(f"unknown setting: {', '.join(sorted(unknown))}")
                self._send_json(200, asdict(sim.configure(payload)))
            elif self.path == "/__sim/account":
                self._send_json(200, sim.set_account(payload))
            elif self.path == "/__sim/stats/reset":
                sim.reset_stats()
                self._send_json(200, {})
            else:
                self._send_json(404, {"code": 5, "message": "Not Found"})
        except KeyError as exc:
            self._send_json(400, {"code": 3, "message": f"missing field: {exc.args[0]}"})
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"code": 3, "message": str(exc)})

    def _change_catalogue(self, payload: dict[str, Any]) -> dict[str, Any]:
        sim = self.server.sim
        client_id = str(payload.get("client_id") or next(iter(sim.accounts)))
        account = sim.accounts.get(client_id)
        if account is None:
            raise ValueError(f"unknown client_id {client_id}")
        action = payload.get("action")
        with sim.lock:
            if action == "change":
                return {
                    "changed_rows": account.catalogue.change_stock(
                        float(payload["fraction"]), int(payload.get("seed", 1))
                    )
                }
            if action == "remove":
                return {"removed_products": account.catalogue.remove_products(int(payload["count"]))}
        raise ValueError(f"unknown catalogue action {action}; use change or remove")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: OzonSimulator):
        super().__init__(address, _Handler)
        self.sim = sim

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout) is expected under the slow fault: stay quiet."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class RunningSimulator:
    """A simulator serving on a background thread; ``url`` is its base address."""

    sim: OzonSimulator
    server: _Server
    thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(sim: OzonSimulator, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Start serving ``sim`` on a background thread (port 0 picks a free port)."""
    server = _Server((host, port), sim)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="ozon-simulator", daemon=True
    )
    thread.start()
    return RunningSimulator(sim, server, thread)


def default_simulator(
    products: int = 175,
    warehouses: int = 27,
    seed: int = 42,
    client_id: str = "100200",
    api_key: str = "sim-api-key",
    analytics_rows: int | None = None,
    rows_per_sku: float | None = None,
    config: SimulatorConfig | None = None,
) -> OzonSimulator:
    """One account with a catalogue; the old system's dataset when called with no arguments."""
    if analytics_rows is None and rows_per_sku is None and (products, warehouses) == (175, 27):
        analytics_rows = 511
    catalogue = build_catalogue(products, warehouses, seed, rows_per_sku, analytics_rows)
    return OzonSimulator([Account(client_id, api_key, catalogue)], config)
