"""plugins/airflow_local_settings.py: what Airflow's processes import once, before any task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def test_it_imports_the_postgres_hooks_libraries_and_nothing_of_airflow():
    """Airflow imports it while it initialises: importing Airflow from here would be circular."""
    probe = (
        "import sys, airflow_local_settings as s; "
        "print(all(m in sys.modules for m in s.PRELOADED), any(m.split('.')[0] == 'airflow' for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PLUGINS)},
    )
    assert done.stdout.split() == ["True", "False"]


def test_airflow_imports_it_as_it_starts(tmp_path):
    """From the plugins folder (on Airflow's path; this project's install puts it on Python's too)."""
    probe = "import sys, airflow.settings; print(sys.modules['airflow_local_settings'].__file__)"
    env = {"PYTHONPATH": "", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.strip().splitlines()[-1] == str(PLUGINS / "airflow_local_settings.py")
