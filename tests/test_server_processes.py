"""``budgetmem serve --processes 2``: two real uvicorn worker processes on one port and one
store file. Adds from concurrent clients are all there once, every process's searches see
every add, a background job is found whichever process is asked, and /metrics counts the
requests of both processes. A job whose process died is reported interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

import fastapi  # noqa: F401  (the server extra; make test installs it: a missing one fails here)
from serving import ServerProcess, make_key

from budgetmem.server.jobs import JobBoard
from budgetmem.server.pool import WorkPool
from budgetmem.store import Store, open_store

pytestmark = pytest.mark.timeout(400)


def _children(pid: int) -> list[int]:
    """The worker processes: uvicorn's supervisor's children (its resource tracker aside)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_processes_share_one_store_jobs_and_metrics(tmp_path):
    store, config = tmp_path / "m.db", tmp_path / "c.toml"
    config.write_text('[encoder]\nname = "all-minilm-l6-v2"\n[server]\nasync_body = 3000\n', encoding="utf-8")
    key = make_key(store, "team", "read,write,metrics")
    h = {"Authorization": f"Bearer {key}"}
    server = ServerProcess(store, tmp_path / "s.log", "--processes", "2", config=config)
    try:
        deadline = time.monotonic() + 90  # /healthz answers once the first worker is up
        while len(workers := _children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        for _ in range(20):  # both workers listening, not only started
            httpx.get(f"{server.url}/healthz", timeout=30)
        before = {w: _cpu_s(w) for w in workers}
        ns = f"{server.url}/v1/namespaces/team"

        codes: Counter[int] = Counter()
        lock = threading.Lock()

        def client(i: int) -> None:
            with httpx.Client(headers=h, timeout=120) as http:
                for j in range(6):
                    sid = f"c{i}-{j}"
                    body = {"messages": [{"speaker": "Ana", "text": f"Parcel {_word(i, j)} waits at the front locker."}],
                            "session_id": sid}  # fmt: skip
                    r = http.post(f"{ns}/memories", json=body)
                    with lock:
                        codes[r.status_code] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == Counter({201: 48})

        with httpx.Client(headers=h, timeout=120) as http:
            listed, params = [], {"limit": 20}
            while True:
                page = http.get(f"{ns}/memories", params=params).json()
                listed += [m["session_id"] for m in page["memories"]]
                if not page["next_cursor"]:
                    break
                params["cursor"] = page["next_cursor"]
            assert sorted(listed) == sorted(f"c{i}-{j}" for i in range(8) for j in range(6))  # each once

            # Every search, whichever process answers it, sees every add (indexes follow the store).
            searches = 0

            def search(i: int) -> None:
                nonlocal searches
                with httpx.Client(headers=h, timeout=120) as c:
                    for j in range(6):
                        hits = c.post(f"{ns}/search", json={"query": f"where is parcel {_word(i, j)}?", "k": 1, "retriever": "bm25"})
                        assert hits.status_code == 200 and hits.json()["hits"][0]["session_id"] == f"c{i}-{j}"
                        with lock:
                            searches += 1

            threads = [threading.Thread(target=search, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert searches == 48
            assert all(_cpu_s(w) - before[w] > 0.2 for w in workers), "both processes answered"

            # A background add: its job is found by every process, until it is done.
            big = {"messages": [{"speaker": "Ana", "text": f"Line {n} of a long note about the garden."} for n in range(120)],
                   "session_id": "big"}  # fmt: skip
            r = http.post(f"{ns}/memories", json=big)
            assert r.status_code == 202
            job_url = f"{server.url}{r.headers['location']}"
            deadline = time.monotonic() + 120
            seen = Counter()
            while True:
                got = [httpx.get(job_url, headers=h, timeout=30) for _ in range(4)]
                assert [g.status_code for g in got] == [200] * 4
                seen.update(g.json()["status"] for g in got)
                if got[-1].json()["status"] == "done" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert got[-1].json()["status"] == "done" and got[-1].json()["result"]["session_id"] == "big"

            text = http.get(f"{server.url}/metrics").text
            assert _metric(text, "budgetmem_http_requests_total", route="/v1/namespaces/{ns}/search", status="200") == 48
            assert _metric(text, "budgetmem_http_requests_total", route="/v1/namespaces/{ns}/memories", method="POST",
                           status="201") == 48  # fmt: skip
    finally:
        server.stop()


def test_workers_leave_when_their_supervisor_is_killed(tmp_path):
    # kill -9 of `serve --processes 2`: its workers must not go on holding the port.
    config = tmp_path / "c.toml"
    config.write_text('[encoder]\nname = "all-minilm-l6-v2"\n', encoding="utf-8")
    server = ServerProcess(tmp_path / "m.db", tmp_path / "s.log", "--processes", "2", config=config)
    try:
        deadline = time.monotonic() + 90
        while len(workers := _children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        server.kill()
        deadline = time.monotonic() + 30
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _running(w)], "workers outlived their parent"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=5)
        # The port is free again: a new server takes it (ServerProcess waits for its /healthz
        # and raises if it exits instead).
        again = ServerProcess(tmp_path / "m.db", tmp_path / "again.log", config=config, port=server.port)
        try:
            assert again.proc.poll() is None, "the restarted server could not take the port"
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        finally:
            again.stop()
    finally:
        server.stop()


def _running(pid: int) -> bool:
    """Still a live process (a zombie waiting to be reaped has exited)."""
    return Path(f"/proc/{pid}").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_job_whose_process_is_gone_is_reported_interrupted(store_address):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pool = WorkPool("ingest", 1, 4)
    with open_store(store_address) as store:
        board = JobBoard(pool, store)
        done = board.submit("ns", lambda: {"session_id": "s"})
        for _ in range(100):
            if board.get(done.job_id).status == "done":
                break
            time.sleep(0.05)
        assert board.get(done.job_id).result == {"session_id": "s"}
        # A job taken by a process that has exited since (killed before it finished):
        board.store.side_write(
            "INSERT INTO service_jobs (job_id, namespace, status, created_at, pid, boot) VALUES (?, ?, ?, ?, ?, ?)",
            ("a" * 24, "ns", "running", time.time(), gone.pid, _boot()),
        )
        lost = board.get("a" * 24)
        assert lost.status == "failed" and lost.error["type"] == "InterruptedError"
    with open_store(store_address) as store:  # a restarted service reports the same
        again = JobBoard(pool, store)
        assert again.get("a" * 24).status == "failed" and again.get(done.job_id).status == "done"
    pool.shutdown()


def _word(i: int, j: int) -> str:
    """A word of its own per session, so BM25 finds exactly that one."""
    return "parcel" + "abcdefgh"[i] + "qrstuv"[j] + "zz"


def _boot() -> str:
    from budgetmem.server import jobs

    return jobs._BOOT


def test_a_job_of_another_host_is_left_to_that_host(tmp_path):
    """Servers on several machines share a PostgreSQL database: this one cannot tell whether
    a job another machine runs is still alive, so it reports the job as that machine left it."""
    pool = WorkPool("ingest", 1, 4)
    with Store(tmp_path / "m.db") as store:
        board = JobBoard(pool, store)
        board.store.side_write(
            "INSERT INTO service_jobs (job_id, namespace, status, created_at, pid, boot) VALUES (?, ?, ?, ?, ?, ?)",
            ("b" * 24, "ns", "running", time.time(), 1, "another-host/some-boot"),
        )
        assert board.get("b" * 24).status == "running"
    pool.shutdown()
