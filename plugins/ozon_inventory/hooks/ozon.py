"""Airflow hook for the Ozon Seller API, built on providers-http's ``HttpHook``.

The connection (type ``ozon``, registered by ``provider.py``; ``http`` works too) holds one seller account: **login = Client-Id**, **password =
Api-Key** (Airflow masks it in logs), host defaulting to ``https://api-seller.ozon.ru``. For Ozon's
OAuth, leave login empty and put the access token in the password with extra ``"auth": "oauth"``
(the token is sent as ``Authorization: Bearer``); give extra ``client_id`` to name the account the
token belongs to, so its rate budget is shared with the account's Api-Key users.

What comes from ``HttpHook``, through its public API only: the session (proxies, TLS verification,
certificates, extra headers) from ``get_conn``; one session per client thread, reused for every
page. What goes around it, and why: ``HttpHook.run`` builds a new session per call and turns a 429
into a bare ``AirflowException`` with the response (and its ``Retry-After``) gone, so the client
sends with the session itself and classifies responses on its own. Extras that tune the client
(``rate_limit``, ``workers``, …) are not request options, and ``HttpHook`` would send any such key as
an HTTP header: ``get_conn`` takes them out of the session's headers, and puts Ozon's auth in place
of HTTP basic auth. The base URL is read from the connection's own fields (Ozon is HTTPS only, so a
bare host means ``https://``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from ozon_inventory.client import DEFAULT_HOST, OzonAuth, OzonClient, clean_secret, option_problem
from ozon_inventory.exceptions import ConfigError
from ozon_inventory.hooks.postgres import Database
from ozon_inventory.methods import V4_STOCKS, method

#: Connection extras that tune the client (never HTTP headers).
CLIENT_OPTIONS: dict[str, type] = {
    "rate_limit": float,
    "headroom": float,
    "timeout": float,
    "max_retries": int,
    "backoff": float,
    "breaker_threshold": int,
    "breaker_cooldown": float,
    "workers": int,
    "max_pages": int,
}
_NOT_HEADERS = {*CLIENT_OPTIONS, "auth", "client_id", "budget_conn_id"}


class OzonHook(HttpHook):
    """Builds an ``OzonClient`` for one seller account from an Airflow connection."""

    conn_name_attr = "ozon_conn_id"
    default_conn_name = "ozon_default"
    conn_type = "ozon"
    hook_name = "Ozon Seller API"
    default_host = DEFAULT_HOST

    def __init__(
        self, ozon_conn_id: str = default_conn_name, budget_db: Database | None = None, **overrides: Any
    ):
        super().__init__(method="POST", http_conn_id=ozon_conn_id)
        self.ozon_conn_id = ozon_conn_id
        self.budget_db = budget_db
        self.overrides = overrides
        self._client: OzonClient | None = None

    def __repr__(self) -> str:
        return f"OzonHook(ozon_conn_id={self.ozon_conn_id!r})"

    @cached_property
    def connection(self) -> Any:
        """The connection, read once per hook (``HttpHook`` would read it for every session)."""
        return super().get_connection(self.ozon_conn_id)

    def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
        return self.connection if conn_id == self.ozon_conn_id else super().get_connection(conn_id)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """``HttpHook``'s session, with Ozon's auth and without the client's tuning as headers."""
        session = super().get_conn(headers, extra_options)
        for key in _NOT_HEADERS:
            session.headers.pop(key, None)
        session.auth = self._auth()
        return session

    def base_url_of(self, connection: Any) -> str:
        """The connection's base URL: its host (a URL, or a bare host meaning ``https://``), port."""
        host = str(connection.host or self.default_host).rstrip("/")
        url = host if "://" in host else f"{connection.schema or 'https'}://{host}"
        return f"{url}:{connection.port}" if connection.port else url

    def _where(self) -> str:
        return f"connection {self.ozon_conn_id!r}"

    def _extra(self) -> dict[str, Any]:
        return dict(self.connection.extra_dejson or {})

    def _auth(self) -> OzonAuth:
        conn, where = self.connection, self._where()
        if str(self._extra().get("auth", "")).lower() == "oauth":
            token = clean_secret(conn.password, "the OAuth token (password)", where)
            client_id = str(self._extra().get("client_id") or conn.login or "").strip()
            if client_id and not client_id.isdigit():
                raise ConfigError(f"{where}: extra client_id must be the seller's numeric Client-Id")
            return OzonAuth(client_id or f"oauth-{self.ozon_conn_id}", token=token)
        client_id = clean_secret(conn.login, "login (the seller's numeric Client-Id)", where)
        if not client_id.isdigit():
            raise ConfigError(f"{where}: login must be the seller's numeric Client-Id")
        return OzonAuth(client_id, clean_secret(conn.password, "password (the Api-Key)", where))

    def client_id(self) -> str:
        """The Client-Id the connection acts for: the seller, and the key of its rate budget
        (an OAuth connection that names none stands for itself, ``oauth-<conn id>``)."""
        return self._auth().client_id

    def options(self) -> dict[str, Any]:
        """The client's tuning from the connection's extras, the constructor's overrides on top."""
        extra, where = self._extra(), self._where()
        options: dict[str, Any] = {}
        for key, kind in CLIENT_OPTIONS.items():
            value = self.overrides.get(key, extra.get(key))
            if value is None:
                continue
            try:
                options[key] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: extra {key!r} must be a number, got {value!r}") from exc
            problem = option_problem(key, options[key])
            if problem:
                raise ConfigError(f"{where}: extra {problem}")
        return options

    def get_client(self) -> OzonClient:
        """The account's ``OzonClient``; its sessions come from ``HttpHook.get_conn``."""
        if self._client is not None:
            return self._client
        auth = self._auth()
        self._client = OzonClient(
            self.base_url_of(self.connection),
            auth.client_id,
            api_key=auth._api_key,
            token=auth._token,
            budget_db=self.budget_db,
            session_factory=self.get_conn,
            **self.options(),
        )
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        """One small v4 request: proves the key, the role and the network path."""
        try:
            next(self.get_client().pages(method(V4_STOCKS), limit=1))
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        return True, f"Ozon answered {V4_STOCKS}"
