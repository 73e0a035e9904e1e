"""The MCP server as MCP clients see it, through the SDK's own client: in process (scripted
fake LLMs), over stdio (``budgetmem mcp`` in a child process, the real small models), and
over streamable HTTP (a real uvicorn, a stand-in for the REST service's key check)."""

from __future__ import annotations

import contextlib
import os
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import mcp.server.mcpserver  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)

import anyio  # noqa: E402
import httpx2  # noqa: E402
import uvicorn  # noqa: E402
from conftest import REPO  # noqa: E402
from fakes import ScriptedFakeLLM  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp_types import CallToolResult  # noqa: E402
from mcp_types.version import LATEST_HANDSHAKE_VERSION  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from budgetmem.cli.main import main  # noqa: E402
from budgetmem.errors import InputError  # noqa: E402
from budgetmem.mcp import (  # noqa: E402
    MemoryPool,
    build_server,
    context_provider,
    current_namespace,
    fixed_provider,
    scoped_namespace,
    streamable_http_app,
)
from budgetmem.settings import Settings  # noqa: E402

TOOLS = {"add_memory", "search_memory", "ask_memory", "list_memories", "delete_memory", "forget_session", "memory_stats"}
BAKERY = [
    {"speaker": "Tomasz", "text": "I finally named the bakery: it is called Kruszynka, after my grandmother's word for crumbs."},
    {"speaker": "Priya", "text": "Kruszynka! I love it. When do you open?"},
]
NOTES = "Moving checklist\n\nBook the van for the first of March.\n\nPixel the cat stays with Ana for a week."


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings().replace(
        encoder__name="all-minilm-l6-v2", pipeline__cache_path=tmp_path / "cache.sqlite", **overrides
    )


def _fake_llms() -> dict[str, ScriptedFakeLLM]:
    return {"fake:answer": ScriptedFakeLLM("fake:answer", lambda prompt: "Kruszynka")}


def _data(result: CallToolResult) -> dict:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def _error(result: CallToolResult) -> str:
    assert result.is_error
    (block,) = result.content
    assert "\n" not in block.text and "Traceback" not in block.text, block.text
    return block.text


# ---------------------------------------------------------------------------- namespace scope
def test_public_names():
    import budgetmem.mcp

    assert len(budgetmem.mcp.__all__) == len(set(budgetmem.mcp.__all__))
    assert all(getattr(budgetmem.mcp, name) is not None for name in budgetmem.mcp.__all__)


def test_scoped_namespace():
    assert scoped_namespace("alice", None) == scoped_namespace("alice", "") == scoped_namespace("alice", "alice") == "alice"
    assert scoped_namespace("alice", "alice/work") == "alice/work"
    assert scoped_namespace("alice", "alice/work/2025") == "alice/work/2025"
    for outside in ("bob", "alice2", "alic", "alice/", "alice//x", "alice/ ", "/alice"):
        with pytest.raises(InputError, match="outside this connection's memory"):
            scoped_namespace("alice", outside)


# ---------------------------------------------------------------------------- in process
@contextlib.asynccontextmanager
async def _in_process(tmp_path: Path) -> AsyncIterator[Client]:
    with MemoryPool(tmp_path / "mem.db", _settings(tmp_path, pipeline__answer_llm="fake:answer"), llms=_fake_llms()) as pool:
        async with Client(build_server(fixed_provider(pool, "demo"))) as client:
            yield client


