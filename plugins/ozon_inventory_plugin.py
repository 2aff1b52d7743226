"""Airflow plugin ``ozon_inventory``: the "Ozon inventory" page, the DAG tab and the dashboard widget.

Airflow loads every module of ``plugins/`` in every component and task process; this one stays
cheap there: the FastAPI app (``ozon_inventory/ui/app.py``) is built only when Airflow's api-server
asks for ``fastapi_apps``. Its routes check the caller with Airflow's own auth manager.

- ``fastapi_apps``: the data and the browser code, at ``/ozon-inventory``.
- ``react_apps``: the page in the navigation (``/plugin/ozon-inventory``), the tab of every DAG
  (``/dags/<dag>/plugin/ozon-inventory-dag``; Airflow 3.3 cannot limit a tab to one DAG, so on other
  DAGs it only points to ``ozon_inventory_sync``) and the widget on the home dashboard. All three are
  one plain JavaScript module rendered with the React that Airflow's UI exposes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ozon-inventory"
BUNDLE = "ozon-inventory/static/ozon-inventory.js"  # relative to the UI's base URL
ICON = "ozon-inventory/static/icon.svg"


@cache
def _app() -> Any:
    from ozon_inventory.ui.app import create_app

    return create_app()


class OzonInventoryPlugin(AirflowPlugin):
    name = "ozon_inventory"
    react_apps = [  # noqa: RUF012 - Airflow's plugin interface is class attributes
        {
            "name": "Ozon inventory",
            "bundle_url": BUNDLE,
            "destination": "nav",
            "url_route": "ozon-inventory",
            "icon": ICON,
            "nav_top_level": True,
        },
        {
            "name": "Ozon inventory",
            "bundle_url": BUNDLE,
            "destination": "dag",
            "url_route": "ozon-inventory-dag",
            "icon": ICON,
        },
        {
            "name": "Ozon inventory summary",
            "bundle_url": BUNDLE,
            "destination": "dashboard",
            "url_route": "ozon-inventory-summary",
        },
    ]

    @property
    def fastapi_apps(self) -> list[Any]:  # type: ignore[override]
        """Built on first use: only the api-server reads it."""
        return [{"app": _app(), "url_prefix": URL_PREFIX, "name": "Ozon inventory"}]
