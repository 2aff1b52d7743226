"""HTTP client for the Ozon Seller API stock and warehouse methods.

Plain Python (requests), so it runs and is tested without Airflow; ``OzonHook`` builds it from an
Airflow connection. Why it looks the way it does:

- Every method here is a read, so repeating a POST is safe: 429, 5xx, timeouts, connection errors
  and broken bodies are retried with exponential backoff and full jitter; 400/401/403/404 are not.
- One requests session per thread is reused for every page (keep-alive), and one rate budget per
  Client-Id is shared by every thread of the process.
- Paging ends by the rules of the API notes (empty page, empty cursor, short page); a cursor Ozon
  already gave is an error, and pages are capped, so a misbehaving server cannot loop us forever.
- The Api-Key is only ever put in a request header: never in a log line, an exception or a repr.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from ozon_inventory.exceptions import (
    OzonApiError,
    OzonAuthError,
    OzonMethodUnavailable,
    OzonPagingError,
    OzonSnapshotChanged,
    OzonTransientError,
)
from ozon_inventory.ratelimit import RateBudget, budget_for

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api-seller.ozon.ru"
V4_STOCKS = "/v4/product/info/stocks"
V2_STOCK_ON_WAREHOUSES = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS_STOCKS = "/v1/analytics/stocks"
V1_WAREHOUSE_LIST = "/v1/warehouse/list"
V2_WAREHOUSE_LIST = "/v2/warehouse/list"

#: Method-specific limits documented by Ozon: (requests, per seconds).
METHOD_LIMITS: dict[str, tuple[float, float]] = {V1_WAREHOUSE_LIST: (1, 60.0)}
#: Largest page each method accepts.
PAGE_LIMITS = {
    V4_STOCKS: 1000,
    V2_STOCK_ON_WAREHOUSES: 1000,
    V1_ANALYTICS_STOCKS: 100,
    V1_WAREHOUSE_LIST: 200,
    V2_WAREHOUSE_LIST: 200,
}
_RETRY_AFTER_CAP = 120.0


@dataclass
class Page:
    """One answer, kept exactly as received (``raw``) beside its parsed form."""

    method: str
    number: int
    raw: bytes
    data: dict[str, Any]
    rows: int
    request: dict[str, Any]


@dataclass
class MethodStats:
    """Request figures of one method, for the log summary and the run ledger."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    rows: int = 0
    bytes: int = 0
    errors: int = 0
    latency_s: float = 0.0
    waited_s: float = 0.0
    first_at: float | None = None
    last_at: float | None = None

    @property
    def rate(self) -> float:
        """Requests per second between the first and the last request."""
        if self.first_at is None or self.last_at is None or self.requests < 2:
            return 0.0
        span = self.last_at - self.first_at
        return (self.requests - 1) / span if span > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rate_per_s"] = round(self.rate, 2)
        out["latency_s"] = round(self.latency_s, 3)
        out["waited_s"] = round(self.waited_s, 3)
        return out


def _positive_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


