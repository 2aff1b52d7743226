"""HTTP client for the Ozon Seller API stock and warehouse methods.

Plain Python (requests + tenacity), so it runs and is tested without Airflow; ``OzonHook`` builds it
from an Airflow connection and hands it the session factory of ``HttpHook``. Why it looks the way
it does:

- Every method here is a read, so repeating a POST is safe. One retry layer (tenacity): 429, 5xx,
  timeouts, connection errors and broken bodies are retried with exponential backoff and full
  jitter, ``Retry-After`` honoured; 400/401/403/404 are not retried.
- Ozon may restrict an account that sends many erroneous requests, so a circuit breaker per method
  declares the method down after a few consecutive failures: no further request goes to it in this
  run, pages in flight are cancelled, and the fetch moves to the successor where there is one.
- Every request takes a slot from the rate budget of its Client-Id, shared by every process and
  worker through PostgreSQL when the budget is given a database (``ratelimit.py``).
- One requests session per thread is reused for every page (keep-alive).
- One pager per paging kind (``methods.Paging``) reads the method's facts from ``methods.py``.
  Paging ends by the API notes' rules; a cursor Ozon already gave is an error; pages are capped;
  offset pages overlap by one row, so rows that moved while we paged are noticed, not skipped.
- The Api-Key (or OAuth token) is only ever put in a request header by ``OzonAuth``: never in a
  log line, an exception or a repr.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import math
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import requests
import urllib3
from requests.auth import AuthBase
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3.exceptions import ReadTimeoutError

from ozon_inventory.exceptions import (
    ConfigError,
    OzonApiError,
    OzonAuthError,
    OzonMethodDown,
    OzonMethodUnavailable,
    OzonPagingError,
    OzonRowsRepeated,
    OzonSchemaChanged,
    OzonSnapshotChanged,
    OzonTransientError,
)
from ozon_inventory.keylog import KeyLog
from ozon_inventory.methods import OzonMethod, Paging, method_limits, parse_answer
from ozon_inventory.ratelimit import DEFAULT_HEADROOM, RateBudget, budget_for

if TYPE_CHECKING:
    from ozon_inventory.hooks.postgres import Database

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api-seller.ozon.ru"
_RETRY_AFTER_CAP = 120.0


#: What each tuning option of the client must be: (lowest, lowest allowed itself?, unit).
_OPTION_RULES: dict[str, tuple[float, bool, str]] = {
    "rate_limit": (0, False, " requests/s"),
    "headroom": (0, False, ""),
    "timeout": (0, False, " s"),
    "max_retries": (0, True, ""),
    "backoff": (0, True, " s"),
    "backoff_max": (0, True, " s"),
    "breaker_threshold": (1, True, ""),
    "workers": (1, True, ""),
    "max_pages": (1, True, ""),
}


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with a tuning option's value (``workers=0`` would fail deep in a thread pool), or None."""
    rule = _OPTION_RULES.get(name)
    if rule is None:
        return None
    low, inclusive, unit = rule
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if value < low or (value == low and not inclusive):
        return f"{name} must be {'at least' if inclusive else 'more than'} {low}{unit}, got {value:g}"
    if name == "headroom" and value > 1:
        return f"headroom must be at most 1 (a share of the rate limit), got {value:g}"
    return None


