"""The Ozon simulator of the Celery proof: every proof account in one process, on the host side.

    python -m tests.celery_proof.simhost --spec accounts.json --host 0.0.0.0 --port N --control-port M

``accounts.json`` lists ``{"client_id", "api_key", "products", "warehouses", "rows_per_sku", "seed"}``;
each account has its own catalogue and its own rate limit (per Client-Id), all in a strict fixed
one-second window of 50 requests (``--rate-window fixed``) with 20 ms latency per answer. Ozon's
methods and ``/__sim/*`` are served on ``--port`` as by ``python -m ozon_simulator``.

Beside them, on ``--control-port`` (the proof's own questions, never seen by the DAG):

- ``GET /expected?client_id=X``: what the target tables must hold for the account — counts and sums
  per stock type and per Ozon warehouse, and a SHA-256 over every row (sorted), for an exact
  comparison with ``ozon_product``, ``ozon_stock_by_type`` and ``ozon_stock_by_warehouse``.
- ``GET /peers?client_id=X``: the account's requests per worker host (the peer address of each
  request), the seconds in which more than one host sent requests for it, and the most requests in
  one calendar second (what a fixed window counts) and in any sliding second, over all hosts.
- ``POST /reset``: forget the request logs (the simulator's and the per-host one).

``loaded(dsn, account)`` reads the same figures from the target tables, for an exact comparison
with ``/expected`` (the Celery proof and ``scripts/topology_run.py`` use both). ``--nice -10`` runs
the simulator ahead of the client processes: it stands for Ozon, whose servers do not share the
machine's cores, so the arrival times it logs are when requests were sent, not when a starved
accept loop got round to them (ignored when the niceness may not be lowered).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ozon_simulator.catalogue import Catalogue, build_catalogue
from ozon_simulator.server import Account, OzonSimulator, SimulatorConfig
from ozon_simulator.server import _Server as SimulatorServer

_REQUEST = threading.local()


class PeerSimulator(OzonSimulator):
    """The simulator, also logging which host (peer address) sent each request."""

    def __init__(self, accounts: list[Account], config: SimulatorConfig):
        self.peer_log: deque[tuple[float, str, str]] = deque(maxlen=2_000_000)
        super().__init__(accounts, config)

    def record(self, when: float, client_id: str, method: str, status: int) -> None:
        super().record(when, client_id, method, status)
        self.peer_log.append((when, client_id, getattr(_REQUEST, "peer", "-")))

    def reset_stats(self) -> None:
        super().reset_stats()
        self.peer_log.clear()


class PeerServer(SimulatorServer):
    def finish_request(self, request: Any, client_address: Any) -> None:
        _REQUEST.peer = client_address[0]  # one thread per connection (keep-alive: many requests)
        super().finish_request(request, client_address)


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def type_line(sku: int, stock_type: str, shipment_type: str, present: int, reserved: int) -> str:
    return json.dumps([int(sku), stock_type, shipment_type, int(present), int(reserved)], ensure_ascii=False)


def warehouse_line(sku: int, name: str, free: int, promised: int, reserved: int | None) -> str:
    return json.dumps([int(sku), name, int(free), int(promised), reserved], ensure_ascii=False)


def product_line(product_id: int, offer_id: str) -> str:
    return json.dumps([int(product_id), offer_id], ensure_ascii=False)


def expected(catalogue: Catalogue) -> dict[str, Any]:
    """Counts, sums and row digests the target tables must match for this catalogue."""
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    type_lines, product_lines = [], []
    for product in catalogue.products:
        product_lines.append(product_line(product.product_id, product.offer_id))
        for stock in product.stocks:
            figures = by_type[stock.type]
            figures[0] += 1
            figures[1] += stock.present
            figures[2] += stock.reserved
            type_lines.append(
                type_line(stock.sku, stock.type, stock.shipment_type, stock.present, stock.reserved)
            )
    by_warehouse: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    warehouse_lines = []
    for row in catalogue.rows:
        name = catalogue.ozon_warehouses[row.warehouse].name
        figures = by_warehouse[name]
        figures[0] += 1
        figures[1] += row.free_to_sell
        figures[2] += row.promised
        figures[3] += row.reserved
        warehouse_lines.append(warehouse_line(row.sku, name, row.free_to_sell, row.promised, row.reserved))
    return {
        "products": len(catalogue.products),
        "stock_rows": len(type_lines),
        "warehouse_rows": len(warehouse_lines),
        "seller_warehouses": len(catalogue.seller_warehouses),
        "by_type": dict(by_type),
        "by_warehouse": dict(by_warehouse),
        "digest_products": _digest(product_lines),
        "digest_by_type": _digest(type_lines),
        "digest_by_warehouse": _digest(warehouse_lines),
    }


def loaded(dsn: str, account: str) -> dict[str, Any]:
    """The target tables' figures for ``account`` (a connection id), in the shape of ``expected``."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        products = conn.execute(
            "SELECT product_id, offer_id FROM ozon_product WHERE account = %s", (account,)
        ).fetchall()
        types = conn.execute(
            "SELECT sku, stock_type, shipment_type, present, reserved FROM ozon_stock_by_type"
            " WHERE account = %s",
            (account,),
        ).fetchall()
        rows = conn.execute(
            "SELECT sku, warehouse_name, free_to_sell, promised, reserved FROM ozon_stock_by_warehouse"
            " WHERE account = %s",
            (account,),
        ).fetchall()
        (seller,) = conn.execute(
            "SELECT count(*) FROM ozon_warehouse WHERE account = %s AND kind = 'seller'", (account,)
        ).fetchone()
    by_type: dict[str, list[int]] = {}
    for _, stock_type, _, present, reserved in types:
        figures = by_type.setdefault(stock_type, [0, 0, 0])
        figures[0] += 1
        figures[1] += present
        figures[2] += reserved
    by_warehouse: dict[str, list[int]] = {}
    for _, name, free, promised, reserved in rows:
        figures = by_warehouse.setdefault(name, [0, 0, 0, 0])
        figures[0] += 1
        figures[1] += free
        figures[2] += promised
        figures[3] += reserved or 0
    return {
        "products": len(products),
        "stock_rows": len(types),
        "warehouse_rows": len(rows),
        "seller_warehouses": seller,
        "by_type": by_type,
        "by_warehouse": by_warehouse,
        "digest_products": _digest([product_line(*p) for p in products]),
        "digest_by_type": _digest([type_line(*t) for t in types]),
        "digest_by_warehouse": _digest([warehouse_line(*r) for r in rows]),
    }


