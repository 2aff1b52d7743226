"""Hosts and services of the Celery proof: worker hosts in network namespaces, services on the host.

**Hosts.** ``Network`` makes one Linux bridge on the host side (``10.231.N.1/24``) and, per worker,
a network namespace joined to it by a veth pair (``10.231.N.11``, ``.12``, …; the worker side is
``eth0``, its default route is the bridge). A worker host sees nothing of the host's loopback: every
service it uses — the Redis broker, the metadata PostgreSQL (Celery's result backend too), the
api-server's Execution API, the target PostgreSQL, the Ozon simulator and the object store — is
reached at ``10.231.N.1`` over its veth. Every name it creates is written to a state file first, so
``scripts/celery_proof.sh`` removes them even when this process is killed.

**Services** (each its own session, so it is stopped with everything it started):
``ProofPostgres`` (one PostgreSQL 15 from the machine's binaries, listening on 127.0.0.1 and the
bridge address, password auth for the bridge's subnet), ``redis-server`` (Debian's package, with a
password, no persistence), ``moto_server`` (moto's S3 in server mode, from PyPI) and the simulator
host (``tests/celery_proof/simhost.py``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scripts.localpg import LocalPostgres, PostgresUnavailable
from tests.e2e.airflow_cluster import _session_members, _signal_session

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _free_subnet() -> int:
    """A third octet N such that no interface of this machine has an address in 10.231.N.0/24."""
    used = _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show").stdout
    for third in range(40, 250):
        if f"10.231.{third}." not in used:
            return third
    raise RuntimeError("no free 10.231.N.0/24 subnet for the proof's bridge")


@dataclass
class Host:
    name: str  # e.g. "w1"
    netns: str
    address: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split()]


@dataclass
class Network:
    """A bridge on the host side and one network namespace per worker host."""

    state_file: Path
    workers: int = 2
    tag: str = field(default_factory=lambda: f"{os.getpid() % 0xFFFF:04x}")
    hosts: list[Host] = field(default_factory=list)
    host_address: str = ""
    subnet: str = ""

    @property
    def bridge(self) -> str:
        return f"ozcb{self.tag}"

    def _remember(self, kind: str, name: str) -> None:
        with self.state_file.open("a") as out:
            out.write(f"{kind} {name}\n")

    def create(self) -> Network:
        third = _free_subnet()
        self.subnet = f"10.231.{third}.0/24"
        self.host_address = f"10.231.{third}.1"
        self._remember("link", self.bridge)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index in range(1, self.workers + 1):
            host = Host(f"w{index}", f"ozcp-{self.tag}-w{index}", f"10.231.{third}.{10 + index}")
            outer, inner = f"ozcv{self.tag}{index}", f"ozcp{self.tag}{index}"
            self._remember("netns", host.netns)
            _ip("netns", "add", host.netns)
            self._remember("link", outer)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", outer, "master", self.bridge, "up")
            _ip("link", "set", inner, "netns", host.netns)
            _ip("-n", host.netns, "link", "set", inner, "name", "eth0")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "route", "add", "default", "via", self.host_address)
            self.hosts.append(host)
        return self

    def describe(self) -> list[str]:
        lines = [f"host side: bridge {self.bridge} {self.host_address}/24 (all services listen here)"]
        for host in self.hosts:
            lines.append(f"worker host {host.name}: netns {host.netns}, eth0 {host.address}/24 (veth)")
        return lines

    def destroy(self) -> None:
        """Kill what still runs in the namespaces, delete them, the veths and the bridge."""
        destroy_from_state(self.state_file)


def destroy_from_state(state_file: Path) -> None:
    if not state_file.exists():
        return
    entries = [line.split(" ", 1) for line in state_file.read_text().splitlines() if " " in line]
    for kind, name in entries:
        if kind == "netns":
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.2)
    for kind, name in reversed(entries):
        if kind == "netns":
            _ip("netns", "del", name, check=False)
        elif kind == "link":
            _ip("link", "del", name, check=False)
    state_file.unlink(missing_ok=True)


# -- services ----------------------------------------------------------------------------------


#: Where every started session's id is written (one a line), for ``scripts/celery_proof.sh`` to end
#: them should this process be killed before it could.
SESSIONS_FILE: Path | None = None


def remember_session(pid: int) -> None:
    if SESSIONS_FILE is not None:
        with SESSIONS_FILE.open("a") as out:
            out.write(f"{pid}\n")


@dataclass
class Service:
    """A process in its own session with its log file."""

    name: str
    command: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self) -> Service:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(self.command),
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        remember_session(self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        sid = self.proc.pid
        _signal_session(sid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.alive() or _session_members(sid)):
            time.sleep(0.2)
            self.proc.poll()
        _signal_session(sid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.log is not None:
            self.log.close()
        self.proc = None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: no {text!r} in its log after {timeout:.0f} s:\n{self.tail()}")


def wait_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} does not accept connections on {host}:{port} after {timeout:.0f} s")


class ProofPostgres(LocalPostgres):
    """``LocalPostgres`` that also listens on the bridge address, with password auth from its subnet."""

    def __init__(self, datadir: Path, listen: str, subnet: str, password: str):
        super().__init__(datadir, user="ozon", fast=True)
        self.listen = listen
        self.subnet = str(ipaddress.ip_network(subnet))
        self.password = password

    def url(self, dbname: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}:{self.password}@{self.listen}:{self.port}/{dbname}"

    def start(self) -> ProofPostgres:
        if not self.initialised():
            self.init()
            with (self.datadir / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.subnet} scram-sha-256\n")
        os.chmod(self.datadir, 0o700)
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1,{self.listen}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            " -c password_encryption=scram-sha-256"
        )
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
            raise PostgresUnavailable(f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}")
        self._wait()
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(f"ALTER USER {self.user} PASSWORD '{self.password}'")
        return self


def start_redis(work: Path, listen: str, port: int, password: str) -> Service:
    config = work / "redis.conf"
    config.write_text(
        f'bind 127.0.0.1 {listen}\nport {port}\nrequirepass {password}\nsave ""\nappendonly no\n'
        f"dir {work}\ndaemonize no\nprotected-mode yes\n"
    )
    config.chmod(0o600)
    service = Service("redis", ["redis-server", str(config)], work / "logs" / "redis.log").start()
    wait_port(listen, port, 30, "redis-server")
    return service


def start_object_store(work: Path, listen: str, port: int) -> Service:
    service = Service(
        "moto_server",
        [str(BIN / "moto_server"), "-H", listen, "-p", str(port)],
        work / "logs" / "moto_server.log",
    ).start()
    wait_port(listen, port, 60, "moto_server")
    return service


def create_bucket(endpoint: str, bucket: str, key: str, secret: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)


def bucket_figures(endpoint: str, bucket: str, key: str, secret: str) -> dict[str, int]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    objects, size = 0, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects += 1
            size += item["Size"]
    return {"objects": objects, "bytes": size}


def start_simhost(
    work: Path,
    listen: str,
    port: int,
    control_port: int,
    accounts: list[dict[str, object]],
    nice: int = 0,
) -> Service:
    """``tests/celery_proof/simhost.py`` in its own session, logging to ``work/logs/simulator.log``;
    returns once it serves. ``nice``: its ``--nice`` (-10 runs it ahead of the client processes)."""
    spec = work / "accounts.json"
    spec.write_text(json.dumps(accounts))
    spec.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    service = Service(
        "simulator",
        [
            sys.executable,
            "-m",
            "tests.celery_proof.simhost",
            "--spec",
            str(spec),
            "--host",
            listen,
            "--port",
            str(port),
            "--control-port",
            str(control_port),
            "--rate-window",
            "fixed",
            *(["--nice", str(nice)] if nice else []),
        ],
        work / "logs" / "simulator.log",
        env=env,
        cwd=ROOT,
    ).start()
    service.wait_for_log("SIMHOST ready", 600)
    return service


REACH_CHECK = """
import socket, sys, json
out = {}
for name, host, port in json.loads(sys.argv[1]):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); out[name] = "ok"
    except OSError as exc:
        out[name] = f"refused: {exc}"
    finally:
        s.close()
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[2]))); out["host loopback (must fail)"] = "reached"
except OSError:
    out["host loopback (must fail)"] = "unreachable"
finally:
    s.close()
print(json.dumps(out))
"""


def reach_check(host: Host, targets: list[tuple[str, str, int]], loopback_port: int) -> dict[str, str]:
    """Connect to each target from inside the worker's namespace (and show the host's 127.0.0.1 is not there)."""
    done = subprocess.run(
        [*host.exec_prefix(), sys.executable, "-c", REACH_CHECK, json.dumps(targets), str(loopback_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reachability check in {host.netns} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)
