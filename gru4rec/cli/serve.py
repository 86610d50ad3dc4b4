"""``gru4rec serve``: a run's model as an HTTP JSON service for live sessions (see :mod:`gru4rec.serve`)."""

from __future__ import annotations

import argparse
import socket
import sys

from gru4rec.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP for live sessions (one state per session, clicks micro-batched)",
        description='Answer POST /sessions/{id}/events {"item_id": ID, "k": K} with the session\'s next top-k '
        "items, keeping one hidden state per live session (in this process, or in Redis with --state-store "
        "redis://HOST:PORT/DB so that several server processes and restarts share them); also GET /sessions/{id}/"
        "recommendations?k=K, DELETE /sessions/{id}, GET /health, GET /metrics. Listens on 127.0.0.1 unless told "
        "otherwise (docs/serving.md).",
    )
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="a training run folder")
    parser.add_argument("--epoch", type=int, metavar="E", help="checkpoint epoch (default: the last)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, metavar="N", help="port (default 8000)")
    parser.add_argument(
        "--state-store",
        default="memory",
        metavar="STORE",
        help="where the session states live: memory (this process, lost when it stops; the default) or "
        "redis://HOST:PORT/DB (a Redis server 6.2 or newer: shared by several server processes, kept across restarts)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=100_000,
        metavar="N",
        help="live sessions kept by the memory store; beyond, the least recently used is evicted (default 100000; "
        "Redis is bounded by its own memory)",
    )
    parser.add_argument(
        "--session-ttl",
        "--idle-timeout",
        dest="session_ttl",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="seconds without a request after which a session is forgotten, in both stores (Redis: the key's expiry, "
        "refreshed at every request; default 1800)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="how long to gather concurrent clicks into one model call (default 2)",
    )
    parser.add_argument(
        "--max-k", type=int, default=1000, metavar="K", help="the largest k a request may ask for (default 1000)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gru4rec.cli.evaluate import _check_run

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: expected a port number in 1..65535")
    if args.max_sessions < 1:
        raise CliError(f"--max-sessions {args.max_sessions}: expected at least 1")
    if not args.session_ttl > 0:
        raise CliError(f"--session-ttl {args.session_ttl}: expected a number of seconds > 0")
    if not 0 <= args.batch_wait_ms <= 1000:
        raise CliError(f"--batch-wait-ms {args.batch_wait_ms}: expected 0 to 1000 milliseconds")
    if args.max_k < 1:
        raise CliError(f"--max-k {args.max_k}: expected at least 1")
    from gru4rec.state_store import StateStoreError, open_state_store

    _check_run(args.model)
    _check_port(args.host, args.port)
    try:
        store = open_state_store(args.state_store, ttl=args.session_ttl, max_sessions=args.max_sessions)
    except (ValueError, StateStoreError) as bad:
        raise CliError(f"--state-store {bad}") from None

    import uvicorn

    from gru4rec.recommend import Recommender
    from gru4rec.serve import SessionService, create_app

    recommender = Recommender.from_run(args.model, epoch=args.epoch, store=store)
    service = SessionService(recommender, batch_wait_ms=args.batch_wait_ms, max_k=args.max_k)
    where = store.address.url if store.name == "redis" else "in this process"
    print(f"gru4rec serve: {recommender.n_items} items, session states {where} (model {recommender.fingerprint()}), "
          f"starting on http://{args.host}:{args.port}", file=sys.stderr, flush=True)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=args.host, port=args.port, log_level="warning"))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot start (its own log line says why)
        raise CliError(f"--host {args.host} --port {args.port}: the server could not start") from None
    return 0


def _check_port(host: str, port: int) -> None:
    """Refuse an address that cannot be bound now (in use, not this machine's) before the model is loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CliError(f"--host {host}: not an address of this machine ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise CliError(f"--host {host} --port {port}: cannot listen there ({error.strerror})") from None
