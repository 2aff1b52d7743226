"""Airflow hook for the Ozon Seller API.

The connection holds one seller account: Client-Id as ``login``, Api-Key as ``password`` (Airflow
masks it in logs), host defaulting to ``https://api-seller.ozon.ru``. Optional ``extra`` keys tune
the client: ``rate_limit`` (requests/s for this Client-Id, default 50), ``timeout`` (s),
``max_retries``, ``backoff`` (s), ``workers`` (parallel requests where a method allows it),
``max_pages``, ``warehouse_stock_method`` (``auto``/``v2``/``v1``) and ``warehouse_list_method``
(``auto``/``v2``/``v1``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from ozon_inventory.client import DEFAULT_HOST, OzonClient
from ozon_inventory.exceptions import ConfigError

_CLIENT_OPTIONS = {
    "rate_limit": float,
    "timeout": float,
    "max_retries": int,
    "backoff": float,
    "workers": int,
    "max_pages": int,
}


class OzonHook(BaseHook):
    """Builds an ``OzonClient`` for one seller account from an Airflow connection."""

    conn_name_attr = "ozon_conn_id"
    default_conn_name = "ozon_default"
    conn_type = "http"
    hook_name = "Ozon Seller API"

    def __init__(self, ozon_conn_id: str = default_conn_name, **overrides: Any) -> None:
        super().__init__()
        self.ozon_conn_id = ozon_conn_id
        self.overrides = overrides
        self._client: OzonClient | None = None

    def __repr__(self) -> str:
        return f"OzonHook(ozon_conn_id={self.ozon_conn_id!r})"

    def settings(self) -> dict[str, Any]:
        """The connection's extras with the constructor's overrides on top (no secrets)."""
        conn = self.get_connection(self.ozon_conn_id)
        extra = dict(conn.extra_dejson or {})
        extra.update(self.overrides)
        return extra

    def get_conn(self) -> OzonClient:
        if self._client is not None:
            return self._client
        conn = self.get_connection(self.ozon_conn_id)
        where = f"connection {self.ozon_conn_id!r}"
        if not conn.login or not str(conn.login).strip().isdigit():
            raise ConfigError(f"{where}: login must be the seller's numeric Client-Id")
        if not conn.password:
            raise ConfigError(f"{where}: password must hold the Api-Key")
        host = conn.host or DEFAULT_HOST
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if conn.port:
            host = f"{host}:{conn.port}"
        options: dict[str, Any] = {}
        for key, kind in _CLIENT_OPTIONS.items():
            value = self.overrides.get(key, (conn.extra_dejson or {}).get(key))
            if value is None:
                continue
            try:
                options[key] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: extra {key!r} must be a number, got {value!r}") from exc
        self._client = OzonClient(host, str(conn.login).strip(), conn.password, **options)
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        """One small v4 request: proves the key, the role and the network path."""
        try:
            client = self.get_conn()
            next(client.iter_product_stocks(limit=1))
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        return True, "Ozon answered /v4/product/info/stocks"