def peers(sim: PeerSimulator, client_id: str) -> dict[str, Any]:
    """Requests of one Client-Id per host, and how many arrived together (all hosts counted)."""
    log = sorted((t, peer) for t, cid, peer in list(sim.peer_log) if cid == client_id)
    per_host = Counter(peer for _, peer in log)
    seconds: dict[int, set[str]] = defaultdict(set)
    per_second: Counter[int] = Counter()
    for t, peer in log:
        seconds[int(t)].add(peer)
        per_second[int(t)] += 1
    peak, start = 0, 0
    for end, (t, _) in enumerate(log):
        while t - log[start][0] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return {
        "requests": len(log),
        "per_host": dict(per_host),
        "seconds_with_requests": len(seconds),
        "seconds_with_several_hosts": sum(len(hosts) > 1 for hosts in seconds.values()),
        "max_per_calendar_second": max(per_second.values(), default=0),
        "peak_per_sliding_second": peak,
    }


def _control_handler(sim: PeerSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            client_id = (parse_qs(url.query).get("client_id") or [""])[0]
            account = sim.accounts.get(client_id)
            if account is None:
                self._answer(404, {"error": f"unknown client_id {client_id!r}"})
            elif url.path == "/expected":
                with sim.lock:  # not while a catalogue change is half done
                    self._answer(200, expected(account.catalogue))
            elif url.path == "/peers":
                self._answer(200, peers(sim, client_id))
            else:
                self._answer(404, {"error": url.path})

        def do_POST(self) -> None:
            if self.path == "/reset":
                sim.reset_stats()
                self._answer(200, {"reset": True})
            else:
                self._answer(404, {"error": self.path})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.celery_proof.simhost", description=__doc__)
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--rate-window", choices=("bucket", "fixed"), default="fixed")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument(
        "--nice", type=int, default=0, help="change the niceness first (-10: ahead of clients)"
    )
    args = parser.parse_args(argv)
    if args.nice:
        try:
            os.nice(args.nice)
        except OSError:  # not allowed (not root): the logged arrivals may then bunch on a busy machine
            print(f"SIMHOST: niceness not changed by {args.nice} (not allowed)", flush=True)

    started = time.monotonic()
    accounts = []
    for spec in json.loads(args.spec.read_text()):
        catalogue = build_catalogue(
            int(spec["products"]), int(spec["warehouses"]), int(spec["seed"]), spec.get("rows_per_sku")
        )
        accounts.append(Account(str(spec["client_id"]), str(spec["api_key"]), catalogue))
    sim = PeerSimulator(
        accounts, SimulatorConfig(rate_limit=50.0, rate_window=args.rate_window, latency=args.latency)
    )
    gc.freeze()  # the catalogues live as long as the process: no full-collection pauses (as __main__)
    server = PeerServer((args.host, args.port), sim)
    control = ThreadingHTTPServer((args.host, args.control_port), _control_handler(sim))
    control.daemon_threads = True
    for srv in (server, control):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    total = sum(len(a.catalogue.products) for a in accounts)
    print(
        f"SIMHOST ready: {len(accounts)} accounts, {total} products, rate window {args.rate_window}, "
        f"built in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    control.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
