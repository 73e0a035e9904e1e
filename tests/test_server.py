"""The memory service as a user runs it: ``budgetmem serve`` in its own process on
127.0.0.1, driven over HTTP. Every endpoint, the 401/403 matrix, child namespaces, body
limits, background jobs, a real query (SmolLM2-135M answers), metrics, and keys."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

import fastapi  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)
from serving import REPO, ServerProcess, make_key

from budgetmem.client import Client
from budgetmem.cli.main import main
from budgetmem.errors import AuthError, BusyError, ForbiddenError, InputError, NotFoundError, TooLargeError
from budgetmem.store import Store
from budgetmem.store.keys import KeyStore

pytestmark = pytest.mark.timeout(300)

PRIYA = [("Priya", "I moved to Lisbon on 3 May 2023 for my new job."), ("Tomasz", "Congrats! My bakery opens next week.")]
TOMASZ = [("Tomasz", "I named my bakery Rye and Shine."), ("Priya", "What a great name for a bakery!")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: a store with keys made before it starts (and some after)."""
    root = tmp_path_factory.mktemp("service")
    store = root / "memory.db"
    config = root / "budgetmem.toml"
    config.write_text(
        f'[encoder]\nname = "all-minilm-l6-v2"\n[chunking]\nmax_tokens = 64\n'
        f'[pipeline]\nanswer_llm = "llamacpp:smollm2-135m"\ncache_path = "{root / "cache.sqlite"}"\n'
        f"[server]\nmax_body = 200000\nasync_body = 20000\n",
        encoding="utf-8",
    )
    keys = {
        "all": make_key(store, "alice", "read,write,query,metrics"),
        "read": make_key(store, "alice", "read"),
        "bob": make_key(store, "bob", "read,write,query,metrics"),
        "team": make_key(store, "team", "read,write"),
    }
    proc = ServerProcess(store, root / "server.log", config=config)
    proc.store, proc.keys, proc.root = store, keys, root  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def alice(server):
    """Alice's memory, filled through the client: two chat sessions and a document."""
    with Client(server.url, server.keys["all"], namespace="alice") as c:
        first = c.add_session(PRIYA, session_id="s1", date_time="3 May 2023")
        c.add_session(TOMASZ, session_id="s2", date_time="10 May 2023")
        c.add_document("Rye flour comes from the mill in Porto.\n\nThe oven runs at 240 degrees.", document_id="notes")
        yield c, first


def test_health_needs_no_key(server):
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_add_is_201_and_idempotent_per_session(server, alice):
    c, first = alice
    assert first["session_id"] == "s1" and first["sessions_added"] == 1 and first["chunks_added"] >= 1
    assert first["write_policy"] == "all" and first["chunks_stored"] == first["chunks_added"]
    body = {"messages": [{"speaker": s, "text": t} for s, t in PRIYA], "session_id": "s1", "date": "3 May 2023"}
    again = httpx.post(f"{server.url}/v1/namespaces/alice/memories", json=body, headers=_h(server.keys["all"]))
    assert again.status_code == 200 and again.json()["sessions_skipped"] == 1 and again.json()["chunks_added"] == 0
    # Without an id, one is derived from the content: a retried request still stores once.
    body = {"messages": [{"text": "The cat is called Pixel."}]}
    one = httpx.post(f"{server.url}/v1/namespaces/alice/memories", json=body, headers=_h(server.keys["all"]))
    two = httpx.post(f"{server.url}/v1/namespaces/alice/memories", json=body, headers=_h(server.keys["all"]))
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["session_id"] == two.json()["session_id"] and one.json()["session_id"].startswith("s-")
    assert len(list(c.memories(session_id=one.json()["session_id"]))) == 1


