"""kill -9 of the service while 8 clients add sessions: after a restart every add that was
answered 2xx is there, nothing is there twice, and retrying the unanswered ones (same
session id, same content) stores each exactly once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter

import httpx
import pytest

import fastapi  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)
from serving import ServerProcess, make_key

from budgetmem.client import Client

pytestmark = pytest.mark.timeout(300)

THREADS = 8


def _body(sid: str) -> dict[str, object]:
    return {"messages": [{"speaker": "Ana", "text": f"Note {sid}: the parcel for {sid} is at the door."}], "session_id": sid}


def test_kill_9_loses_no_acknowledged_add_and_duplicates_none(tmp_path):
    store, config = tmp_path / "m.db", tmp_path / "c.toml"
    config.write_text('[encoder]\nname = "all-minilm-l6-v2"\n[chunking]\nmax_tokens = 64\n', encoding="utf-8")
    key = make_key(store, "crash", "read,write")
    h = {"Authorization": f"Bearer {key}"}
    server = ServerProcess(store, tmp_path / "a.log", config=config)
    try:
        url = f"{server.url}/v1/namespaces/crash/memories"
        assert httpx.post(url, json=_body("warm"), headers=h, timeout=60).status_code == 201  # encoder loaded

        acked: list[str] = []
        unanswered: list[str] = []
        lock, stop = threading.Lock(), threading.Event()

        def client(i: int) -> None:
            with httpx.Client(headers=h, timeout=10) as http:
                j = 0
                while not stop.is_set():
                    sid = f"t{i}-{j}"
                    try:
                        r = http.post(url, json=_body(sid))
                    except httpx.TransportError:
                        with lock:
                            unanswered.append(sid)
                        return  # the server is gone
                    with lock:
                        (acked if r.is_success else unanswered).append(sid)
                    j += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()  # SIGKILL: no shutdown, no checkpoint, mid-request for most clients
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        server.stop()
    assert len(acked) >= 40 and unanswered, (len(acked), unanswered)
    print(f"\n{len(acked)} adds acknowledged, {len(unanswered)} unanswered at the kill")

    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    again = ServerProcess(store, tmp_path / "b.log", config=config)
    try:
        c = Client(again.url, key, namespace="crash")
        stored = Counter(m["session_id"] for m in c.memories(page_size=25))
        assert all(stored[sid] == 1 for sid in acked), [sid for sid in acked if stored[sid] != 1]
        assert max(stored.values()) == 1
        # A client that got no answer retries with the same id and content: stored once.
        for sid in unanswered:
            r = httpx.post(f"{again.url}/v1/namespaces/crash/memories", json=_body(sid), headers=h, timeout=60)
            assert r.status_code == (200 if stored[sid] else 201), (sid, r.text)
        for sid in acked[:5]:
            r = httpx.post(f"{again.url}/v1/namespaces/crash/memories", json=_body(sid), headers=h, timeout=60)
            assert r.status_code == 200 and r.json()["sessions_skipped"] == 1
        final = Counter(m["session_id"] for m in c.memories(page_size=25))
        assert set(final) == {"warm", *acked, *unanswered} and max(final.values()) == 1
        assert c.stats()["sessions"] == len(final)
    finally:
        again.stop()
