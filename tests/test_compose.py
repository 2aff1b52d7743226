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


# -- the celery profile (docs/operations.md, "Scale-out on Celery") ----------------------------------

CELERY_ONLY = ("redis", "airflow-worker", "airflow-flower")


def _default(value: str) -> str:
    """The value Compose gives ``${VAR:-default}`` when VAR is not set (a plain value as it is)."""
    if value.startswith("${") and ":-" in value:
        return value[value.index(":-") + 2 : -1]
    return value


def test_celery_profile_has_redis_workers_and_flower():
    services = COMPOSE["services"]
    assert services["redis"]["profiles"] == ["celery", "flower"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    worker = services["airflow-worker"]
    assert worker["profiles"] == ["celery"]
    assert worker["command"] == "celery worker"
    assert int(_default(str(worker["deploy"]["replicas"]))) >= 2
    assert "inspect ping" in worker["healthcheck"]["test"][-1]
    for needed in ("redis", "airflow-init", "target-postgres", "postgres"):
        assert needed in worker["depends_on"], needed
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    flower = services["airflow-flower"]
    assert flower["profiles"] == ["flower"]
    assert flower["command"] == "celery flower"
    assert "5555:5555" in flower["ports"]


def test_celery_services_share_the_common_settings_and_mounts():
    common = COMPOSE["x-airflow-common"]["environment"]
    for name in ("airflow-worker", "airflow-flower"):
        service = COMPOSE["services"][name]
        assert service["build"] == ".", name  # the project's image, as every Airflow service
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        for var, value in common.items():  # every common setting but the executor, unchanged
            if var != "AIRFLOW__CORE__EXECUTOR":
                assert env[var] == value, (name, var)
    mounts = {m.split(":")[1] for m in COMPOSE["services"]["airflow-worker"]["volumes"]}
    assert {
        "/opt/airflow/dags",
        "/opt/airflow/plugins",
        "/opt/airflow/include",
        "/opt/airflow/staging",
    } <= mounts


def test_local_executor_stays_the_default_and_celery_settings_stay_in_the_profile():
    services = COMPOSE["services"]
    for name, service in services.items():
        if name in CELERY_ONLY or "environment" not in service:
            continue
        env = service["environment"]
        if "AIRFLOW__CORE__EXECUTOR" in env:
            assert _default(env["AIRFLOW__CORE__EXECUTOR"]) == "LocalExecutor", name
        assert not [k for k in env if k.startswith("AIRFLOW__CELERY")], name
        assert "celery" not in service.get("profiles", []), name


def test_scheduler_defaults_reach_the_workers_broker_and_result_backend():
    """Switched to CeleryExecutor, the scheduler has no Celery settings of its own: the provider's
    defaults must be exactly what the workers are given."""
    from airflow.providers.celery.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["celery"]["options"]
    worker = COMPOSE["services"]["airflow-worker"]["environment"]
    assert worker["AIRFLOW__CELERY__BROKER_URL"] == options["broker_url"]["default"]
    metadata = COMPOSE["x-airflow-common"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert metadata.startswith("postgresql+psycopg2://")  # the provider keeps an explicit driver as it is
    assert worker["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{metadata}"
    assert options["result_backend"]["default"] is None  # i.e. derived from the metadata database


def test_staging_can_be_an_object_store_for_workers_on_several_hosts():
    staging = COMPOSE["x-airflow-common"]["environment"]["AIRFLOW_VAR_OZON_INVENTORY_STAGING"]
    assert staging.startswith("${OZON_INVENTORY_STAGING:-")
    assert _default(staging) == "/opt/airflow/staging"
    requirements = (ROOT / "requirements.txt").read_text()
    for pinned in ("apache-airflow-providers-celery==", "apache-airflow-providers-amazon==", "s3fs=="):
        assert pinned in requirements, pinned
