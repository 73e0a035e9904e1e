"""``budgetmem serve``: the memory service (FastAPI on uvicorn) over one store file.

FastAPI and uvicorn are imported here only when the command runs, so the rest of the CLI
works without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from budgetmem.store import describe
from budgetmem.cli.common import add_store_option, settings_from
from budgetmem.errors import ConfigError
from budgetmem.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve", help="serve memories over HTTP (REST, bearer keys)",
        description="Serve the store over HTTP. Every endpoint but /healthz needs a key (budgetmem keys create); "
        "a --host other than loopback is refused until the store has at least one. Flags override the "
        "[server] section of --config.",
    )  # fmt: skip
    add_store_option(p)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="default 8420")
    p.add_argument("--processes", type=int, metavar="N", help="server processes on the port (default 1; "
                   "one process uses about one core)")
    p.add_argument("--workers-pool", type=int, metavar="N", help="threads answering queries, per process (default 2)")
    p.add_argument("--queue", type=int, metavar="N", help="queries waiting for a thread before 429 (default 8)")
    p.add_argument("--timeout", type=float, metavar="S", help="longest request, else 504 (default 120)")
    p.add_argument("--max-body", type=int, metavar="BYTES", help="largest request body, else 413 (default 8 MiB)")
    p.add_argument("--async-body", type=int, metavar="BYTES", help="adds larger than this run as jobs (default 256 KiB)")
    p.add_argument("--policy", help="query policy when a request names none (default mid; may be router:PATH)")
    p.add_argument("--strategy", choices=["implementation", "reasoning", "capacity"], help="default pipeline strategy")
    p.add_argument("--encoder", metavar="NAME", help="encoder of new namespaces (default all-mpnet-base-v2)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    settings = settings_from(
        args,
        server__host=args.host, server__port=args.port, server__workers=args.workers_pool, server__processes=args.processes,
        server__queue=args.queue, server__timeout_s=args.timeout, server__max_body=args.max_body,
        server__async_body=args.async_body, server__policy=args.policy,
        pipeline__strategy=args.strategy, encoder__name=args.encoder,
    )  # fmt: skip
    try:
        import fastapi  # noqa: F401
        import uvicorn

        from budgetmem.server.worker import build
    except ImportError as exc:
        raise ConfigError(f"the service needs {exc.name}", hint="pip install 'budgetmem[server]'") from None
    s = settings.server
    keys = _active_keys(args.store)
    if not is_loopback(s.host) and keys == 0:
        raise ConfigError(
            f"refusing to listen on {s.host}: the store has no API key, so nothing could use it safely",
            hint=f"budgetmem keys create --store {describe(args.store)} --namespace NAME --scope read,write",
        )
    if keys == 0:
        print("budgetmem: note: no API keys yet; every request but /healthz gets 401 (budgetmem keys create)",
              file=sys.stderr)  # fmt: skip
    # The access log prints the method and path, never headers, so keys stay out of it.
    options = {"host": s.host, "port": s.port, "log_level": args.log_level, "access_log": True}
    if s.processes > 1:
        return _run_processes(args.store, settings, options)
    app = build(args.store, settings)
    try:
        uvicorn.run(app, workers=1, **options)
    finally:
        app.state.service.close()
    return 0


def _active_keys(store: str) -> int:
    from budgetmem.store import Store
    from budgetmem.store.keys import KeyStore

    with Store(store) as opened:
        return KeyStore(opened).active()


def _run_processes(store: str, settings: Settings, options: dict[str, Any]) -> int:
    """uvicorn's own worker processes on one socket, each building its app from the
    settings handed over here; their metrics meet in a directory that lives as long as
    this parent does."""
    import os
    import tempfile

    import uvicorn

    from budgetmem.server.worker import ENV, handover

    with tempfile.TemporaryDirectory(prefix="budgetmem-metrics-") as shared:
        os.environ[ENV] = handover(store, settings)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        uvicorn.run("budgetmem.server.worker:app", factory=True, workers=settings.server.processes, **options)
    return 0
