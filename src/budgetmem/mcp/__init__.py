"""budgetmem as an MCP server (the official ``mcp`` SDK, 2.x): memory tools for any MCP client.

Tools: add_memory, search_memory, ask_memory, list_memories, delete_memory, forget_session,
memory_stats; each calls one :class:`~budgetmem.BudgetMem` method.

    stdio (one namespace):   budgetmem mcp --store memory.db --namespace alice
    in Python:               build_server(fixed_provider(MemoryPool("memory.db"), "alice")).run("stdio")
    streamable HTTP:         streamable_http_app(build_server(context_provider(pool)))  # see .http

Modules: ``context`` (the namespace scope, the memory pool and providers, the ContextVar the
REST service sets), ``models`` (tool inputs and results), ``server`` (the tools), ``http``
(the ASGI app and how to mount it).
"""

try:
    import mcp.server.mcpserver  # noqa: F401  (2.x; 1.x called it FastMCP)
except ImportError:
    from budgetmem.errors import ConfigError

    raise ConfigError("the MCP server needs the mcp SDK 2.x", hint="pip install 'budgetmem[server]'") from None

from budgetmem.mcp.context import (
    MemoryPool,
    MemoryProvider,
    context_provider,
    current_namespace,
    current_scopes,
    fixed_provider,
    scoped_namespace,
)
from budgetmem.mcp.http import streamable_http_app
from budgetmem.mcp.server import build_server

__all__ = [
    "MemoryPool",
    "MemoryProvider",
    "build_server",
    "context_provider",
    "current_namespace",
    "current_scopes",
    "fixed_provider",
    "scoped_namespace",
    "streamable_http_app",
]
