"""docker-compose.yaml has the services, mounts, health checks and variables the DAG needs.

No Docker engine runs here, so this checks the file's structure as Compose reads it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services_and_health_checks():
    services = COMPOSE["services"]
    for name in (
        "postgres",
        "target-postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "ozon-simulator",
    ):
        assert name in services, name
    for name in (
        "postgres",
        "target-postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "ozon-simulator",
    ):
        assert services[name]["healthcheck"]["test"], name
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["ozon-simulator"]["profiles"] == ["simulator"]
    assert "airflow pools set" in services["airflow-init"]["command"][-1]


def test_airflow_services_mount_the_project_and_read_the_dag_settings():
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        service = COMPOSE["services"][name]
        mounts = {m.split(":")[1] for m in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        env = service["environment"]
        for var in (
            "AIRFLOW_CONN_OZON_DEFAULT",
            "AIRFLOW_CONN_OZON_POSTGRES",
            "AIRFLOW_VAR_OZON_INVENTORY_ACCOUNTS",
            "AIRFLOW_VAR_OZON_INVENTORY_STAGING",
            "OZON_INVENTORY_SCHEDULE",
            "OZON_INVENTORY_POOL",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        ):
            assert var in env, (name, var)
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")


def test_no_secret_is_committed():
    text = (ROOT / "docker-compose.yaml").read_text() + (ROOT / ".env.example").read_text()
    assert "sim-api-key" not in (ROOT / "docker-compose.yaml").read_text()
    assert "API_KEY" in (ROOT / ".env.example").read_text()  # a placeholder, not a key
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert text.count("${AIRFLOW_CONN_OZON_DEFAULT:?") == 1