@dataclass
class OzonClient:
    """A client of one seller account (one Client-Id / Api-Key pair)."""

    base_url: str
    client_id: str
    api_key: str = field(repr=False)
    rate_limit: float = 50.0
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_pages: int = 100_000
    workers: int = 4
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    stats: dict[str, MethodStats] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or DEFAULT_HOST).rstrip("/")
        if not str(self.client_id).strip():
            raise ValueError("Ozon Client-Id is empty: set it as the connection's login")
        if not self.api_key:
            raise ValueError("Ozon Api-Key is empty: set it as the connection's password")
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self._budget = budget_for(str(self.client_id), "*", self.rate_limit)

    # -- transport -----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.workers)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(
                {
                    "Client-Id": str(self.client_id),
                    "Api-Key": self.api_key,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                }
            )
            session.trust_env = False
            self._local.session = session
        return session

    def _method_budget(self, method: str) -> RateBudget | None:
        if method not in METHOD_LIMITS:
            return None
        return budget_for(str(self.client_id), method, *METHOD_LIMITS[method])

    def _stat(self, method: str) -> MethodStats:
        with self._stats_lock:
            return self.stats.setdefault(method, MethodStats())

    def post(
        self,
        method: str,
        body: dict[str, Any],
        check: Callable[[dict[str, Any]], int],
    ) -> tuple[bytes, dict[str, Any], int]:
        """POST ``body`` to ``method``; return (raw body, parsed body, rows).

        ``check`` returns the number of rows of a good answer and raises ``ValueError`` for an answer
        of the wrong shape, which is retried like a broken body.
        """
        payload = json.dumps(body, ensure_ascii=False).encode()
        url = self.base_url + method
        stat = self._stat(method)
        method_budget = self._method_budget(method)
        cause = ""
        for attempt in range(1, self.max_retries + 2):
            waited = self._budget.acquire()
            if method_budget is not None:
                waited += method_budget.acquire()
            started = time.monotonic()
            status: int | str = "-"
            rows: int | None = None
            retry_after = 0.0
            raw = b""
            try:
                response = self._session().post(url, data=payload, timeout=self.timeout)
                raw = response.content
                status = response.status_code
            except requests.Timeout:
                cause = f"timed out after {self.timeout:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                cause = f"connection error ({type(exc).__name__}: body cut short or connection lost)"
            latency = time.monotonic() - started
            error: OzonApiError | None = None
            if isinstance(status, int):
                remaining = _positive_int(response.headers.get("Ratelimit-Remaining"))
                if remaining is not None:
                    self._budget.observe_remaining(remaining)
                if status == 200:
                    try:
                        data = json.loads(raw)
                        if not isinstance(data, dict):
                            raise ValueError("not a JSON object")
                        rows = check(data)
                    except ValueError as exc:
                        cause = f"HTTP 200 with a broken body ({len(raw)} bytes): {exc}"
                    else:
                        self._record(stat, attempt, status, latency, waited, rows, len(raw), method)
                        return raw, data, rows
                elif status == 429:
                    retry_after = min(
                        _RETRY_AFTER_CAP, float(_positive_int(response.headers.get("Retry-After")) or 1)
                    )
                    self._budget.pause(retry_after)
                    cause = f"HTTP 429 rate limited ({_error_text(raw)}), Retry-After {retry_after:g} s"
                elif status >= 500:
                    cause = f"HTTP {status}: {_error_text(raw)}"
                else:
                    error = _classify(method, status, raw)
            self._record(stat, attempt, status, latency, waited, rows, len(raw), method, failed=True)
            if error is not None:
                raise error
            if attempt <= self.max_retries:
                delay = random.uniform(0, min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))
                log.warning(
                    "Ozon %s attempt %d failed (%s); retrying in %.2f s", method, attempt, cause, delay
                )
                self.sleep(max(delay, 0.0))
        raise OzonTransientError(method, self.max_retries + 1, cause)

    def _record(
        self,
        stat: MethodStats,
        attempt: int,
        status: int | str,
        latency: float,
        waited: float,
        rows: int | None,
        size: int,
        method: str,
        failed: bool = False,
    ) -> None:
        now = time.time()
        with self._stats_lock:
            stat.requests += 1
            stat.retries += attempt > 1
            stat.errors += failed
            stat.latency_s += latency
            stat.waited_s += waited
            stat.bytes += size
            stat.rows += rows or 0
            stat.pages += not failed
            stat.first_at = stat.first_at or now
            stat.last_at = now
        log.info(
            "ENDPOINT_USAGE method=%s status=%s latency_ms=%.1f attempt=%d rows=%s bytes=%d",
            method,
            status,
            latency * 1000,
            attempt,
            "-" if rows is None else rows,
            size,
        )

    def summary(self) -> dict[str, dict[str, Any]]:
        """Request figures per method (for the run ledger), and one log line per method."""
        with self._stats_lock:
            out = {m: s.as_dict() for m, s in self.stats.items()}
        for method, figures in out.items():
            log.info(
                "ENDPOINT_SUMMARY method=%s requests=%d retries=%d errors=%d pages=%d rows=%d rate=%.1f/s",
                method,
                figures["requests"],
                figures["retries"],
                figures["errors"],
                figures["pages"],
                figures["rows"],
                figures["rate_per_s"],
            )
        return out

    # -- paging --------------------------------------------------------------------------------

    def _check_page_cap(self, method: str, pages_so_far: int) -> None:
        if pages_so_far >= self.max_pages:
            raise OzonPagingError(f"Ozon {method}: more than {self.max_pages} pages; stopped paging")

    def iter_product_stocks(self, limit: int = 1000, filter: dict[str, Any] | None = None) -> Iterator[Page]:  # noqa: A002
        """``/v4/product/info/stocks`` page by page (cursor paging).

        Raises ``OzonSnapshotChanged`` after the last page when a product came twice or the count
        differs from ``total_items`` (``total`` before it): the catalogue moved while we paged.
        """
        method = V4_STOCKS
        limit = _check_limit(method, limit)
        cursor = ""
        given: set[str] = set()
        seen: set[int] = set()
        duplicates = 0
        total: int | None = None
        number = 0
        while True:
            self._check_page_cap(method, number)
            body = {"cursor": cursor, "filter": filter or {"visibility": "ALL"}, "limit": limit}
            raw, data, rows = self.post(method, body, _items_rows)
            number += 1
            items = data.get("items") or []
            for item in items:
                pid = _positive_int(item.get("product_id")) if isinstance(item, dict) else None
                if pid is not None:
                    duplicates += pid in seen
                    seen.add(pid)
            total = _positive_int(data.get("total_items", data.get("total"))) if number == 1 else total
            yield Page(method, number, raw, data, rows, body)
            next_cursor = data.get("cursor") or ""
            if not items or not next_cursor or len(items) < limit:
                break
            cursor = _next_cursor(method, number, cursor, next_cursor, given)
        if duplicates or (total is not None and total != len(seen)):
            raise OzonSnapshotChanged(
                f"Ozon {method}: the catalogue changed while paging "
                f"({len(seen)} distinct products, {duplicates} repeated, total said {total})"
            )

    def iter_stock_on_warehouses(
        self, limit: int = 1000, warehouse_type: str = "ALL", expected_rows: int | None = None
    ) -> Iterator[Page]:
        """``/v2/analytics/stock_on_warehouses`` by offset, up to ``workers`` pages in flight.

        The method has no total, so pages ahead are requested speculatively and the first short
        page ends paging. ``expected_rows`` (the last snapshot's size) bounds the speculation: pages
        past it go one at a time, so a stable catalogue costs no request past the end; without it, at
        most ``workers - 1`` requests go past the end. Pages are yielded in order.
        """
        method = V2_STOCK_ON_WAREHOUSES
        limit = _check_limit(method, limit)
        full_pages = None if expected_rows is None else max(0, expected_rows) // limit

        def fetch(offset: int) -> tuple[bytes, dict[str, Any], int, dict[str, Any]]:
            body = {"limit": limit, "offset": offset, "warehouse_type": warehouse_type}
            return (*self.post(method, body, _analytics_rows), body)

        keys: set[int] = set()
        duplicates = 0
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ozon-offset") as pool:
            pending: dict[int, Future[Any]] = {}
            next_offset = 0

            def top_up() -> None:
                nonlocal next_offset
                while len(pending) < self.workers:
                    if pending and full_pages is not None and next_offset // limit > full_pages:
                        return  # past the expected end: one request at a time
                    pending[next_offset] = pool.submit(fetch, next_offset)
                    next_offset += limit

            number = 0
            try:
                top_up()
                while pending:
                    offset = min(pending)
                    raw, data, rows, body = pending.pop(offset).result()
                    self._check_page_cap(method, number)
                    number += 1
                    for row in data["result"]["rows"]:
                        key = (
                            hash((row.get("sku"), row.get("warehouse_name"))) if isinstance(row, dict) else 0
                        )
                        duplicates += key in keys
                        keys.add(key)
                    yield Page(method, number, raw, data, rows, body)
                    if rows < limit:
                        break  # the end: pages still in flight are past it
                    top_up()
            finally:
                for future in pending.values():
                    future.cancel()
        if duplicates:
            raise OzonSnapshotChanged(
                f"Ozon {method}: rows moved while paging ({duplicates} SKU × warehouse rows came twice)"
            )

    def iter_analytics_stocks(self, skus: Iterable[int], batch: int = 100) -> Iterator[Page]:
        """``/v1/analytics/stocks`` for the given SKUs, in batches of at most 100, in parallel."""
        method = V1_ANALYTICS_STOCKS
        batch = _check_limit(method, batch)
        ordered = list(dict.fromkeys(int(s) for s in skus))
        batches = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]

        def fetch(part: list[int]) -> tuple[bytes, dict[str, Any], int, dict[str, Any]]:
            body = {"skus": [str(s) for s in part]}
            return (*self.post(method, body, _items_rows), body)

        # A window of batches in flight, not all of them: finished answers wait in memory until the
        # consumer takes them, so an unbounded queue would hold the whole catalogue.
        window = 2 * self.workers
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ozon-skus") as pool:
            pending: deque[Future[Any]] = deque()
            remaining = iter(batches)
            try:
                for part in itertools.islice(remaining, window):
                    pending.append(pool.submit(fetch, part))
                number = 0
                while pending:
                    raw, data, rows, body = pending.popleft().result()
                    number += 1
                    part = next(remaining, None)
                    if part is not None:
                        pending.append(pool.submit(fetch, part))
                    yield Page(method, number, raw, data, rows, body)
            finally:
                for future in pending:
                    future.cancel()

    def iter_warehouses_v1(self, limit: int = 200) -> Iterator[Page]:
        """``/v1/warehouse/list`` by offset (1 request a minute: a second page waits)."""
        method = V1_WAREHOUSE_LIST
        limit = _check_limit(method, limit)
        offset, number = 0, 0
        while True:
            self._check_page_cap(method, number)
            body = {"limit": limit, "offset": offset}
            raw, data, rows = self.post(method, body, _result_rows)
            number += 1
            yield Page(method, number, raw, data, rows, body)
            if rows < limit:
                break
            offset += limit

    def iter_warehouses_v2(self, limit: int = 200) -> Iterator[Page]:
        """``/v2/warehouse/list`` by cursor until ``has_next`` is false."""
        method = V2_WAREHOUSE_LIST
        limit = _check_limit(method, limit)
        cursor, given, number = "", set(), 0
        while True:
            self._check_page_cap(method, number)
            body = {"cursor": cursor, "limit": limit}
            raw, data, rows = self.post(method, body, _warehouses_rows)
            number += 1
            yield Page(method, number, raw, data, rows, body)
            next_cursor = data.get("cursor") or ""
            if data.get("has_next") not in (True, "true") or not next_cursor or not rows:
                break
            cursor = _next_cursor(method, number, cursor, next_cursor, given)


