"""Run the Ozon simulator: ``PYTHONPATH=plugins python -m ozon_simulator --port 8800``.

With no sizes it serves the old system's dataset (175 products, 27 warehouses, 511 rows).
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from ozon_simulator.server import SimulatorConfig, default_simulator, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ozon_simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--products", type=int, default=175)
    parser.add_argument("--warehouses", type=int, default=27)
    parser.add_argument("--rows-per-sku", type=float, default=None, help="mean Ozon warehouses per FBO SKU")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--client-id", default="100200")
    parser.add_argument("--api-key", default="sim-api-key")
    parser.add_argument("--rate-limit", type=float, default=50.0, help="requests/s per Client-Id")
    parser.add_argument(
        "--rate-window",
        choices=("bucket", "fixed"),
        default="bucket",
        help="how the per-Client-Id limit counts: token bucket, or fixed calendar seconds",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument("--last-page", choices=("empty", "opaque"), default="empty")
    parser.add_argument("--total-fields", choices=("both", "total_items", "total"), default="both")
    args = parser.parse_args(argv)

    config = SimulatorConfig(
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        latency=args.latency,
        last_page=args.last_page,
        total_fields=args.total_fields,
    )
    sim = default_simulator(
        args.products,
        args.warehouses,
        args.seed,
        args.client_id,
        args.api_key,
        rows_per_sku=args.rows_per_sku,
        config=config,
    )
    # The catalogue lives as long as the process: keep it out of the garbage collector's full passes,
    # which otherwise stall every answer for half a second at 100,000 products (Ozon does not pause).
    gc.freeze()
    running = serve(sim, args.host, args.port)
    catalogue = sim.accounts[args.client_id].catalogue
    print(
        f"Ozon simulator on {running.url}: {len(catalogue.products)} products, "
        f"{len(catalogue.ozon_warehouses)} Ozon warehouses, {len(catalogue.rows)} warehouse rows; "
        f"Client-Id {args.client_id}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
