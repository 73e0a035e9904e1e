"""``budgetmem mcp``: serve one namespace of a store to an MCP client over stdio.

The client (Claude Desktop, an IDE, an agent framework) starts this command and speaks the
protocol on its stdin / stdout, so nothing else may reach stdout: the SDK points file
descriptor 1 at stderr while it serves, and logs go to stderr too.
"""

from __future__ import annotations

import argparse

from budgetmem.cli.common import add_store_option, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mcp",
        help="serve a namespace's memory to an MCP client over stdio",
        description="Serve memory tools (add_memory, search_memory, ask_memory, list_memories, delete_memory, "
        "forget_session, memory_stats) over stdio for one namespace; tool calls may also name a child "
        "namespace NAME/... . The store file is created if it does not exist.",
    )
    add_store_option(p)
    p.add_argument("--namespace", required=True, metavar="NAME", help="whose memory: a user or agent id")
    # Also accepted after the command, where client configurations usually put it; SUPPRESS
    # keeps an absent one from overwriting a --config given before the command.
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="settings file (TOML)")
    p.add_argument(
        "--policy",
        default="mid",
        help="ask_memory's tiers when a call names none: low | mid | high | a per-module map | router:PATH "
        "(a trained router, which follows each call's cost_weight; default mid)",
    )
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr logging")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.mcp import MemoryPool, build_server, fixed_provider

    settings = settings_from(args)
    with MemoryPool(args.store, settings, policy=args.policy) as pool:
        provider = fixed_provider(pool, args.namespace)
        provider(None, "read")  # a bad --policy, router or store fails now, as one line, not at the first call
        server = build_server(provider, log_level=args.log_level)
        server.run("stdio")
    return 0