def _next_cursor(method: str, number: int, cursor: str, next_cursor: str, given: set[str]) -> str:
    """The cursor for the next page; one Ozon already gave means paging would loop forever."""
    if next_cursor == cursor or next_cursor in given:
        raise OzonPagingError(
            f"Ozon {method} gave cursor {next_cursor[:40]!r} again on page {number}: paging would never end"
        )
    given.add(next_cursor)
    return next_cursor


def _check_limit(method: str, limit: int) -> int:
    maximum = PAGE_LIMITS[method]
    if not 1 <= int(limit) <= maximum:
        raise ValueError(f"page limit for {method} must be 1..{maximum}, got {limit}")
    return int(limit)


def _list_field(container: Any, key: str) -> list[Any]:
    if not isinstance(container, dict):
        raise ValueError(f"expected an object holding {key!r}")
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key!r} is not an array")
    return value


def _items_rows(data: dict[str, Any]) -> int:
    """Rows of an answer listing ``items`` (v4 stocks, v1 analytics stocks)."""
    return len(_list_field(data, "items"))


def _analytics_rows(data: dict[str, Any]) -> int:
    result = data.get("result")
    rows = _list_field(result, "rows")
    result["rows"] = rows
    return len(rows)


def _result_rows(data: dict[str, Any]) -> int:
    return len(_list_field(data, "result"))


def _warehouses_rows(data: dict[str, Any]) -> int:
    return len(_list_field(data, "warehouses"))


def _error_text(raw: bytes) -> str:
    """Ozon's ``message`` from an error body, or a short description of a non-JSON body."""
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])[:300]
    except ValueError:
        pass
    text = raw[:120].decode("utf-8", "replace").replace("\n", " ")
    return f"non-JSON body {text!r}"


def _classify(method: str, status: int, raw: bytes) -> OzonApiError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("code")
    message = str(body.get("message") or _error_text(raw))
    lowered = message.lower()
    if "obsolete" in lowered or "method is not allowed" in lowered:
        return OzonMethodUnavailable(method, status, code, message)
    if status in (401, 403) or "api-key" in lowered or "client-id" in lowered:
        return OzonAuthError(method, status, code, message)
    if status == 404:
        return OzonMethodUnavailable(method, status, code, message)
    return OzonApiError(method, status, code, message)