@pytest.mark.models
def test_tools_in_process(tmp_path):
    async def scenario() -> None:
        async with _in_process(tmp_path) as c:
            assert "is empty" in _error(await c.call_tool("search_memory", {"query": "bakery"}))
            assert _data(await c.call_tool("memory_stats", {}))["exists"] is False

            chat = _data(await c.call_tool("add_memory", {"messages": BAKERY, "session_id": "s1", "date": "8 May 2023"}))
            assert (chat["session_id"], chat["kind"], chat["already_stored"]) == ("s1", "chat", False)
            assert chat["chunks_added"] == chat["chunks_stored"] >= 1
            doc = _data(await c.call_tool("add_memory", {"text": NOTES}))
            assert doc["kind"] == "document" and doc["session_id"].startswith("d-")
            again = _data(await c.call_tool("add_memory", {"text": NOTES}))  # same content, same derived id
            assert again["session_id"] == doc["session_id"] and again["already_stored"] and again["chunks_added"] == 0

            hits = _data(await c.call_tool("search_memory", {"query": "What is the bakery called?", "k": 1}))["hits"]
            assert hits[0]["session_id"] == "s1" and "Kruszynka" in hits[0]["text"] and hits[0]["session_date"] == "8 May 2023"

            page = _data(await c.call_tool("list_memories", {"limit": 1}))
            first_id = page["memories"][0]["chunk_id"]
            assert page["total"] == 2 and len(page["memories"]) == 1 and page["next_after"] == first_id
            last = _data(await c.call_tool("list_memories", {"after": first_id, "limit": 1}))
            assert last["next_after"] is None and last["memories"][0]["kind"] == "document"
            stats = _data(await c.call_tool("memory_stats", {}))
            assert (stats["sessions"], stats["chunks"], stats["encoder"]) == (2, 2, "all-minilm-l6-v2")

            answer = _data(await c.call_tool("ask_memory", {"question": "What is the bakery called?", "policy": "low"}))
            assert answer["answer"] == "Kruszynka" and set(answer["tiers"].values()) == {"LOW"}
            cost = answer["cost"]
            assert [line["step"] for line in cost["ledger"]] == ["filter", "entity", "temporal", "topic", "summary", "answer"]
            assert cost["total_usd"] == pytest.approx(cost["ledger"][-1]["usd"]) and cost["total_usd"] > 0
            assert cost["prompt_tokens"] > 0 and answer["evidence"]

            # A child namespace is a separate memory; anything else is out of reach.
            _data(await c.call_tool("add_memory", {"text": "Project X kickoff notes.", "namespace": "demo/x"}))
            assert _data(await c.call_tool("memory_stats", {"namespace": "demo/x"}))["chunks"] == 1
            assert "outside this connection's memory" in _error(await c.call_tool("memory_stats", {"namespace": "other"}))

            gone = _data(await c.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
            assert gone["chunks"] == 1 and gone["wiped"]
            message = _error(await c.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
            assert f"chunk {hits[0]['chunk_id']} not found in namespace 'demo'" in message
            _data(await c.call_tool("forget_session", {"session_id": doc["session_id"]}))
            assert _data(await c.call_tool("list_memories", {}))["total"] == 0
            assert "not found" in _error(await c.call_tool("forget_session", {"session_id": "s1"}))

            assert "not both" in _error(await c.call_tool("add_memory", {}))
            assert "cannot load a router" in _error(await c.call_tool("ask_memory", {"question": "q", "policy": "router:x.pt"}))

    anyio.run(scenario)


# ---------------------------------------------------------------------------- stdio
@pytest.fixture
def config(tmp_path) -> Path:
    """A settings file for the child process: the small encoder and the small answer model."""
    cfg = tmp_path / "budgetmem.toml"
    cfg.write_text(
        '[encoder]\nname = "all-minilm-l6-v2"\n\n'
        f'[pipeline]\nanswer_llm = "llamacpp:smollm2-135m"\ncache_path = "{tmp_path / "cache.sqlite"}"\n',
        encoding="utf-8",
    )
    return cfg


def _child_env() -> dict[str, str]:
    """The SDK starts servers with a minimal environment: add this tree and the model cache."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("BUDGETMEM_", "HF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.mark.models
def test_stdio_server(tmp_path, config):
    store = tmp_path / "mem.db"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "budgetmem", "mcp", "--store", str(store), "--namespace", "demo", "--config", str(config)],
        env=_child_env(),
        cwd=str(tmp_path),
    )
    log = tmp_path / "server.log"

    async def scenario() -> None:
        with log.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert set(tools) == TOOLS
                assert all(len(t.description or "") > 80 and t.output_schema for t in tools.values())
                assert "permanent" in tools["delete_memory"].description.lower()
                assert "cost_weight" in tools["ask_memory"].description

                call = session.call_tool
                _data(await call("add_memory", {"messages": BAKERY, "session_id": "s1", "date": "8 May 2023"}))
                doc = _data(await call("add_memory", {"text": NOTES, "session_id": "notes"}))
                hits = _data(await call("search_memory", {"query": "bakery name", "k": 1}))["hits"]
                assert "Kruszynka" in hits[0]["text"]

                answer = _data(await call("ask_memory", {"question": "What did Tomasz name his bakery?"}))
                assert answer["answer"].strip() and set(answer["tiers"].values()) == {"MID"}
                step = answer["cost"]["ledger"][-1]
                assert step["step"] == "answer" and step["model"] == "llamacpp:smollm2-135m" and step["prompt_tokens"] > 0
                assert answer["cost"]["total_usd"] > 0 and answer["cost"]["price_sources"]

                assert "chunk 999 not found in namespace 'demo'" in _error(await call("delete_memory", {"chunk_id": 999}))
                _data(await call("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
                hits = _data(await call("search_memory", {"query": "bakery name"}))["hits"]
                assert hits and not any("Kruszynka" in h["text"] for h in hits)
                assert _data(await call("forget_session", {"session_id": doc["session_id"]}))["chunks"] >= 1
                assert _data(await call("search_memory", {"query": "Pixel the cat"}))["hits"] == []

    try:
        anyio.run(scenario)
    except BaseException:
        print(log.read_text(), file=sys.stderr)  # the server's stderr, shown with the failure
        raise


@pytest.mark.models
def test_stdio_stdout_is_protocol_only(tmp_path, config):
    """Loading the encoder and storing (what prints, if anything does) leaves stdout to JSON-RPC."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add_memory", "arguments": {"text": NOTES}}},
    ]  # fmt: skip
    argv = [sys.executable, "-m", "budgetmem", "mcp", "--store", str(tmp_path / "m.db"), "--namespace", "demo",
            "--config", str(config)]  # fmt: skip
    log = (tmp_path / "server.log").open("w")  # a file: a full stderr pipe could stall the child
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, **_child_env()}, cwd=tmp_path)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    replies = []
    for message in messages:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        if "id" in message:  # wait for the answer: the server reads on only after it
            replies.append(json.loads(proc.stdout.readline()))
    proc.stdin.close()
    rest = proc.stdout.read()
    code = proc.wait(timeout=60)
    log.close()
    assert code == 0, (tmp_path / "server.log").read_text()
    assert rest == "", f"stdout carried more than the protocol: {rest!r}"
    assert [r["id"] for r in replies] == [1, 2] and all(r["jsonrpc"] == "2.0" for r in replies)
    assert replies[1]["result"]["structuredContent"]["kind"] == "document"