def clean_secret(value: Any, what: str, where: str) -> str:
    """A header value from a credential: surrounding whitespace dropped, inner control characters refused.

    A key pasted with a trailing newline would otherwise make requests raise ``InvalidHeader`` with
    the whole key in its message.
    """
    text = "" if value is None else str(value).strip()
    if not text:
        raise ConfigError(f"{where}: {what} is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"{where}: {what} holds a control character (a line break?); paste it again")
    return text


class OzonAuth(AuthBase):
    """Ozon's auth headers: ``Client-Id`` + ``Api-Key``, or ``Authorization: Bearer`` for an OAuth token."""

    def __init__(self, client_id: str, api_key: str | None = None, token: str | None = None):
        self.client_id, self._api_key, self._token = client_id, api_key, token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        else:
            request.headers["Client-Id"] = self.client_id
            request.headers["Api-Key"] = self._api_key or ""
        return request

    def __repr__(self) -> str:
        return f"OzonAuth(client_id={self.client_id!r}, {'token' if self._token else 'api_key'}=***)"


@dataclass
class Page:
    """One answer, kept exactly as received (``raw``) beside its parsed form."""

    method: str
    number: int
    raw: bytes
    data: dict[str, Any]
    rows: int
    request: dict[str, Any]
    date: str | None = None  # Ozon's ``Date`` header: the server's clock, not ours


@dataclass
class MethodStats:
    """Request figures of one method, for the log summary and the run ledger."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    rows: int = 0
    bytes: int = 0
    errors: int = 0
    responses_429: int = 0
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


class _Retryable(Exception):
    """An attempt that failed in a way another attempt may not: 429, 5xx, timeout, broken body."""

    def __init__(self, cause: str, status: int | None = None, retry_after: float = 0.0):
        super().__init__(cause)
        self.cause, self.status, self.retry_after = cause, status, retry_after


class _Cut(Exception):
    """An answer that did not arrive whole: its deadline passed, or the connection broke."""

    def __init__(self, cause: str, size: int):
        super().__init__(cause)
        self.cause, self.size = cause, size


class _Undecodable(_Cut):
    """A body that arrived whole but cannot be decoded as its ``Content-Encoding`` says."""


#: bytes asked of the socket per read: each read returns what has arrived, up to this
_CHUNK = 256 * 1024


def _whole_body(response: requests.Response, deadline: float, timeout: float) -> bytes:
    """The body as it came, read by ``deadline`` (``time.monotonic``): a body that trickles in is cut
    there, not after ``timeout`` per read as the socket alone would (each read gets a few bytes in
    time). Each read waits at most what is left of the deadline; the connection goes back to the
    pool once the body ends, and is closed when it is cut."""
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    announced = response.headers.get("Content-Length")
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Cut(
                    f"timed out after {timeout:g} s: the answer was still arriving ({size} bytes in)", size
                )
            if sock is not None and not raw.isclosed():
                sock.settimeout(min(timeout, left))
            try:
                chunk = raw.read1(_CHUNK, decode_content=False)
            except ReadTimeoutError:
                late = time.monotonic() >= deadline - 0.01
                said = "was still arriving" if late and size else "stopped arriving"
                raise _Cut(
                    f"timed out after {timeout:g} s: the answer {said} ({size} bytes in)", size
                ) from None
            except (urllib3.exceptions.HTTPError, OSError):
                of = f" of the {announced} announced" if announced else ""
                raise _Cut(
                    f"connection error (body cut short: the connection closed after {size}{of} bytes)", size
                ) from None
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
    except _Cut:
        response.close()
        raise


def _decoded(data: bytes, response: requests.Response) -> bytes:
    """The body without its ``Content-Encoding`` (gzip or deflate, the ones the client accepts)."""
    header = response.headers.get("Content-Encoding") or ""
    for coding in reversed([c.strip().lower() for c in header.split(",") if c.strip()]):
        if coding == "identity":
            continue
        try:
            if coding in ("gzip", "x-gzip"):
                data = gzip.decompress(data)
            elif coding == "deflate":
                data = zlib.decompress(data, -zlib.MAX_WBITS if data[:1] != b"\x78" else zlib.MAX_WBITS)
            else:
                raise _Undecodable(
                    f"it is marked Content-Encoding: {coding}, which the client did not ask for", len(data)
                )
        except (OSError, EOFError, zlib.error) as exc:
            raise _Undecodable(
                f"it is marked Content-Encoding: {coding}, but is not valid {coding} data ({exc})", len(data)
            ) from None
    return data


class CircuitBreaker:
    """Declares a method down after ``threshold`` consecutive failed attempts (429s do not count).

    ``down`` survives the client: the fetch stores it with the run (staging), so a task retry does
    not hammer again a method this run already found dead. After ``cooldown`` seconds the breaker
    is half-open: one request may probe the method (an operator's clear once Ozon has healed); a
    success closes it, a failure opens it again at once.
    """

    def __init__(
        self, threshold: int = 5, cooldown: float = 60.0, down: dict[str, dict[str, Any]] | None = None
    ):
        self.threshold, self.cooldown = threshold, cooldown
        self.down: dict[str, dict[str, Any]] = dict(down or {})
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self.on_open: Callable[[str, dict[str, Any]], None] | None = None

    def check(self, method: str) -> None:
        with self._lock:
            info = self.down.get(method)
            if info is None:
                return
            if time.time() - float(info.get("at") or 0) >= self.cooldown:
                del self.down[method]  # half-open: this request probes; one failure re-opens
                self._failures[method] = self.threshold - 1
                log.info(
                    "Ozon %s was declared down %.0f s ago: probing it again", method, time.time() - info["at"]
                )
                return
        raise OzonMethodDown(
            method, info.get("status"), str(info.get("cause", "")), int(info.get("failures", 0))
        )

    def success(self, method: str) -> None:
        with self._lock:
            self._failures[method] = 0

    def failure(self, method: str, status: int | None, cause: str) -> None:
        with self._lock:
            count = self._failures[method] = self._failures.get(method, 0) + 1
            if count < self.threshold or method in self.down:
                return
            info = {"status": status, "cause": cause, "failures": count, "at": time.time()}
            self.down[method] = info
        log.error("Ozon %s declared down after %d consecutive failures; last: %s", method, count, cause)
        if self.on_open is not None:
            self.on_open(method, info)


def _sessions(auth: AuthBase) -> Callable[[], requests.Session]:
    """A plain session factory (outside Airflow; ``OzonHook`` passes ``HttpHook.get_conn`` instead)."""

    def make() -> requests.Session:
        session = requests.Session()
        session.auth = auth
        session.trust_env = False
        return session

    return make


@dataclass
class OzonClient:
    """A client of one seller account (one Client-Id with its Api-Key, or an OAuth token)."""

    base_url: str
    client_id: str
    api_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    rate_limit: float = 50.0
    headroom: float = DEFAULT_HEADROOM
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 60.0
    max_pages: int = 100_000
    workers: int = 4
    #: where the rate budget is shared: a ``Database`` (or a conninfo); None: this process only
    budget_db: Database | str | None = field(default=None, repr=False)
    session_factory: Callable[[], requests.Session] | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    stats: dict[str, MethodStats] = field(default_factory=dict, repr=False)
    breaker: CircuitBreaker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or DEFAULT_HOST).rstrip("/")
        self.client_id = clean_secret(self.client_id, "the Client-Id", "Ozon client")
        for name in _OPTION_RULES:
            problem = option_problem(name, getattr(self, name))
            if problem:
                raise ConfigError(f"Ozon client for Client-Id {self.client_id}: {problem}")
        if self.token:
            self.token = clean_secret(self.token, "the OAuth token", f"Ozon account {self.client_id}")
        else:
            self.api_key = clean_secret(self.api_key, "the Api-Key", f"Ozon account {self.client_id}")
        self.auth = OzonAuth(self.client_id, self.api_key, self.token)
        # an error body that repeats the key (Ozon's message, a proxy echoing headers) is masked
        # before its text reaches an exception or a log line
        self._secrets = [x.encode() for x in (self.api_key, self.token) if x and len(x) >= 6]
        self._factory = self.session_factory or _sessions(self.auth)
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self.breaker = CircuitBreaker(self.breaker_threshold, self.breaker_cooldown)
        self.budget: RateBudget = budget_for(
            self.client_id, self.rate_limit, self.headroom, method_limits(), self.budget_db
        )

    # -- transport -----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._factory()
            session.auth = self.auth
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.workers)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(
                {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Accept-Encoding": "gzip, deflate",  # the encodings ``_decoded`` reads
                }
            )
            self._local.session = session
        return session

    def _stat(self, method: str) -> MethodStats:
        with self._stats_lock:
            return self.stats.setdefault(method, MethodStats())

    def post(self, method: OzonMethod, body: dict[str, Any]) -> Page:
        """POST ``body`` to ``method`` with retries; the answer as a ``Page`` (number 0).

        An answer without the documented rows is retried like a broken body; 400/401/403/404 raise
        at once; a method the breaker declared down raises ``OzonMethodDown`` without a request.
        """
        payload = json.dumps(body, ensure_ascii=False).encode()
        attempts = stop_after_attempt(self.max_retries + 1)
        jitter = wait_random_exponential(multiplier=self.backoff, max=self.backoff_max)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            after = error.retry_after if isinstance(error, _Retryable) else 0.0
            return max(after, jitter(state))

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Ozon %s attempt %d failed (%s); retrying in %.2f s",
                method.path,
                state.attempt_number,
                error,
                delay,
            )

        retrying = Retrying(
            stop=attempts,
            wait=wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, payload, body, attempt.retry_state.attempt_number)
        except _Retryable as exc:
            # the last attempt can be the very failure that declared the method down: then it is down
            self.breaker.check(method.path)
            raise OzonTransientError(method.path, self.max_retries + 1, exc.cause, exc.status) from None
        raise AssertionError("unreachable")

    def _attempt(self, method: OzonMethod, payload: bytes, body: dict[str, Any], attempt: int) -> Page:
        """One request: wait for a budget slot, send, classify the answer."""
        path = method.path
        self.breaker.check(path)
        # Everything slow comes before the slot: once it is ours, the request leaves at once (a
        # request that leaves late crowds into the second with the ones after it).
        session, url, stat = self._session(), self.base_url + path, self._stat(path)
        waited = self.budget.acquire(path if method.rate_limit else None)
        self.breaker.check(path)  # it may have opened while we waited
        started = time.monotonic()
        try:
            response = session.post(url, data=payload, timeout=self.timeout, stream=True)
        except requests.Timeout:
            cause = f"timed out after {self.timeout:g} s (no answer)"
            self._failed(stat, path, attempt, "-", started, waited, 0, None, cause)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self._failed(stat, path, attempt, "-", started, waited, 0, None, self._connection_cause(exc))
        status = response.status_code
        try:
            raw = _decoded(_whole_body(response, started + self.timeout, self.timeout), response)
        except _Undecodable as exc:
            cause = f"HTTP {status} with a broken body ({exc.size} bytes): {exc.cause}"
            self._failed(stat, path, attempt, status, started, waited, exc.size, status, cause)
        except _Cut as exc:  # a timeout or a broken connection: nothing came that could be read
            self._failed(stat, path, attempt, "-", started, waited, exc.size, None, exc.cause)
        shown_raw = self._scrub(raw) if status != 200 else raw
        remaining = _non_negative(response.headers.get("Ratelimit-Remaining"))
        if remaining is not None:
            self.budget.observe_remaining(remaining)
        if status == 200:
            try:
                data = parse_answer(raw)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, RecursionError) as exc:
                cause = f"HTTP 200 with a broken body ({len(raw)} bytes): not valid JSON ({exc})"
                self._failed(stat, path, attempt, status, started, waited, len(raw), status, cause)
            error = method.ozon_error(data)
            if error is not None:  # Ozon's error under HTTP 200: the error of its code's status
                self._error_in_body(stat, path, attempt, started, waited, raw, response, *error)
            problem = method.shape_problem(data)
            if problem is not None:  # not retried: Ozon answers the same shape until we read it
                self._record(stat, path, attempt, status, started, waited, None, len(raw), failed=True)
                raise OzonSchemaChanged(path, problem.field, problem.detail, self._example(problem.example))
            rows = len(method.rows(data))
            self.breaker.success(path)
            self._record(stat, path, attempt, status, started, waited, rows, len(raw))
            return Page(path, 0, raw, data, rows, body, response.headers.get("Date"))
        if status == 429:
            self._rate_limited(stat, path, attempt, status, started, waited, len(raw), response, shown_raw)
        if status >= 500:
            self._failed(
                stat,
                path,
                attempt,
                status,
                started,
                waited,
                len(raw),
                status,
                f"HTTP {status}: {_error_text(shown_raw)}",
            )
        self._record(stat, path, attempt, status, started, waited, None, len(raw), failed=True)
        raise _classify(path, status, shown_raw)

    def _rate_limited(
        self,
        stat: MethodStats,
        path: str,
        attempt: int,
        status: int,
        started: float,
        waited: float,
        size: int,
        response: requests.Response,
        shown_raw: bytes,
    ) -> NoReturn:
        """A 429 (or its code 8 under HTTP 200): pause the account's budget, retry after it."""
        retry_after = min(_RETRY_AFTER_CAP, float(_non_negative(response.headers.get("Retry-After")) or 1))
        self.budget.pause(retry_after)
        with self._stats_lock:
            stat.responses_429 += 1
        said = "rate limited" if status == 429 else "with an error body, code 8: rate limited"
        cause = f"HTTP {status} {said} ({_error_text(shown_raw)}), Retry-After {retry_after:g} s"
        self._record(stat, path, attempt, status, started, waited, None, size, failed=True)
        raise _Retryable(cause, status, retry_after)

    def _error_in_body(
        self,
        stat: MethodStats,
        path: str,
        attempt: int,
        started: float,
        waited: float,
        raw: bytes,
        response: requests.Response,
        code: Any,
        message: str,
    ) -> NoReturn:
        """An HTTP 200 whose body is Ozon's error (``code``/``message``, no rows): handled as the
        error of the status its code stands for (gRPC's mapping), so it is never read as no rows."""
        shown = self._scrub(raw)
        equivalent, name = _grpc_status(code)
        if equivalent == 429:
            self._rate_limited(stat, path, attempt, 200, started, waited, len(raw), response, shown)
        if equivalent >= 500:
            cause = (
                f"HTTP 200 with an error body, code {code} ({name}, handled as HTTP {equivalent}): "
                f"{_error_text(shown)}"
            )
            self._failed(stat, path, attempt, 200, started, waited, len(raw), 200, cause)
        self._record(stat, path, attempt, 200, started, waited, None, len(raw), failed=True)
        raise _classify(path, equivalent, shown, answered=200)

    def _example(self, record: Any) -> str:
        """A record for an error message: JSON, cleared of the account's credentials, then cut
        short (so no part of a credential survives the cut)."""
        text = json.dumps(record, ensure_ascii=False, default=str)
        for secret in self._secrets:
            text = text.replace(secret.decode(), "***")
        return text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS] + "…"

    def _connection_cause(self, exc: Exception) -> str:
        """A connection that could not be made names the host and the system's reason; one that broke
        off says so."""
        text = str(exc)
        reason = _ERRNO.search(text)
        if "NewConnectionError" in text or "NameResolutionError" in text or "Failed to resolve" in text:
            why = reason.group(1).strip() if reason else "no connection"
            return f"connection error: cannot connect to {self.base_url} ({why})"
        detail = reason.group(1).strip() if reason else "body cut short or connection lost"
        return f"connection error ({type(exc).__name__}: {detail})"

    def _scrub(self, raw: bytes) -> bytes:
        for secret in self._secrets:
            raw = raw.replace(secret, b"***")
        return raw

    def _failed(
        self,
        stat: MethodStats,
        path: str,
        attempt: int,
        shown: int | str,
        started: float,
        waited: float,
        size: int,
        status: int | None,
        cause: str,
    ) -> NoReturn:
        """Record a failed attempt that another attempt may fix, tell the breaker, raise to retry."""
        self._record(stat, path, attempt, shown, started, waited, None, size, failed=True)
        self.breaker.failure(path, status, cause)
        raise _Retryable(cause, status)

    def _record(
        self,
        stat: MethodStats,
        method: str,
        attempt: int,
        status: int | str,
        started: float,
        waited: float,
        rows: int | None,
        size: int,
        failed: bool = False,
    ) -> None:
        now, latency = time.time(), time.monotonic() - started
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
                "ENDPOINT_SUMMARY method=%s requests=%d retries=%d errors=%d 429s=%d pages=%d rows=%d rate=%.1f/s",
                method,
                figures["requests"],
                figures["retries"],
                figures["errors"],
                figures["responses_429"],
                figures["pages"],
                figures["rows"],
                figures["rate_per_s"],
            )
        return out

    # -- paging --------------------------------------------------------------------------------

    def pages(
        self,
        method: OzonMethod,
        limit: int | None = None,
        *,
        request: dict[str, Any] | None = None,
        skus: Iterable[int] | None = None,
        expected_rows: int | None = None,
    ) -> Iterator[Page]:
        """Every page of ``method``, numbered from 1, by the pager of its paging kind.

        ``request`` replaces the method's fixed request fields (filters); ``skus`` feeds a SKU-batch
        method; ``expected_rows`` (the last snapshot's size) bounds offset speculation.
        """
        limit = method.check_limit(limit or method.page_limit)
        fixed = dict(method.request or {}) if request is None else dict(request)
        if method.paging is Paging.SKU_BATCHES:
            if skus is None:
                raise ValueError(f"{method.path} needs the SKUs to ask about")
            yield from self._sku_batches(method, limit, fixed, skus)
        elif method.paging is Paging.OFFSET:
            yield from self._offset(method, limit, fixed, expected_rows)
        else:
            yield from self._cursor(method, limit, fixed)

    @staticmethod
    def overlap(method: OzonMethod) -> int:
        """Rows each page after the first repeats from the previous one (offset paging with a row key)."""
        return 1 if method.paging is Paging.OFFSET and method.row_key and method.page_limit > 1 else 0

    def _check_page_cap(self, method: OzonMethod, pages_so_far: int) -> None:
        if pages_so_far >= self.max_pages:
            raise OzonPagingError(f"Ozon {method.path}: more than {self.max_pages} pages; stopped paging")

    def _cursor(self, method: OzonMethod, limit: int, fixed: dict[str, Any]) -> Iterator[Page]:
        """Cursor paging, with or without ``has_next``.

        With a ``row_key`` and ``total_at`` (v4), raises ``OzonSnapshotChanged`` after the last page
        when a row came twice or the count differs from the stated total: the data moved while we paged.
        """
        cursor, given = "", set[str]()
        keys = _KeyCheck(method)
        total: int | None = None
        number = 0
        while True:
            self._check_page_cap(method, number)
            body = {"cursor": cursor, "limit": limit, **fixed}
            page = self.post(method, body)
            number += 1
            page.number = number
            rows = method.rows(page.data)
            keys.add(rows)
            if number == 1:
                total = method.total(page.data)
            yield page
            next_cursor = page.data.get("cursor") or ""
            if method.paging is Paging.CURSOR_HAS_NEXT:
                more = page.data.get("has_next") in (True, "true") and bool(next_cursor) and bool(rows)
            else:
                more = bool(rows) and bool(next_cursor) and len(rows) >= limit
            if not more:
                break
            cursor = _next_cursor(method.path, number, cursor, next_cursor, given)
        keys.raise_if_moved(total)

    def _offset(
        self, method: OzonMethod, limit: int, fixed: dict[str, Any], expected_rows: int | None
    ) -> Iterator[Page]:
        """Offset paging; up to ``workers`` pages in flight when the method allows it.

        Pages overlap by one row (each starts at the previous page's last row): when rows are added
        or removed before the offset while we page, the overlap row no longer matches and
        ``OzonSnapshotChanged`` says so, instead of rows being silently skipped. The overlap row is
        dropped from the later page, so pages hold each row once. With no total, pages ahead are
        requested speculatively and the first short page ends paging; ``expected_rows`` bounds that.
        """
        step = limit - self.overlap(method) if limit > 1 else limit
        in_flight = self.workers if method.parallel else 1
        full_pages = None if expected_rows is None else max(0, expected_rows - 1) // step

        def fetch(offset: int) -> Page:
            return self.post(method, {"limit": limit, "offset": offset, **fixed})

        keys = _KeyCheck(method)
        previous_last: Any = None
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="ozon-offset") as pool:
            pending: dict[int, Future[Page]] = {}
            next_offset = 0

            def top_up() -> None:
                nonlocal next_offset
                while len(pending) < in_flight:
                    if pending and full_pages is not None and next_offset // step > full_pages:
                        return  # past the expected end: one request at a time
                    pending[next_offset] = pool.submit(fetch, next_offset)
                    next_offset += step

            number = 0
            try:
                top_up()
                while pending:
                    offset = min(pending)
                    page = pending.pop(offset).result()
                    self._check_page_cap(method, number)
                    number += 1
                    page.number = number
                    rows = method.rows(page.data)
                    short = len(rows) < limit
                    if step < limit and offset > 0:
                        first = method.key_of(rows[0]) if rows else None
                        if first != previous_last:
                            raise OzonSnapshotChanged(
                                f"Ozon {method.path}: rows moved while paging (the page at offset {offset} "
                                "does not start where the previous one ended)"
                            )
                        del rows[0]  # the overlap row: already in the previous page
                        page.rows = len(rows)
                    if rows:
                        previous_last = method.key_of(rows[-1])
                    keys.add(rows)
                    yield page
                    if short:
                        break  # the end: pages still in flight are past it
                    top_up()
            finally:
                for future in pending.values():
                    future.cancel()
        keys.raise_if_moved(None)

    def _sku_batches(
        self, method: OzonMethod, batch: int, fixed: dict[str, Any], skus: Iterable[int]
    ) -> Iterator[Page]:
        """The given SKUs in batches of at most ``batch``, a bounded window of them in flight."""
        ordered = list(dict.fromkeys(int(s) for s in skus))
        batches = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]

        def fetch(part: list[int]) -> Page:
            return self.post(method, {"skus": [str(s) for s in part], **fixed})

        # A window of batches in flight, not all of them: finished answers wait in memory until the
        # consumer takes them, so an unbounded queue would hold the whole catalogue.
        window = 2 * self.workers if method.parallel else 1
        with ThreadPoolExecutor(
            max_workers=min(window, self.workers), thread_name_prefix="ozon-skus"
        ) as pool:
            pending: deque[Future[Page]] = deque()
            remaining = iter(batches)
            try:
                for part in itertools.islice(remaining, window):
                    pending.append(pool.submit(fetch, part))
                number = 0
                while pending:
                    page = pending.popleft().result()
                    number += 1
                    page.number = number
                    part_next = next(remaining, None)
                    if part_next is not None:
                        pending.append(pool.submit(fetch, part_next))
                    yield page
            finally:
                for future in pending:
                    future.cancel()


