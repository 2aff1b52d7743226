"""Provider metadata: registers the ``ozon`` connection type, so Airflow's connection form shows
Client-Id and Api-Key fields and its "Test" button calls ``OzonHook.test_connection``.

Airflow finds it through the ``apache_airflow_provider`` entry point of this project's
distribution (``pyproject.toml``); ``scripts/env.sh`` and the ``Dockerfile`` install it.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "ozon-inventory",
        "name": "Ozon inventory",
        "description": "Keeps Ozon sellers' stock in PostgreSQL: the Ozon Seller API connection and hook.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "hook-class-name": "ozon_inventory.hooks.ozon.OzonHook",
                "connection-type": "ozon",
                "hook-name": "Ozon Seller API",
                # Airflow 3.3 reads the form declaratively (a hook's get_ui_field_behaviour is deprecated)
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"login": "Client-Id", "password": "Api-Key (or OAuth token)"},
                    "placeholders": {
                        "host": "https://api-seller.ozon.ru",
                        "login": "123456",
                        "extra": '{"rate_limit": 50, "workers": 4}  or  {"auth": "oauth", "client_id": "123456"}',
                    },
                },
            },
        ],
    }
