"""A managed database that requires TLS with a client certificate: every connection the project opens
during a whole DAG run must carry the Airflow connection's extras (``sslmode=verify-full``, the CA,
the client certificate and key). The project's role may connect only with TLS and a certificate
(``pg_hba.conf``: ``hostnossl … reject``, ``hostssl … cert``), so a connection that lost the extras
(a conninfo made from ``PostgresHook.get_uri()``) is refused, and ``pg_stat_ssl`` is sampled all run
long to show each session of the role, by its application name, used TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.dags.test_dag_runs import env, run_dag, states  # noqa: F401 - the fixture

ROLE = "ozon_app"


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for ``ROLE``, all signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, issuer: tuple | None, ca: bool = False, ip: str | None = None) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer[0].subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))  # the suite may run with the clock a year ahead
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
            )
        cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
        return cert, key

    ca = issue("ozon-inventory test CA", None, ca=True)
    files: dict[str, Path] = {}
    for label, (cert, key) in {
        "ca": ca,
        "server": issue("127.0.0.1", ca, ip="127.0.0.1"),
        "client": issue(ROLE, ca),
    }.items():
        files[f"{label}.crt"] = folder / f"{label}.crt"
        files[f"{label}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{label}.key"] = folder / f"{label}.key"
        files[f"{label}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        os.chmod(files[f"{label}.key"], 0o600)
    return files


@pytest.fixture
def tls_server():
    """A PostgreSQL of its own with TLS on; ``ROLE`` may connect only over TLS with a client certificate."""
    from scripts.localpg import LocalPostgres

    folder = Path(tempfile.mkdtemp(prefix="ozon-inventory-tls-"))
    os.chmod(folder, 0o755)
    server = LocalPostgres(folder / "data")
    server.init()
    data = server.datadir
    files = _certificates(data)
    for name in ("server.crt", "server.key", "ca.crt"):
        if os.geteuid() == 0:
            shutil.chown(files[name], "postgres", "postgres")
    client = folder / "client"  # the client's copies: its key must be the client user's, mode 0600
    client.mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        shutil.copy(files[name], client / name)
    os.chmod(client / "client.key", 0o600)
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n"
        )
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        f"hostnossl all {ROLE} 127.0.0.1/32 reject\n"
        f"hostssl all {ROLE} 127.0.0.1/32 cert\n"
        "host all all 127.0.0.1/32 trust\n",
        encoding="utf-8",
    )
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {ROLE} LOGIN")
        admin.execute(f"CREATE DATABASE inventory OWNER {ROLE}")
    yield server, client
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_every_connection_of_a_run_uses_the_connections_tls_settings(env, tls_server, monkeypatch, simulator):  # noqa: F811
    server, client = tls_server
    extra = {
        "sslmode": "verify-full",
        "sslrootcert": str(client / "ca.crt"),
        "sslcert": str(client / "client.crt"),
        "sslkey": str(client / "client.key"),
        "options": "-c statement_timeout=120000",
    }
    conn = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": server.port,
        "login": ROLE,
        "schema": "inventory",
    }
    monkeypatch.setenv("AIRFLOW_CONN_OZON_POSTGRES", json.dumps(conn | {"extra": extra}))
    admin_dsn = server.dsn.rpartition("/")[0] + "/inventory"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):  # the role without TLS: refused
        psycopg.connect(f"host=127.0.0.1 port={server.port} dbname=inventory user={ROLE} sslmode=disable")

    seen: dict[str, set[bool]] = {}
    running = threading.Event()
    running.set()

    def sample() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as watcher:
            while running.is_set():
                for name, ssl in watcher.execute(
                    "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                    " WHERE a.usename = %s AND a.pid <> pg_backend_pid()",
                    (ROLE,),
                ):
                    seen.setdefault(name, set()).add(ssl)
                time.sleep(0.005)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        dag_run = run_dag(10, day=5)
    finally:
        running.clear()
        watcher.join(10)
    assert str(dag_run.state) == "success", states(dag_run)
    with psycopg.connect(admin_dsn) as check:
        ledger = check.execute("SELECT status, products, warehouse_rows FROM ozon_sync_run").fetchall()
        assert ledger == [("complete", 175, 511)]
    # the connections the tasks open besides their own: the budget's, and the streaming and its diff
    assert {"ozon_inventory rate budget", "ozon_inventory prestage"} <= set(seen), seen
    assert all(flags == {True} for flags in seen.values()), seen
    log = (server.datadir / "server.log").read_text(errors="replace")
    refused = [
        line for line in log.splitlines() if "rejects connection" in line or "authentication failed" in line
    ]
    assert len(refused) == 1 and "no encryption" in refused[0], refused  # only the test's own attempt above