class _KeyCheck:
    """Rows seen twice across pages (by the method's ``row_key``): the data moved, or Ozon repeats rows.

    Keys are kept as 8-byte hashes (``keylog.KeyLog``) and repeats are found after the last page;
    ``fetch`` reads the repeated rows' keys back from the staged answers to name them.
    """

    def __init__(self, method: OzonMethod):
        self.method = method
        self.keys = KeyLog()
        self.rows = 0

    def add(self, rows: list[Any]) -> None:
        if not self.method.row_key:
            return
        self.keys.add_new(self.method.keys_of(rows))
        self.rows += len(rows)

    def raise_if_moved(self, total: int | None) -> None:
        """After the last page: rows seen twice, or a count that misses the stated total."""
        distinct, repeated = self.keys.counted()
        repeated -= {hash(None)}  # rows that are not objects have no key
        if not repeated and (total is None or total == distinct):
            return
        path = self.method.path
        if repeated:
            said = "" if total is None else f" ({self.rows} rows against a total of {total})"
            message = (
                f"Ozon {path}: {len(repeated)} rows came more than once across pages{said}: "
                "the data changed while paging, or Ozon's answer lists them twice"
            )
        else:
            message = (
                f"Ozon {path}: the data changed while paging ({self.rows} rows against the total of {total} "
                "that the first page stated)"
            )
        raise OzonRowsRepeated(message, repeated, self.rows, total)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _non_negative(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _next_cursor(method: str, number: int, cursor: str, next_cursor: str, given: set[str]) -> str:
    """The cursor for the next page; one Ozon already gave means paging would loop forever."""
    if next_cursor == cursor or next_cursor in given:
        raise OzonPagingError(
            f"Ozon {method} gave cursor {next_cursor[:40]!r} again on page {number}: paging would never end"
        )
    given.add(next_cursor)
    return next_cursor


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


#: gRPC's codes (Ozon's ``code``) and the HTTP status each stands for (grpc-gateway's mapping)
_GRPC: dict[int, tuple[int, str]] = {
    1: (499, "cancelled"),
    2: (500, "unknown"),
    3: (400, "invalid argument"),
    4: (504, "deadline exceeded"),
    5: (404, "not found"),
    6: (409, "already exists"),
    7: (403, "permission denied"),
    8: (429, "resource exhausted"),
    9: (400, "failed precondition"),
    10: (409, "aborted"),
    11: (400, "out of range"),
    12: (501, "unimplemented"),
    13: (500, "internal"),
    14: (503, "unavailable"),
    15: (500, "data loss"),
    16: (401, "unauthenticated"),
}
_GRPC_NAMES = {name.replace(" ", "_").upper(): number for number, (_, name) in _GRPC.items()}
_EXAMPLE_CHARS = 300


def _grpc_status(code: Any) -> tuple[int, str]:
    """The HTTP status and name of Ozon's ``code`` (a number, or a name such as
    ``RESOURCE_EXHAUSTED``); an unknown code is a server error."""
    if isinstance(code, str):
        number = _GRPC_NAMES.get(code.strip().upper(), int(code) if code.strip().isdigit() else -1)
    else:
        number = code if type(code) is int else -1
    return _GRPC.get(number, (500, "an unknown code"))


def _classify(method: str, status: int, raw: bytes, answered: int | None = None) -> OzonApiError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("code")
    message = str(body.get("message") or _error_text(raw))
    lowered = message.lower()
    if "obsolete" in lowered or "method is not allowed" in lowered:
        return OzonMethodUnavailable(method, status, code, message, answered)
    if status in (401, 403) or "api-key" in lowered or "client-id" in lowered:
        return OzonAuthError(method, status, code, message, answered)
    if status == 404:
        return OzonMethodUnavailable(method, status, code, message, answered)
    return OzonApiError(method, status, code, message, answered)