def test_search_list_get_stats(server, alice):
    c, _ = alice
    hits = c.search("What is the bakery called?", k=2)
    assert len(hits) == 2 and "Rye and Shine" in hits[0]["text"] and hits[0]["session_id"] == "s2"
    assert set(hits[0]) >= {"chunk_id", "score", "text", "session_id", "date", "dia_ids"}
    assert hits[0]["date"] == "10 May 2023" and hits[0]["dia_ids"] == ["s2:0", "s2:1"]
    assert c.search("rye flour mill", k=1, retriever="bm25")[0]["session_id"] == "notes"

    everything = list(c.memories(page_size=2))  # pages of two: the cursor is followed to the end
    assert [m["chunk_id"] for m in everything] == sorted(m["chunk_id"] for m in everything)
    assert {"s1", "s2", "notes"} <= {m["session_id"] for m in everything}
    page = httpx.get(f"{server.url}/v1/namespaces/alice/memories", params={"limit": 1}, headers=_h(server.keys["read"]))
    assert page.status_code == 200 and page.json()["next_cursor"] == str(everything[0]["chunk_id"])
    one = c.memory(hits[0]["chunk_id"])
    assert one["text"] == hits[0]["text"] and one["speakers"] == ["Tomasz", "Priya"]

    stats = c.stats()
    assert stats["namespace"] == "alice" and stats["encoder"] == "all-minilm-l6-v2"
    assert stats["stored_chunks"] == len(everything) and stats["write_policy"] == {"policy": "all"}


