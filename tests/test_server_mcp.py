"""The MCP tools mounted in the REST service at /mcp, behind the same bearer keys, driven by
the official SDK's streamable-HTTP client against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import pytest

import mcp.server.mcpserver  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)

import anyio  # noqa: E402
import httpx  # noqa: E402
from test_mcp import BAKERY, _data, _error, _fake_llms, _http_session, _serve, _settings  # noqa: E402

from budgetmem.server import create_app  # noqa: E402
from budgetmem.store import Store  # noqa: E402
from budgetmem.store.keys import KeyStore  # noqa: E402

pytestmark = pytest.mark.models


def test_mcp_at_slash_mcp_uses_the_service_keys_and_scopes(tmp_path, minilm) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "mem.db"
    with Store(store) as s:
        keys = KeyStore(s)
        full, _ = keys.create("demo", "read,query,write")
        reader, _ = keys.create("demo", "read")
        other, _ = keys.create("other", "read,query,write")
    app = create_app(store, _settings(tmp_path, pipeline__answer_llm="fake:answer"), llms=_fake_llms(), encoder=minilm)

    async def scenario(url: str) -> None:
        async with _http_session(url, full) as (s, _):
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"add_memory", "search_memory", "ask_memory", "delete_memory"} <= names
            added = _data(await s.call_tool("add_memory", {"messages": BAKERY, "session_id": "s1"}))
            assert added["namespace"] == "demo" and added["chunks_added"] >= 1
            hits = _data(await s.call_tool("search_memory", {"query": "bakery name", "k": 1}))["hits"]
            assert "Kruszynka" in hits[0]["text"]
            answer = _data(await s.call_tool("ask_memory", {"question": "What is the bakery called?"}))
            assert answer["answer"] == "Kruszynka" and answer["cost"]["ledger"][-1]["model"] == "fake:answer"
            async with _http_session(url, reader) as (r, _):  # read, but not write or query
                assert _data(await r.call_tool("search_memory", {"query": "bakery"}))["hits"]
                assert "lacks the 'write' scope" in _error(await r.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
                assert "lacks the 'query' scope" in _error(await r.call_tool("ask_memory", {"question": "bakery?"}))
            async with _http_session(url, other) as (o, _):
                assert "outside" in _error(await o.call_tool("search_memory", {"query": "b", "namespace": "demo"}))
            gone = _data(await s.call_tool("delete_memory", {"chunk_id": hits[0]["chunk_id"]}))
            assert gone["namespace"] == "demo" and gone["chunks"] == 1
            assert _data(await s.call_tool("search_memory", {"query": "bakery name"}))["hits"] == []

    try:
        with _serve(app) as url:
            anyio.run(scenario, url)
            for header in ({}, {"Authorization": "Bearer bm_nope_nope"}, {"Authorization": "Basic x"}):
                r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=header)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
                assert r.json()["error"]["type"] == "AuthError"
                assert "bm_nope" not in r.text  # a key is never echoed
    finally:
        app.state.service.close()
