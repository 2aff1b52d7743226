"""plugins/ozon_inventory_plugin.py and plugins/.airflowignore: what Airflow's plugin loader loads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PACKAGE = PLUGINS / "ozon_inventory"


def test_the_loader_takes_the_plugin_alone_and_the_package_once_by_its_name(tmp_path):
    """Every module of the package is in memory once, under its package name: no bare ``config``,
    ``load`` or ``tasks`` copy shadows another module of that name; the tasks' modules are there
    before any task imports them."""
    probe = (
        "import json, sys, airflow.plugins_manager as pm, ozon_inventory_plugin as op; "
        "plugins, errors = pm._get_plugins(); "
        "print(json.dumps({'plugins': [str(p.source) for p in plugins if p.name == 'ozon_inventory'], "
        "'errors': errors, 'modules': sorted(sys.modules), 'preload': list(op.TASK_MODULES)}))"
    )
    env = {
        "PYTHONPATH": str(PLUGINS),
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert len(found["plugins"]) == 1 and found["plugins"][0].endswith("ozon_inventory_plugin.py")
    bare = {path.stem for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert {"config", "load", "tasks", "client"} <= bare
    assert bare.isdisjoint(found["modules"]), sorted(bare & set(found["modules"]))
    assert set(found["preload"]) <= set(found["modules"])
    # the providers' asset URI handlers, which the first asset a process makes imports (``load``'s)
    assert "airflow.providers.postgres.assets.postgres" in found["modules"]
    assert "ozon_inventory.ui.app" not in found["modules"]  # the UI is built in the api-server only


def test_a_module_that_fails_to_preload_is_logged_not_raised(monkeypatch):
    import ozon_inventory_plugin

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    monkeypatch.setattr(ozon_inventory_plugin, "TASK_MODULES", ("ozon_inventory.no_such_module", "json"))
    monkeypatch.setattr(ozon_inventory_plugin.log, "disabled", False)
    ozon_inventory_plugin.log.addHandler(handler)
    try:
        ozon_inventory_plugin._preload()  # goes on past the one that fails
    finally:
        ozon_inventory_plugin.log.removeHandler(handler)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert "could not preload ozon_inventory.no_such_module" in records[0].getMessage()