def test_query_answers_with_the_full_ledger_and_metrics_count_it(server, alice):
    c, _ = alice
    result = c.query("What is the name of Tomasz's bakery?", policy="mid", k=3)
    assert result["answer"].strip() and result["tiers"] == dict.fromkeys(
        ["filter", "entity", "temporal", "topic", "summary"], "MID"
    )
    cost = result["cost"]
    assert [m["module"] for m in cost["modules"]] == ["filter", "entity", "temporal", "topic", "summary"]
    assert all(m["method"] == "encoder" and m["usd"] == 0 for m in cost["modules"])  # MID: encoders, no LLM
    call = cost["answer"]["calls"][0]
    assert call["model"] == "llamacpp:smollm2-135m" and call["prompt_tokens"] > 0 and call["completion_tokens"] > 0
    totals = cost["totals"]
    assert totals["answer_prompt_tokens"] == call["prompt_tokens"] and totals["extraction_usd"] == 0
    assert totals["total_usd"] == pytest.approx(call["usd"]) and result["parse_failures"] == []

    metrics = httpx.get(f"{server.url}/metrics", headers=_h(server.keys["all"]))
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = _samples(metrics.text)
    assert samples[("budgetmem_queries_total", (("namespace", "alice"),))] == 1
    assert samples[("budgetmem_llm_tokens_total", (("kind", "prompt"), ("namespace", "alice")))] == call["prompt_tokens"]
    assert samples[("budgetmem_llm_usd_total", (("namespace", "alice"),))] == pytest.approx(call["usd"])
    query = (("method", "POST"), ("route", "/v1/namespaces/{ns}/query"), ("status", "200"))
    assert samples[("budgetmem_http_requests_total", query)] == 1
    search = (("le", "+Inf"), ("method", "POST"), ("route", "/v1/namespaces/{ns}/search"))
    assert samples[("budgetmem_http_request_duration_seconds_bucket", search)] >= 2
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not any(r and "alice" in r for r in routes)  # templates, never raw paths


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_query_refuses_policies_that_load_files(server, alice):
    r = httpx.post(
        f"{server.url}/v1/namespaces/alice/query", json={"question": "q?", "policy": "router:/tmp/x.pt"},
        headers=_h(server.keys["all"]),
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["type"] == "InputError"


def test_errors_use_the_envelope(server, alice):
    c, _ = alice
    with pytest.raises(NotFoundError, match="chunk 999999 not found"):
        c.memory(999999)
    with pytest.raises(NotFoundError):
        Client(server.url, server.keys["all"], namespace="alice/nothing-here").search("x")
    r = httpx.post(f"{server.url}/v1/namespaces/alice/search", json={"query": ""}, headers=_h(server.keys["all"]))
    err = r.json()["error"]
    assert r.status_code == 422 and err["type"] == "InputError" and err["message"].startswith("body.query")
    assert err["details"][0]["field"] == "body.query"
    r = httpx.post(f"{server.url}/v1/namespaces/alice/search", content=b"{not json", headers=_h(server.keys["all"]))
    assert r.status_code == 422 and set(r.json()["error"]) >= {"type", "message", "hint"}
    r = httpx.put(f"{server.url}/v1/namespaces/alice/stats", headers=_h(server.keys["all"]))
    assert r.status_code == 405 and r.json()["error"]["type"] == "InputError"
    r = httpx.get(f"{server.url}/nowhere", headers=_h(server.keys["all"]))
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
    with pytest.raises(InputError):
        c.query("Anything at all?", policy="router:/etc/passwd")


def test_openapi_needs_a_key_and_declares_the_contract(server):
    assert httpx.get(f"{server.url}/openapi.json").status_code == 401
    schema = httpx.get(f"{server.url}/openapi.json", headers=_h(server.keys["read"])).json()
    paths = schema["paths"]
    assert {
        "/v1/namespaces/{ns}/memories", "/v1/namespaces/{ns}/memories/{chunk_id}", "/v1/namespaces/{ns}/search",
        "/v1/namespaces/{ns}/query", "/v1/namespaces/{ns}/stats", "/v1/namespaces/{ns}/sessions/{session_id}",
        "/v1/namespaces/{ns}", "/v1/jobs/{job_id}", "/healthz", "/metrics",
    } <= set(paths)  # fmt: skip
    add = paths["/v1/namespaces/{ns}/memories"]["post"]
    assert {"200", "201", "202", "401", "403", "413", "422", "429", "504"} <= set(add["responses"])
    assert add["security"] == [{"HTTPBearer": []}] and "security" not in paths["/healthz"]["get"]


# ---------------------------------------------------------------------------- 401 / 403
ENDPOINTS = [
    ("POST", "/v1/namespaces/{ns}/memories", {"messages": [{"text": "hello"}]}, "write"),
    ("GET", "/v1/namespaces/{ns}/memories", None, "read"),
    ("GET", "/v1/namespaces/{ns}/memories/1", None, "read"),
    ("DELETE", "/v1/namespaces/{ns}/memories/1", None, "write"),
    ("DELETE", "/v1/namespaces/{ns}/sessions/s1", None, "write"),
    ("DELETE", "/v1/namespaces/{ns}", None, "write"),
    ("POST", "/v1/namespaces/{ns}/search", {"query": "bakery"}, "read"),
    ("POST", "/v1/namespaces/{ns}/query", {"question": "bakery?"}, "query"),
    ("GET", "/v1/namespaces/{ns}/stats", None, "read"),
    ("GET", "/v1/jobs/0123456789abcdef01234567", None, None),
    ("GET", "/metrics", None, "metrics"),
    ("GET", "/openapi.json", None, None),
]


def _call(server, method, path, body, headers, ns="alice"):
    return httpx.request(method, server.url + path.format(ns=ns), json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("method,path,body,scope", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_needs_a_valid_key(server, alice, method, path, body, scope):
    for headers in ({}, {"Authorization": "Basic YWxpY2U6eA=="}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer bm_000000000000_guessed"}, {"Authorization": server.keys["all"]}):  # fmt: skip
        r = _call(server, method, path, body, headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["type"] == "AuthError"
    if "{ns}" in path:  # another namespace's key, with every scope
        r = _call(server, method, path, body, _h(server.keys["bob"]))
        assert r.status_code == 403 and r.json()["error"]["type"] == "ForbiddenError", r.text
        assert "not 'alice'" in r.json()["error"]["message"]
    if scope not in (None, "read"):  # a read-only key of the right namespace
        r = _call(server, method, path, body, _h(server.keys["read"]))
        assert r.status_code == 403 and f"lacks the {scope!r} scope" in r.json()["error"]["message"], r.text


def test_child_namespaces_but_not_lookalikes(server):
    team = Client(server.url, server.keys["team"], namespace="team/research")
    assert team.add_session(["Ship the report on Friday."], session_id="t1")["namespace"] == "team/research"
    assert team.search("report", k=1)[0]["session_id"] == "t1"
    Client(server.url, server.keys["team"], namespace="team").add_session(["Standup at nine."], session_id="t0")
    for ns in ("team2", "tea", "teamx/research", "alice"):
        with pytest.raises(ForbiddenError):
            Client(server.url, server.keys["team"], namespace=ns).add_session(["x"], session_id="x")
    with pytest.raises(ForbiddenError, match="lacks the 'query' scope"):
        team.query("When is the report due?")


def test_jobs_for_large_bodies_and_only_their_namespace_sees_them(server):
    text = "\n\n".join(f"Paragraph {i}: the harbour crane number {i} lifts {i * 7} tonnes." for i in range(400))
    assert 20000 < len(text) < 200000
    r = httpx.post(
        f"{server.url}/v1/namespaces/bob/memories", json={"document": text, "session_id": "manual"},
        headers=_h(server.keys["bob"]),
    )  # fmt: skip
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}"
    job = r.json()
    assert job["status"] in ("queued", "running") and job["namespace"] == "bob"
    for key in (server.keys["all"], server.keys["team"]):  # other namespaces: no such job
        other = httpx.get(f"{server.url}{r.headers['location']}", headers=_h(key))
        assert other.status_code == 404 and other.json()["error"]["type"] == "NotFoundError"
    assert httpx.get(f"{server.url}{r.headers['location']}").status_code == 401
    result = Client(server.url, server.keys["bob"], namespace="bob").wait(job["job_id"], timeout_s=240)
    assert result["session_id"] == "manual" and result["chunks_added"] > 10
    done = httpx.get(f"{server.url}{r.headers['location']}", headers=_h(server.keys["bob"])).json()
    assert done["status"] == "done" and done["finished_at"] >= done["started_at"] >= done["created_at"]
    # The client waits for the job on its own; the same document again is stored once.
    assert Client(server.url, server.keys["bob"], namespace="bob").add_document(text, document_id="manual")[
        "sessions_skipped"
    ] == 1


def test_bodies_over_the_limit_get_413(server):
    url, h = f"{server.url}/v1/namespaces/alice/memories", _h(server.keys["all"])
    big = json.dumps({"document": "x " * 150_000}).encode()
    r = httpx.post(url, content=big, headers={**h, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "TooLargeError"

    def chunks():  # no Content-Length: the limit is counted as the bytes arrive
        yield b'{"document": "'
        for _ in range(40):
            yield b"y " * 5000
        yield b'"}'

    r = httpx.post(url, content=chunks(), headers={**h, "content-type": "application/json"})
    assert "content-length" not in r.request.headers and r.status_code == 413, r.text
    assert r.json()["error"]["type"] == "TooLargeError"
    with pytest.raises(TooLargeError):
        Client(server.url, server.keys["all"], namespace="alice").add_document("z " * 150_000)


def test_delete_and_forget(server):
    c = Client(server.url, server.keys["all"], namespace="alice/scratch")
    c.add_session(["The spare key is under the blue pot."], session_id="k1")
    c.add_session(["The wifi password is on the fridge."], session_id="k2")
    c.add_session(["Bins go out on Tuesday."], session_id="k3")
    (m1,) = c.memories(session_id="k1")
    assert c.delete(m1["chunk_id"])["chunks"] == 1
    with pytest.raises(NotFoundError):
        c.memory(m1["chunk_id"])
    with pytest.raises(NotFoundError):
        c.delete(m1["chunk_id"])
    gone = c.forget_session("k2")
    assert gone["chunks"] == 1 and gone["sessions"] == 1
    assert [m["session_id"] for m in c.memories()] == ["k3"]
    whole = c.forget()
    assert whole["namespace_removed"] and whole["chunks"] == 1
    with pytest.raises(NotFoundError):
        c.stats()
    # The parent namespace is untouched.
    assert Client(server.url, server.keys["all"], namespace="alice").stats()["stored_chunks"] > 0


def test_keys_never_reach_the_log(server):
    text = server.log.read_text(encoding="utf-8", errors="replace")
    assert "GET /healthz" in text  # the access log is on
    for key in server.keys.values():
        assert key not in text and key.split("_", 2)[2] not in text


# ---------------------------------------------------------------------------- keys
def test_keys_are_hashed_at_rest_listed_without_secrets_and_revocable(server, capsys):
    key = make_key(server.store, "alice", "read")
    assert httpx.get(f"{server.url}/v1/namespaces/alice/stats", headers=_h(key)).status_code == 200
    raw = server.store.read_bytes() + (server.store.with_name(server.store.name + "-wal").read_bytes()
                                        if server.store.with_name(server.store.name + "-wal").exists() else b"")  # fmt: skip
    assert key.encode() not in raw and key.split("_", 2)[2].encode() not in raw

    assert main(["keys", "list", "--store", str(server.store)]) == 0
    table = capsys.readouterr().out
    assert main(["keys", "list", "--store", str(server.store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    key_id = key.split("_")[1]
    assert key_id in table and all(k.split("_", 2)[2] not in table for k in [key, *server.keys.values()])
    mine = next(k for k in listed if k["id"] == key_id)
    assert mine["namespace"] == "alice" and mine["scopes"] == ["read"] and mine["last_used"] is not None
    assert "key" not in mine and not any(k.split("_", 2)[2] in json.dumps(listed) for k in server.keys.values())

    assert main(["keys", "revoke", key_id, "--store", str(server.store)]) == 0
    r = httpx.get(f"{server.url}/v1/namespaces/alice/stats", headers=_h(key))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    with pytest.raises(AuthError):
        Client(server.url, key, namespace="alice").stats()
    assert main(["keys", "revoke", "ffffffffffff", "--store", str(server.store)]) == 2


def test_keys_create_json_and_bad_input(tmp_path, capsys):
    db = tmp_path / "k.db"
    assert main(["keys", "create", "--store", str(db), "--namespace", "a/b", "--scope", "read,write", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key"].startswith(f"bm_{out['id']}_") and out["scopes"] == ["read", "write"]
    assert main(["keys", "create", "--store", str(db), "--namespace", "a", "--scope", "read"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip().startswith("bm_") and "shown once" in printed.err
    assert main(["keys", "create", "--store", str(db), "--namespace", "a", "--scope", "root"]) == 2
    assert "unknown scope(s): root" in capsys.readouterr().err
    assert main(["keys", "create", "--store", str(db), "--namespace", "../a", "--scope", "read"]) == 2
    assert "cannot be served" in capsys.readouterr().err


def test_an_older_store_file_gets_the_keys_table_in_place(tmp_path):
    db = tmp_path / "old.db"
    with Store(db) as store:
        store._db.execute("DROP TABLE IF EXISTS api_keys")
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT name FROM sqlite_master WHERE name='api_keys'").fetchone() is None
    raw.close()
    with Store(db) as store:
        keys = KeyStore(store)
        token, info = keys.create("ns", "read")
        assert keys.lookup(token) == info
        assert keys.lookup(token + "x") is None and keys.lookup(f"bm_{info.id}_guess") is None


def test_non_loopback_host_needs_a_key(tmp_path):
    db = tmp_path / "empty.db"
    argv = [sys.executable, "-m", "budgetmem", "serve", "--store", str(db), "--host", "0.0.0.0", "--port", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("budgetmem: error: refusing to listen on 0.0.0.0: the store has no API key")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_client_maps_statuses_back_to_library_errors():
    from budgetmem.client import _error

    def response(status, body, headers=None):
        return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "http://x/y"))

    busy = _error(response(429, {"error": {"type": "BusyError", "message": "full", "hint": None}}, {"Retry-After": "7"}))
    assert isinstance(busy, BusyError) and busy.retry_after == 7
    assert isinstance(_error(response(403, {"error": {"type": "ForbiddenError", "message": "no"}})), ForbiddenError)
    assert isinstance(_error(response(404, {"detail": "Not Found"})), NotFoundError)  # a proxy's answer
    assert type(_error(response(418, {"error": {"type": "os.system", "message": "?"}}))).__name__ == "ServiceError"


def test_the_cli_imports_fastapi_only_to_serve(tmp_path):
    code = (
        "import sys; from budgetmem.cli.main import main; "
        f"assert main(['keys', 'create', '--store', {str(tmp_path / 'k.db')!r}, '--namespace', 'a', '--json']) == 0; "
        f"assert main(['keys', 'list', '--store', {str(tmp_path / 'k.db')!r}]) == 0; "
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules, 'imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
