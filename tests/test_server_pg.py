"""Two ``budgetmem serve`` processes on one PostgreSQL database, behind no balancer but the
test's own round robin: concurrent adds and searches on both; every acknowledged add is
present exactly once, the same session sent to both at once is stored once, and a key made
once works on both."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

import fastapi  # noqa: F401  (the server extra; make test installs it: a missing one fails here)
from serving import ServerProcess, make_key

from budgetmem.client import Client

pytestmark = pytest.mark.timeout(400)

WRITERS = 6


def _body(sid: str) -> dict[str, object]:
    return {"messages": [{"speaker": "Ana", "text": f"Note {sid}: the parcel for {sid} is at the door."}], "session_id": sid}


def test_two_servers_share_one_database(tmp_path, pg_address):
    config = tmp_path / "c.toml"
    config.write_text('[encoder]\nname = "all-minilm-l6-v2"\n[chunking]\nmax_tokens = 64\n', encoding="utf-8")
    key = make_key(pg_address, "shared", "read,write")
    h = {"Authorization": f"Bearer {key}"}
    servers = [ServerProcess(pg_address, tmp_path / f"{n}.log", config=config) for n in ("a", "b")]
    try:
        urls = [f"{s.url}/v1/namespaces/shared/memories" for s in servers]
        for i, url in enumerate(urls):  # both load their encoder; the key works on both
            assert httpx.post(url, json=_body(f"warm{i}"), headers=h, timeout=120).status_code == 201

        acked: list[str] = []
        failed: list[tuple[str, int]] = []
        searches = Counter()
        lock, stop = threading.Lock(), threading.Event()

        def writer(i: int) -> None:
            with httpx.Client(headers=h, timeout=60) as http:
                j = 0
                while not stop.is_set():
                    sid = f"w{i}-{j}"
                    r = http.post(urls[(i + j) % 2], json=_body(sid))
                    with lock:
                        (acked.append(sid) if r.status_code == 201 else failed.append((sid, r.status_code)))
                    j += 1

        def searcher(i: int) -> None:
            c = Client(servers[i % 2].url, key, namespace="shared")
            while not stop.is_set():
                hits = c.search("where is the parcel?", k=3)
                with lock:
                    searches[i % 2] += 1 if hits else 0

        def same_session_to_both(sid: str, out: list[int]) -> None:
            gate = threading.Barrier(2)

            def post(url: str) -> None:
                gate.wait()
                r = httpx.post(url, json=_body(sid), headers=h, timeout=60)
                with lock:
                    out.append(r.status_code)

            both = [threading.Thread(target=post, args=(u,)) for u in urls]
            for t in both:
                t.start()
            for t in both:
                t.join()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        threads += [threading.Thread(target=searcher, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        races: dict[str, list[int]] = {f"race{n}": [] for n in range(5)}
        for sid, out in races.items():
            same_session_to_both(sid, out)
        deadline = time.monotonic() + 90
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(60)

        assert not failed, failed[:5]
        assert len(acked) >= 60 and searches[0] > 0 and searches[1] > 0, (len(acked), searches)
        # The same session sent to both servers at once: one stored it, the other found it stored.
        assert all(sorted(codes) == [200, 201] for codes in races.values()), races
        for s in servers:  # each server sees every add, whichever server took it
            stored = Counter(m["session_id"] for m in Client(s.url, key, namespace="shared").memories(page_size=50))
            assert set(stored) == {"warm0", "warm1", *acked, *races} and max(stored.values()) == 1
            assert Client(s.url, key, namespace="shared").stats()["sessions"] == len(stored)
    finally:
        for s in servers:
            s.stop()
