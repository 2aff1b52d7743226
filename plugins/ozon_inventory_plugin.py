"""Airflow plugin ``ozon_inventory``: the "Ozon inventory" page, the DAG tab and the dashboard widget.

Airflow loads this module in every component and task process (``plugins/.airflowignore`` keeps its
loader out of the ``ozon_inventory`` package, which is imported by name). The FastAPI app
(``ozon_inventory/ui/app.py``) is built only when Airflow's api-server asks for ``fastapi_apps``;
its routes check the caller with Airflow's own auth manager.

It also imports the modules the DAG's tasks run (``TASK_MODULES``), once per process: the scheduler
loads plugins before LocalExecutor forks its workers, so a forked task finds them in memory instead
of importing them as it starts (docs/architecture.md, "Task start-up"). As with any Airflow plugin,
a changed package takes effect in a component when it restarts.

- ``fastapi_apps``: the data and the browser code, at ``/ozon-inventory``.
- ``react_apps``: the page in the navigation (``/plugin/ozon-inventory``), the tab of every DAG
  (``/dags/<dag>/plugin/ozon-inventory-dag``; Airflow 3.3 cannot limit a tab to one DAG, so on other
  DAGs it only points to ``ozon_inventory_sync``) and the widget on the home dashboard. All three are
  one plain JavaScript module rendered with the React that Airflow's UI exposes.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/ozon-inventory"
BUNDLE = "ozon-inventory/static/ozon-inventory.js"  # relative to the UI's base URL
ICON = "ozon-inventory/static/icon.svg"
#: What the tasks import: the DAG's task module and, imported inside the tasks, the stages and hooks.
TASK_MODULES = (
    "ozon_inventory.tasks",
    "ozon_inventory.fetch",
    "ozon_inventory.hooks.ozon",
    "ozon_inventory.keys",
    "ozon_inventory.validate",
    "ozon_inventory.merge",
    "ozon_inventory.load",
    "ozon_inventory.alerts",
    "airflow.providers.postgres.hooks.postgres",
)


def _preload() -> None:
    """Import ``TASK_MODULES``, and make the account's stock asset once (``load`` emits it): the
    first asset a process makes imports every provider's asset URI handlers (0.13-0.24 s). One that
    fails is logged and left to the task that needs it (which then fails with the error in its own
    log), never the component's start."""
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a component must start whatever the package holds
            log.warning("ozon_inventory: could not preload %s for the tasks: %s", name, exc)
    try:
        importlib.import_module("ozon_inventory.tasks").stock_asset("preload")
    except Exception as exc:  # noqa: BLE001 - as above
        log.warning("ozon_inventory: could not preload the asset URI handlers for the tasks: %s", exc)


_preload()


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