def test_mcp_command_errors_are_one_line(tmp_path, capsys):
    code = main(["mcp", "--store", str(tmp_path / "m.db"), "--namespace", "demo", "--policy", "medium"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "unknown policy 'medium'" in err


# ---------------------------------------------------------------------------- streamable HTTP
KEYS = {"key-demo": "demo", "key-other": "other"}


class BearerNamespace:
    """Stands in for the REST service's auth: a known bearer key binds its namespace."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = current_namespace.set(KEYS.get(auth.removeprefix("Bearer ")))
        try:
            await self.app(scope, receive, send)
        finally:
            current_namespace.reset(token)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def _http_session(url: str, key: str | None) -> AsyncIterator[tuple[ClientSession, httpx2.AsyncClient]]:
    """An MCP session over HTTP with ``key`` as bearer token; the HTTP client's headers can change."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session, http


@pytest.mark.models
def test_streamable_http_mounted(tmp_path):
    with MemoryPool(tmp_path / "mem.db", _settings(tmp_path, pipeline__answer_llm="fake:answer"), llms=_fake_llms()) as pool:
        server = build_server(context_provider(pool))
        mcp_app = streamable_http_app(server)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with server.session_manager.run():  # a mounted app's own lifespan does not run
                yield

        service = Starlette(routes=[Mount("/", app=mcp_app)], lifespan=lifespan)
        service.add_middleware(BearerNamespace)

        async def scenario(url: str) -> None:
            async with _http_session(url, "key-demo") as (s, s_http):
                added = _data(await s.call_tool("add_memory", {"messages": BAKERY, "session_id": "s1"}))
                assert added["namespace"] == "demo"
                hits = _data(await s.call_tool("search_memory", {"query": "bakery name", "k": 1}))["hits"]
                assert "Kruszynka" in hits[0]["text"]
                answer = _data(await s.call_tool("ask_memory", {"question": "What is the bakery called?", "cost_weight": 0.3}))
                assert answer["answer"] == "Kruszynka" and answer["cost_weight"] == 0.3
                assert answer["cost"]["ledger"][-1]["model"] == "fake:answer"

                # Another key reaches only its own memory, even if it names demo's.
                async with _http_session(url, "key-other") as (other, _):
                    assert "is empty" in _error(await other.call_tool("search_memory", {"query": "bakery"}))
                    assert "outside" in _error(await other.call_tool("search_memory", {"query": "b", "namespace": "demo"}))
                    assert "is empty" in _error(await other.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
                async with _http_session(url, None) as (anonymous, _):
                    assert "no namespace is bound" in _error(await anonymous.call_tool("memory_stats", {}))

                # The namespace is the one of the key on each request, not of the one that opened
                # the session: this session's id presented with another key acts for that key.
                s_http.headers["Authorization"] = "Bearer key-other"
                assert _data(await s.call_tool("memory_stats", {}))["namespace"] == "other"
                del s_http.headers["Authorization"]
                assert "no namespace is bound" in _error(await s.call_tool("memory_stats", {}))
                s_http.headers["Authorization"] = "Bearer key-demo"

                gone = _data(await s.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
                assert gone["namespace"] == "demo" and gone["chunks"] == 1
                assert _data(await s.call_tool("search_memory", {"query": "bakery name"}))["hits"] == []

        with _serve(service) as url:
            anyio.run(scenario, url)
