"""A throwaway PostgreSQL server from the machine's own binaries, for the demo, the benchmark and the tests.

Why not pytest-postgresql's process fixture: it calls ``pg_ctl`` as the current user, and
``pg_ctl``/``initdb`` refuse to run as root, which is how CI and these machines run the tests
(dbfixtures/pytest-postgresql#455, #341: no option to run the server as another user).

``initdb`` refuses to run as root, so when we are root the cluster belongs to the ``postgres``
system user and the server commands run as that user (``runuser``). The data folder holds the
socket too, so nothing outside it is touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (missing binaries, a port in use, a failed initdb)."""


INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them, e.g. "
    "`sudo apt-get install postgresql` (Debian/Ubuntu), `brew install postgresql@15` (macOS), "
    "or set PG_BINDIR to the folder that holds initdb and pg_ctl."
)


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: $PG_BINDIR, pg_config, PATH or Debian's layout."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(out.stdout.strip())
        except subprocess.CalledProcessError:
            pass
    for tool in ("initdb", "pg_ctl"):
        found = shutil.which(tool)
        if found:
            candidates.append(str(Path(os.path.realpath(found)).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        path = Path(folder)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise PostgresUnavailable(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPostgres:
    """One PostgreSQL cluster in ``datadir`` listening on 127.0.0.1:``port``."""

    def __init__(self, datadir: str | Path, port: int | None = None, user: str = "ozon", fast: bool = True):
        self.datadir = Path(datadir).resolve()
        self.port = port or free_port()
        self.user = user
        self.fast = fast
        self.bindir = find_bindir()
        self._as_postgres = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def conn_uri(self, dbname: str = "postgres") -> str:
        """An Airflow connection URI (``AIRFLOW_CONN_…``) for this server."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.datadir, "postgres", "postgres")
        done = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed for {self.datadir}: {done.stderr.strip() or done.stdout.strip()}"
            )

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def start(self) -> LocalPostgres:
        if not self.initialised():
            self.init()
        os.chmod(self.datadir, 0o700)  # PostgreSQL refuses a data folder others can read
        if self.running():
            pid_file = (self.datadir / "postmaster.pid").read_text().splitlines()
            self.port = int(pid_file[3])  # the port it already listens on
            return self
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1"
        if self.fast:  # a disposable cluster: durability is not needed, speed is
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.datadir / "server.log"),
            "-w",
            "start",
        )
        if done.returncode != 0:
            log = (
                (self.datadir / "server.log").read_text(errors="replace")[-2000:]
                if (self.datadir / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(
                f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}\n{log}"
            )
        self._wait()
        return self

    def _wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise PostgresUnavailable(
            f"PostgreSQL on port {self.port} did not accept connections in {timeout:g} s"
        )

    def stop(self) -> None:
        if self.initialised() and self.running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
