"""End-to-end fixtures' failure reports: a failed test shows the tails of the Airflow components' logs."""

from __future__ import annotations

import pytest

from tests.e2e.airflow_cluster import AirflowCluster


def _clusters(item: pytest.Item) -> list[AirflowCluster]:
    found = []
    for value in getattr(item, "funcargs", {}).values():
        candidates = value if isinstance(value, tuple | list) else (value, getattr(value, "cluster", None))
        found += [c for c in candidates if isinstance(c, AirflowCluster) and c not in found]
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for cluster in _clusters(item):
            report.sections.append(("Airflow components (log tails)", cluster.log_tails(80)))
