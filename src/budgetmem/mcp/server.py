"""The MCP server: seven tools over :class:`~budgetmem.BudgetMem`, one call each.

Every tool resolves its memory through the provider (see :mod:`budgetmem.mcp.context`),
runs one library method in a worker thread (embedding and LLM calls block; the event loop
keeps serving other sessions meanwhile) and returns a typed result, which the SDK sends as
structured content with a published output schema. A :class:`~budgetmem.BudgetMemError`
comes back as an MCP tool error carrying its one-line message; anything else the SDK
reports as a bare "Error executing tool NAME", its traceback going to the server's log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from budgetmem.errors import BudgetMemError, InputError, NotFoundError
from budgetmem.mcp.context import MemoryProvider, Scope
from budgetmem.mcp.models import Added, Answer, Forgotten, Memory, MemoryPage, Message, SearchHit, SearchResult, Stats
from budgetmem.memory import BudgetMem

__all__ = ["build_server", "INSTRUCTIONS"]

T = TypeVar("T")

INSTRUCTIONS = """\
Long-term memory that persists across conversations. Store what is worth remembering with
add_memory (the user's facts, preferences, decisions, plans; notes and documents). Before
answering anything that may depend on earlier conversations, recall with search_memory
(raw passages, fast, no model cost) or ask_memory (one synthesized answer, with its cost).
delete_memory and forget_session erase memories permanently."""

Namespace = Annotated[
    str | None,
    Field(
        description="Leave empty to use your own memory. A child such as '<yours>/project-x' is a separate "
        "memory inside yours; no other namespace can be reached."
    ),
]

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_ERASE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


def build_server(
    provider: MemoryProvider,
    *,
    name: str = "budgetmem",
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
) -> MCPServer:
    """The MCP server over the memories ``provider`` hands out.

    Serve it over stdio with ``server.run("stdio")`` (what ``budgetmem mcp`` does), or over
    streamable HTTP with :func:`budgetmem.mcp.http.streamable_http_app`. ``log_level`` is the
    SDK's logging level (it configures the root logger to stderr if nothing else did)."""
    from budgetmem import __version__

    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, version=__version__, log_level=log_level)

    async def call(namespace: str | None, scope: Scope, work: Callable[[BudgetMem], T]) -> T:
        """Run ``work`` on the caller's memory in a worker thread; library errors become tool errors.
        ``scope`` is what the call needs of the caller's key over HTTP (read, query or write)."""
        try:
            # The handler runs in the context of the HTTP request that carried the message (the
            # SDK's own get_access_token relies on it), and to_thread copies that context on, so
            # the provider sees the namespace the auth middleware set for this very request.
            return await anyio.to_thread.run_sync(lambda: _on_memory(provider, namespace, scope, work))
        except BudgetMemError as exc:
            raise ToolError(exc.one_line()) from None

    @server.tool(
        annotations=_ADD,
        description=_text("""Store something to remember later, verbatim. Give either `messages` (a conversation:
[{speaker, text}], e.g. the turns of this exchange worth keeping) or `text` (a document: notes, a summary,
a file's content). Worth storing: facts about the user, preferences, decisions, plans, commitments, and
anything a later conversation will need; skip small talk. `session_id` groups what belongs together
(forget_session erases a whole session); left out, it is derived from the content, so storing the same
thing twice adds nothing. `date` is when it happened (e.g. '2025-05-08' or '8 May 2025, 14:00'); it lets
later questions with relative dates ('last week') be answered. Returns the session_id and the chunks stored."""),
    )
    async def add_memory(
        messages: Annotated[list[Message] | None, Field(description="A conversation to store, in order.")] = None,
        text: Annotated[str | None, Field(description="A document to store (instead of messages).")] = None,
        session_id: Annotated[str | None, Field(description="Groups what belongs together; optional.")] = None,
        date: Annotated[str | None, Field(description="When it happened; optional.")] = None,
        namespace: Namespace = None,
    ) -> Added:
        if (messages is None) == (text is None):
            raise ToolError("give either messages (a conversation) or text (a document), not both and not neither")

        def work(mem: BudgetMem) -> Added:
            # Without a session_id the library derives one from the content (the same as REST),
            # so storing the same thing twice adds nothing.
            if messages is not None:
                turns = [(m.speaker, m.text) if m.speaker else m.text for m in messages]
                return Added.from_report(mem.add_session(turns, session_id=session_id, date_time=date, source="mcp"), "chat")
            assert text is not None
            return Added.from_report(mem.add_document(text, document_id=session_id, date_time=date, source="mcp"), "document")

        return await call(namespace, "write", work)

    @server.tool(
        annotations=_READ,
        description=_text("""Find stored memories that match a query; returns the raw passages, best first, each
with its chunk_id, session and date. Fast and free (no model call): use it to recall facts before
answering, to check what is stored, or to find the chunk_id to delete. Use ask_memory instead when you
want one synthesized answer to a question."""),
    )
    async def search_memory(
        query: Annotated[str, Field(min_length=1, description="Keywords or a question.")],
        k: Annotated[int, Field(ge=1, le=50, description="How many passages to return.")] = 5,
        namespace: Namespace = None,
    ) -> SearchResult:
        def work(mem: BudgetMem) -> SearchResult:
            hits = mem.search(query, k=k)
            return SearchResult(namespace=mem.namespace, query=query, hits=[SearchHit.from_hit(h) for h in hits])

        return await call(namespace, "read", work)

    @server.tool(
        annotations=_READ,
        description=_text("""Answer a question from memory: retrieves the relevant passages, extracts the entities,
dates and topics that matter, and has the answer model write a short answer. Returns the answer, the
chunk_ids it relied on, the tier each step ran at, and its cost (USD, tokens, a per-step ledger). It
spends model calls, so prefer search_memory when raw passages are enough. `cost_weight` trades quality
for cost: 0 asks for the best answer, higher values (0.3, 0.7, ...) for cheaper processing; a server
running a trained router follows it, fixed policies ignore it. `policy` sets the tiers for this call:
'low' (cheapest: rules), 'mid' (local encoders), 'high' (a model at every step: best, costliest), or a
per-step map like 'mid,filter=high'; left out, the server's policy decides."""),
    )
    async def ask_memory(
        question: Annotated[str, Field(min_length=1, description="The question to answer from memory.")],
        cost_weight: Annotated[
            float | None, Field(ge=0, description="0 = best answer; higher = cheaper. Optional.")
        ] = None,
        policy: Annotated[str | None, Field(description="low | mid | high | a map like 'mid,filter=high'.")] = None,
        question_date: Annotated[
            str | None, Field(description="When the question is asked, to resolve 'yesterday' or 'last month'.")
        ] = None,
        namespace: Namespace = None,
    ) -> Answer:
        if policy is not None and policy.strip().lower().startswith("router:"):
            # A router is a checkpoint file on the server: only its operator picks one (--policy).
            raise ToolError("a tool call cannot load a router; the server's own policy chooses one")

        def work(mem: BudgetMem) -> Answer:
            result = mem.query(question, cost_weight=cost_weight, policy=policy or None, question_date=question_date)
            return Answer.from_result(mem.namespace, result)

        return await call(namespace, "query", work)

    @server.tool(
        annotations=_READ,
        description=_text("""List stored memories page by page, oldest first, each with its chunk_id and session.
Use it to review or audit what is stored; use search_memory to find something specific. For the next
page pass the returned next_after as `after`."""),
    )
    async def list_memories(
        after: Annotated[int, Field(ge=0, description="The last chunk_id of the previous page (0 = from the oldest).")] = 0,
        limit: Annotated[int, Field(ge=1, le=100, description="Memories per page.")] = 20,
        namespace: Namespace = None,
    ) -> MemoryPage:
        def work(mem: BudgetMem) -> MemoryPage:
            info = mem.store.namespace(mem.namespace)
            total = info.n_chunks if info is not None else 0
            page = mem.memories(after=after, limit=limit + 1) if info is not None else []  # one more: is there a next page?
            shown = page[:limit]
            return MemoryPage(
                namespace=mem.namespace, total=total, after=after, memories=[Memory.from_chunk(c) for c in shown],
                next_after=shown[-1].id if len(page) > limit else None,
            )  # fmt: skip

        return await call(namespace, "read", work)

    @server.tool(
        annotations=_ERASE,
        description=_text("""Permanently delete one stored memory by its chunk_id (from search_memory or
list_memories): its text, its embedding and every result computed from it are erased and cannot be
restored. Use it when the user asks you to forget something, or a memory is wrong. An id that is not
stored in this memory is an error."""),
    )
    async def delete_memory(
        chunk_id: Annotated[int, Field(description="The chunk_id to erase.")],
        namespace: Namespace = None,
    ) -> Forgotten:
        return await call(namespace, "write", lambda mem: Forgotten.from_report(mem.delete(chunk_id)))

    @server.tool(
        annotations=_ERASE,
        description=_text("""Permanently delete every memory of one session (the session_id add_memory returned,
also shown in search results). Cannot be undone. A session that is not stored is an error."""),
    )
    async def forget_session(
        session_id: Annotated[str, Field(min_length=1, description="The session to erase.")],
        namespace: Namespace = None,
    ) -> Forgotten:
        return await call(namespace, "write", lambda mem: Forgotten.from_report(mem.forget_session(session_id)))

    @server.tool(
        annotations=_READ,
        description=_text("""How much this memory holds: sessions, chunks, tokens, archived chunks, the write
policy. Cheap; use it to see whether anything is stored yet."""),
    )
    async def memory_stats(namespace: Namespace = None) -> Stats:
        return await call(namespace, "read", lambda mem: Stats.from_info(mem.namespace, mem.store.namespace(mem.namespace)))

    return server


def _on_memory(provider: MemoryProvider, namespace: str | None, scope: Scope, work: Callable[[BudgetMem], T]) -> T:
    mem = provider(namespace, scope)
    try:
        return work(mem)
    except NotFoundError:
        # The store's own message names its file and the other namespaces in it: a caller of a
        # shared service must see neither, and for a memory with nothing in it there is a better word.
        if mem.store.namespace(mem.namespace, counts=False) is None:
            raise InputError(f"memory {mem.namespace!r} is empty", hint="store something with add_memory first") from None
        raise


def _text(description: str) -> str:
    """A tool description as one paragraph (written wrapped, sent unwrapped)."""
    return " ".join(description.split())


