"""The service under load, with uvicorn in a thread so the app can hold a slow scripted LLM:
a full query queue answers 429 with Retry-After, a request past the time limit 504, and
writes (a long ingest, an open write transaction) never block searches."""

from __future__ import annotations

import dataclasses
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import fastapi  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)
from fakes import ScriptedFakeLLM
from serving import ThreadServer

from budgetmem.client import Client
from budgetmem.errors import BusyError
from budgetmem.server import create_app
from budgetmem.settings import Settings

pytestmark = pytest.mark.timeout(300)

SLOW_S = 3.0


def _settings(tmp_path, **server) -> Settings:
    s = Settings().replace(
        encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, pipeline__answer_llm="fake:answer",
        pipeline__module_llm="fake:module", pipeline__ladder=("fake:s", "fake:m", "fake:l"),
        **{f"server__{k}": v for k, v in server.items()},
    )  # fmt: skip
    return dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))


def _slow(prompt: str) -> str:
    time.sleep(SLOW_S)
    return "slowly"


@pytest.fixture
def busy_service(tmp_path, minilm):
    """One query worker, one waiting place, 1.5 s per request; the answer LLM takes 3 s."""
    minilm.load()  # not inside the 1.5 s of the first add
    llms = {n: ScriptedFakeLLM(n, _slow) for n in ("fake:answer", "fake:module", "fake:s", "fake:m", "fake:l")}
    app = create_app(tmp_path / "m.db", _settings(tmp_path, workers=1, queue=1, timeout_s=1.5), llms=llms, encoder=minilm)
    server = ThreadServer(app)
    key, _ = app.state.service.keys.create("n", "read,write,query,metrics")
    Client(server.url, key, namespace="n").add_session([("Ana", "The boat leaves at noon.")], session_id="s1")
    yield server, app.state.service, key
    server.stop()


def test_full_queue_answers_429_and_slow_requests_504(busy_service):
    server, service, key = busy_service
    url, h = f"{server.url}/v1/namespaces/n/query", {"Authorization": f"Bearer {key}"}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, url, json={"question": "When does the boat leave?"}, headers=h, timeout=30)
        deadline = time.monotonic() + 10
        while service.queries.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = pool.submit(httpx.post, url, json={"question": "What leaves at noon?"}, headers=h, timeout=30)
        while service.queries.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.queries.in_flight == 2  # one running, one waiting: the pool is full

        refused = httpx.post(url, json={"question": "Is the boat late?"}, headers=h, timeout=30)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["type"] == "BusyError"
        with pytest.raises(BusyError) as busy:
            Client(server.url, key, namespace="n").query("Is the boat late?")
        assert busy.value.retry_after >= 1

        for answer in (first.result(), second.result()):
            assert answer.status_code == 504
            assert answer.json()["error"]["type"] == "DeadlineError" and "1.5 s" in answer.json()["error"]["message"]
    # The request stopped waiting, the work did not: its money is still counted once it ends.
    deadline = time.monotonic() + 2 * SLOW_S + 5
    while service.queries.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.queries.in_flight == 0
    text = httpx.get(f"{server.url}/metrics", headers=h).text
    assert 'budgetmem_queries_total{namespace="n"} 1.0' in text  # the queued one was cancelled unstarted
    assert 'status="429"' in text and 'status="504"' in text
    # Searches do not queue behind queries: their pool is another.
    assert httpx.post(f"{server.url}/v1/namespaces/n/search", json={"query": "boat"}, headers=h).status_code == 200


@pytest.fixture
def service(tmp_path, minilm):
    app = create_app(tmp_path / "m.db", _settings(tmp_path, async_body=4096, max_body=1_000_000), encoder=minilm)
    server = ThreadServer(app)
    key, _ = app.state.service.keys.create("n", "read,write")
    yield server, app.state.service, key, tmp_path / "m.db"
    server.stop()


def test_an_open_write_transaction_does_not_block_searches(service):
    server, _, key, db = service
    c = Client(server.url, key, namespace="n", timeout=10)
    c.add_session([("Ana", "The boat leaves at noon.")], session_id="s1")
    c.search("boat")  # indexes built
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process's long ingest, at its write
    writer.execute("INSERT INTO meta VALUES ('held', 'by a writer')")
    try:
        started = time.perf_counter()
        assert c.search("When does the boat leave?")[0]["session_id"] == "s1"
        assert [m["session_id"] for m in c.memories()] == ["s1"] and c.stats()["stored_chunks"] == 1
        assert time.perf_counter() - started < 2.0  # WAL readers never wait for the writer
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_long_ingest_does_not_stall_searches(service):
    server, svc, key, _ = service
    c = Client(server.url, key, namespace="n", timeout=60)
    c.add_session([("Ana", "The boat leaves at noon.")], session_id="s1")
    c.search("boat", retriever="dense")  # the encoder is loaded, the indexes built
    quiet = []
    for _ in range(5):
        t = time.perf_counter()
        c.search("When does the boat leave?", retriever="dense")
        quiet.append(time.perf_counter() - t)

    text = "\n\n".join(f"Crane {i} at the harbour lifts {i * 7} tonnes of timber every morning." for i in range(1500))
    job = c.add_document(text, document_id="cranes", wait=False)
    assert job["status"] in ("queued", "running")
    during: list[float] = []
    started = time.perf_counter()
    while c.job(job["job_id"])["status"] in ("queued", "running"):
        t = time.perf_counter()
        assert c.search("When does the boat leave?", retriever="dense")[0]["session_id"] == "s1"
        during.append(time.perf_counter() - t)
    ingest_s = time.perf_counter() - started
    assert c.job(job["job_id"])["status"] == "done"
    assert len(during) >= 3, (ingest_s, during)  # searches kept being answered while it ran
    print(
        f"\ningest {ingest_s:.1f} s; search quiet median {statistics.median(quiet) * 1000:.0f} ms, during ingest "
        f"median {statistics.median(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms over {len(during)}"
    )
    assert max(during) < max(0.3 * ingest_s, 2.0)  # one lock for the whole encode: ~0.95 * ingest_s


def test_the_guard_counts_requests_it_refuses_itself(service):
    server, svc, key, _ = service
    r = httpx.post(
        f"{server.url}/v1/namespaces/n/memories", content=b"x" * (svc.settings.server.max_body + 1),
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert r.status_code == 413
    counter = svc.metrics.requests.labels("<unrouted>", "POST", "413")
    deadline = time.monotonic() + 5  # counted just after the reply went out
    while counter._value.get() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counter._value.get() == 1
