"""An Airflow 3 deployment in the shape users run it, for end-to-end tests.

The topology of Airflow's docker-compose, without docker: a PostgreSQL metadata database,
``airflow db migrate``, then ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as
four separate processes sharing one configuration (environment variables: the same JWT secret,
the api-server's port and the Execution API URL agreeing), LocalExecutor, the simple auth manager.

    cluster = AirflowCluster(home, new_metadata_database(pg_server, "airflow_x"), dags_folder=…, env={…})
    with cluster:                       # migrate, start, wait healthy, log in
        cluster.wait_dag("my_dag")
        cluster.unpause("my_dag")
        run_id = cluster.trigger("my_dag", logical_date="2026-11-10T00:00:00Z")
        assert cluster.wait_run("my_dag", run_id) == "success", cluster.task_states("my_dag", run_id)

Each component starts in its own session (``start_new_session``) and logs to
``<log_dir>/<component>.log``; ``stop()`` ends every process of those sessions, including task
processes that moved to a process group of their own (Airflow's task supervisor does that), with
SIGTERM and then SIGKILL. ``log_tails()`` gives the end of every component's log for a failure
report (``tests/e2e/conftest.py`` attaches it to failed tests).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests

BIN = Path(sys.executable).parent
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
#: Components whose heartbeat ``/api/v2/monitor/health`` reports.
HEARTBEATS = frozenset({"scheduler", "dag-processor", "triggerer"})
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class ClusterError(AssertionError):
    """The deployment did not start, a component died, or a wait ran out (with the logs' tails)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database(admin_dsn: str, name: str) -> None:
    """(Re)create database ``name`` on the server ``admin_dsn`` points to (psycopg 3)."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def new_metadata_database(pg_server: Any, name: str) -> str:
    """A new, empty metadata database on the tests' PostgreSQL (``pg_server`` fixture), as Airflow's
    SQLAlchemy URL. psycopg2 is the driver the pinned requirements install for Airflow's own use."""
    create_database(pg_server.dsn, name)
    return f"postgresql+psycopg2://{pg_server.user}@127.0.0.1:{pg_server.port}/{name}"


def parse_time(value: str | None) -> datetime | None:
    """A timestamp of the REST API (ISO 8601, ``Z`` or an offset) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _session_members(sid: int) -> list[int]:
    """Every live process of session ``sid`` (Linux ``/proc``), whatever its process group."""
    members: list[int] = []
    if not os.path.isdir("/proc"):
        return members
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state ppid pgrp session …
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _signal_session(sid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)  # the leader's group: the component and the children it did not regroup
    if Path("/proc").is_dir():
        for pid in _session_members(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


@dataclass
class Component:
    """One long-running ``airflow <command>`` process and its log file."""

    name: str
    command: tuple[str, ...]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class AirflowCluster:
    """Airflow's four components on a PostgreSQL metadata database, driven by REST and CLI.

    ``metadata_url`` is a SQLAlchemy URL (``postgresql+psycopg2://user@host:port/db``); ``env`` is
    added to the components' environment (connections, Variables, the DAGs' own settings) and may
    override any Airflow setting below. Nothing is inherited from the caller's ``AIRFLOW*``
    variables.
    """

    def __init__(
        self,
        home: Path,
        metadata_url: str,
        *,
        dags_folder: Path,
        plugins_folder: Path | None = None,
        env: Mapping[str, str] | None = None,
        executor: str = "LocalExecutor",
        parallelism: int = 4,
        components: Iterable[str] = COMPONENTS,
        log_dir: Path | None = None,
        username: str = "admin",
        request_timeout: float = 30.0,
    ):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir or self.home / "component-logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.metadata_url = metadata_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = username
        self.password = secrets.token_urlsafe(12)
        self.request_timeout = request_timeout
        passwords_file = self.home / "simple_auth_manager_passwords.json"
        passwords_file.write_text(json.dumps({username: self.password}))
        self.env = self._base_env()
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": executor,
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                # fixed default ports (8793, 8794) would collide with any other Airflow on the machine
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        if plugins_folder is not None:
            self.env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins_folder)
        self.env.update(env or {})
        self.components = {
            name: Component(name, tuple(name.split()), self.log_dir / f"{name.replace(' ', '-')}.log")
            for name in components
        }
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy between the test and 127.0.0.1
        self._started = False

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> AirflowCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def migrate(self, timeout: float = 300) -> None:
        self.cli("db", "migrate", timeout=timeout)

    def start(self, timeout: float = 240) -> AirflowCluster:
        """Migrate the metadata database, start every component, wait until healthy, log in."""
        started = time.monotonic()
        self.migrate()
        atexit.register(self.stop)  # a test run interrupted past the fixtures still ends them
        self._started = True
        for component in self.components.values():
            component.log = component.log_path.open("ab")
            component.proc = subprocess.Popen(
                [str(BIN / "airflow"), *component.command],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=component.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for(self._healthy, timeout - (time.monotonic() - started), "all components healthy", 1.0)
        self.login()
        self.startup_s = time.monotonic() - started
        return self

    def _healthy(self) -> bool:
        try:
            answer = self.session.get(self.url + "/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        if answer.status_code != 200:
            return False
        health = answer.json()
        wanted = {"metadatabase"}
        wanted |= {name.replace("-", "_") for name in self.components if name in HEARTBEATS}
        return all((health.get(name) or {}).get("status") == "healthy" for name in wanted)

    def stop(self, grace: float = 10, timeout: float = 5) -> None:
        """End every process of every component's session.

        SIGTERM to each component's main process first, and up to ``grace`` seconds for it to end
        (signalling LocalExecutor's idle workers directly can kill one holding the task queue's
        lock, and the scheduler then waits for the others forever); then SIGTERM to whatever is left
        in the sessions, task processes included; SIGKILL after ``timeout`` more seconds.
        """
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        running = [c for c in self.components.values() if c.proc is not None]
        for component in running:
            with contextlib.suppress(ProcessLookupError):
                component.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for component in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.proc.wait(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
        for component in running:
            _signal_session(component.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        self._wait_sessions(running, timeout)
        stubborn = [
            f"{c.name}: {pid} {_cmdline(pid)}"
            for c in running
            for pid in _session_members(c.proc.pid)  # type: ignore[union-attr]
        ]
        if stubborn:  # for the record: what two SIGTERMs did not end
            with (self.log_dir / "stop.log").open("a") as out:
                out.write(f"SIGKILL after {grace + timeout:g} s:\n" + "\n".join(stubborn) + "\n")
        for component in running:
            _signal_session(component.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.proc.wait(timeout=5)  # type: ignore[union-attr]
            if component.log is not None:
                component.log.close()
        self.session.close()

    @staticmethod
    def _wait_sessions(components: list[Component], timeout: float) -> None:
        """Reap the components and wait until their sessions are empty, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for component in components:
                component.proc.poll()  # type: ignore[union-attr]  # reap an exited leader
            if not any(_session_members(c.proc.pid) for c in components):  # type: ignore[union-attr]
                return
            time.sleep(0.2)

    def check_alive(self) -> None:
        """Raise when a component has exited (with every component's log tail)."""
        dead = [c for c in self.components.values() if c.proc is not None and not c.alive()]
        if dead:
            names = ", ".join(f"{c.name} (exit code {c.proc.returncode})" for c in dead)  # type: ignore[union-attr]
            raise ClusterError(f"Airflow component(s) exited: {names}\n{self.log_tails()}")

    def log_tails(self, lines: int = 60) -> str:
        parts = [f"component logs in {self.log_dir}"]
        for component in self.components.values():
            parts.append(f"----- {component.name} (last {lines} lines) -----\n{component.tail(lines)}")
        return "\n".join(parts)

    # -- CLI and REST --------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` with the cluster's configuration."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ClusterError(
                f"airflow {' '.join(args)} exited with {done.returncode}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def login(self) -> None:
        """A JWT from the simple auth manager (``POST /auth/token``) for every later request."""
        answer = self.session.post(
            self.url + "/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.request_timeout,
        )
        if answer.status_code >= 400:
            raise ClusterError(f"POST /auth/token: {answer.status_code} {answer.text[:500]}")
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.request_timeout)
        answer = self.session.request(method, self.url + path, **kwargs)
        if answer.status_code == 401:  # the token expired: once more with a new one
            self.login()
            answer = self.session.request(method, self.url + path, **kwargs)
        return answer

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call that must succeed; its JSON answer (None when empty)."""
        answer = self.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise ClusterError(f"{method} {path}: {answer.status_code} {answer.text[:1000]}")
        return answer.json() if answer.content else None

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
        """Poll ``predicate`` until it returns a true value (returned); fail when a component dies."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tails()}")
            time.sleep(interval)

    # -- DAGs, runs, task instances ------------------------------------------------------------

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has stored ``dag_id``; fail at once on an import error."""

        def parsed() -> dict[str, Any] | None:
            errors = self.api("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                raise ClusterError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
            answer = self.request("GET", f"/api/v2/dags/{quote(dag_id)}")
            return answer.json() if answer.status_code == 200 else None

        return self.wait_for(parsed, timeout, f"DAG {dag_id} to be parsed", 1.0)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": False})

    def set_pool(self, name: str, slots: int, description: str = "") -> None:
        """Create pool ``name`` or change its slots."""
        body = {"slots": slots, "description": description or None, "include_deferred": False}
        if self.request("GET", f"/api/v2/pools/{quote(name)}").status_code == 404:
            self.api("POST", "/api/v2/pools", json={"name": name, **body})
        else:  # PATCH names the pool "pool" and validates the whole body
            self.api("PATCH", f"/api/v2/pools/{quote(name)}", json={"pool": name, **body})

    def trigger(
        self, dag_id: str, logical_date: str | None = None, conf: dict[str, Any] | None = None
    ) -> str:
        run = self.api(
            "POST",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns",
            json={"logical_date": logical_date, "conf": conf or {}},
        )
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        params = {"limit": 100, **filters}
        return self.api("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns", params=params)["dag_runs"]

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 300,
        states: Iterable[str] = TERMINAL_RUN_STATES,
        interval: float = 1.0,
    ) -> str:
        """Wait until the run's state is one of ``states``; return it."""
        wanted = frozenset(states)

        def reached() -> str | None:
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in wanted else None

        try:
            return self.wait_for(reached, timeout, f"run {run_id} to reach {sorted(wanted)}", interval)
        except ClusterError as err:
            raise ClusterError(f"{err}\ntask states: {self.task_states(dag_id, run_id)}") from None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances",
            params={"limit": 1000},
        )["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        return {(t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(dag_id, run_id)}

    def clear(
        self,
        dag_id: str,
        run_id: str,
        task_ids: list[str | list[Any]],
        only_failed: bool = False,
        include_downstream: bool = True,
    ) -> list[dict[str, Any]]:
        """Clear task instances (``[task_id, map_index]`` pairs for mapped ones); the cleared list."""
        answer = self.api(
            "POST",
            f"/api/v2/dags/{quote(dag_id)}/clearTaskInstances",
            json={
                "dry_run": False,  # the endpoint's default is a dry run
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "only_failed": only_failed,
                "include_downstream": include_downstream,
            },
        )
        return answer["task_instances"]

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, key: str = "return_value"
    ) -> Any:
        value = self.api(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
            f"/xcomEntries/{quote(key)}",
            params={"map_index": map_index},
        )["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        answer = self.request(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
            f"/logs/{try_number}",
            params={"map_index": map_index},
            headers={"Accept": "application/json"},
        )
        if answer.status_code >= 400:
            raise ClusterError(f"log of {task_id}[{map_index}] try {try_number}: {answer.status_code}")
        return answer.text


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"
