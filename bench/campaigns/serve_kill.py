"""kill -9 of ``budgetmem serve`` while clients add sessions over HTTP.

A trial starts a real server (``budgetmem serve`` on a free loopback port, a key made with
``budgetmem keys create --json``, the embedded MiniLM encoder), lets 8 clients add sessions
concurrently, each with its own session ids, and kills the server with SIGKILL at a random
moment: once every client has begun a request and they hold a random number of
acknowledgements (0 to 40), after a further random fraction of a second, so that most kills land with every client mid-request. It then
checks, on the file and through a restarted server:

- the SQLite file passes ``PRAGMA integrity_check``;
- every add answered 2xx is there exactly once: its session listed, with as many memories as
  the reply said it stored, none twice;
- nothing is there that no client sent;
- a client that got no answer retries with the same id and content and the session ends up
  stored once (a 201 when the kill beat the commit, a 200 "skipped" when it did not).

The server side of the same promise has a unit test (``tests/test_server_crash.py``); this is
that test repeated at random kill moments, with the figures kept. The server process is
forked from the campaigns' fork server (:class:`killing.Forks`), which has imported budgetmem,
torch and uvicorn once: a fresh process each start, killed like any other, without paying the
imports twice a trial.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from serving import free_port, make_key, wait_healthy

from campaigns import killing
from campaigns.common import Campaign, Trial

NAMESPACE = "crash"


@dataclass(frozen=True)
class ServePlan:
    trials: int = 20
    clients: int = 8
    max_acks: int = 40
    """The kill comes once the clients hold between 0 and this many acknowledgements..."""
    jitter_s: float = 0.3
    """...and a further 0 to this many seconds."""
    max_turns: int = 3
    """Each session has 1 to this many turns (so some sessions are several chunks)."""
    chunk_tokens: int = 32


@dataclass
class _Tally:
    """What the clients learnt from the server: the adds it acknowledged (with the memories each
    reply says it stored), those it never answered, and any other answer."""

    acked: dict[str, int] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    sent: int = 0
    """Requests begun: the kill waits until every client has begun one."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def session(sid: str) -> dict[str, Any]:
    """The body of session ``sid``: the same every time it is asked for (a retry resends it)."""
    turns = 1 + sum(map(ord, sid)) % 3
    return {"session_id": sid,
            "messages": [{"speaker": "Ana" if t % 2 == 0 else "Ben",
                          "text": f"Note {t} of {sid}: the parcel for {sid} waits at door {t}. " * (1 + t)}
                         for t in range(turns)]}  # fmt: skip


class ForkedServer:
    """``budgetmem --config C serve --store S --port P`` forked by the fork server; ``kill()`` is
    a kill -9, ``stop()`` a SIGTERM (uvicorn's graceful shutdown)."""

    def __init__(self, store: Path, config: Path, work: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.forks = killing.forks()
        argv = ["--config", str(config), "serve", "--store", str(store), "--port", str(self.port), "--log-level", "warning"]
        self.pid = self.forks.start(argv, work, killing.child_env(), work / f"{name}.out", work / f"{name}.log")
        self.status: int | None = None
        try:
            wait_healthy(self.url)
        except Exception:
            self.stop()
            raise

    def _end(self, sig: int) -> None:
        if self.status is not None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        self.status = self.forks.wait(60)
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            self.status = self.forks.wait(None)
        killing.reap_session(self.pid)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)


def _config(work: Path, plan: ServePlan) -> Path:
    cfg = work / "budgetmem.toml"
    cfg.write_text(f'[encoder]\nname = "all-minilm-l6-v2"\n[chunking]\nmax_tokens = {plan.chunk_tokens}\n', encoding="utf-8")
    return cfg


def _client(i: int, url: str, headers: dict[str, str], stop: threading.Event, tally: _Tally) -> None:
    with httpx.Client(headers=headers, timeout=30) as http:
        j = 0
        while not stop.is_set():
            sid = f"c{i}-{j}"
            with tally.lock:
                tally.sent += 1
            try:
                r = http.post(url, json=session(sid))
            except httpx.TransportError:
                with tally.lock:
                    tally.unanswered.append(sid)
                return  # the server is gone
            with tally.lock:
                if r.is_success:
                    tally.acked[sid] = int(r.json()["chunks_stored"])
                else:
                    tally.refused.append((sid, r.status_code))
            j += 1


def _stored(url: str, headers: dict[str, str]) -> Counter[tuple[str, int]]:
    """Every memory of the namespace by (session, position), as a reader of the API sees it."""
    from budgetmem.client import Client

    with Client(url, headers["Authorization"].split()[-1], namespace=NAMESPACE) as c:
        return Counter((m["session_id"], int(m["position"])) for m in c.memories(page_size=100))


def serve_trial(index: int, work: Path, rng: random.Random, plan: ServePlan) -> Trial:
    t = Trial(index)
    store, cfg = work / "memory.db", _config(work, plan)
    key = make_key(store, NAMESPACE, "read,write")
    headers = {"Authorization": f"Bearer {key}"}
    tally, stop = _Tally(), threading.Event()
    server = ForkedServer(store, cfg, work, "first")
    try:
        url = f"{server.url}/v1/namespaces/{NAMESPACE}/memories"
        warm = httpx.post(url, json=session("warm"), headers=headers, timeout=120)  # loads the encoder
        if warm.status_code != 201:
            raise RuntimeError(f"the first add answered {warm.status_code}: {warm.text[:200]}")
        tally.acked["warm"] = int(warm.json()["chunks_stored"])
        threads = [threading.Thread(target=_client, args=(i, url, headers, stop, tally)) for i in range(plan.clients)]
        for th in threads:
            th.start()
        target, jitter = rng.randint(0, plan.max_acks), rng.uniform(0.0, plan.jitter_s)
        started, deadline = time.monotonic(), time.monotonic() + 120
        while (len(tally.acked) - 1 < target or tally.sent < plan.clients) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(jitter)
        after = time.monotonic() - started
        server.kill()  # SIGKILL: no shutdown, no checkpoint, mid-request for most clients
        stop.set()
        for th in threads:
            th.join(60)
    finally:
        stop.set()
        server.stop()
    t.detail = {"kill_after_s": round(after, 2), "ack_target": target, "acked": len(tally.acked) - 1, "unanswered": len(tally.unanswered),
                "refused": len(tally.refused)}  # fmt: skip
    if tally.refused:
        t.failures.append(f"{len(tally.refused)} add(s) refused before the kill, first {tally.refused[0]}")
    ok = killing.integrity(store)
    if ok != "ok":
        t.failures.append(f"integrity_check after the kill: {ok}")

    again = ForkedServer(store, cfg, work, "second")
    try:
        stored = _stored(again.url, headers)
        per_session = Counter(sid for sid, _ in stored)
        t.lost = sum(max(0, n - per_session[sid]) for sid, n in tally.acked.items())
        t.duplicates = sum(n - 1 for n in stored.values() if n > 1)
        t.duplicates += sum(max(0, per_session[sid] - n) for sid, n in tally.acked.items())
        sent = set(tally.acked) | set(tally.unanswered)
        stray = set(per_session) - sent
        if stray:
            t.failures.append(f"{len(stray)} session(s) stored that no client sent")
        if t.lost:
            t.failures.append(f"{t.lost} memories of acknowledged adds missing after the restart")
        # A client that got no answer retries the same session: it must end up stored once.
        url = f"{again.url}/v1/namespaces/{NAMESPACE}/memories"
        committed = 0
        for sid in tally.unanswered:
            r = httpx.post(url, json=session(sid), headers=headers, timeout=120)
            want = 200 if per_session[sid] else 201
            committed += bool(per_session[sid])
            if r.status_code != want:
                t.failures.append(f"retry of unanswered {sid} answered {r.status_code}, expected {want}")
        t.detail["committed_unanswered"] = committed
        final = _stored(again.url, headers)
        final_sessions = Counter(sid for sid, _ in final)
        if set(final_sessions) != sent:
            t.failures.append(f"after the retries {len(final_sessions)} sessions stored, {len(sent)} sent")
        if max(final.values(), default=1) > 1:
            t.failures.append("after the retries some memory is stored twice")
        from budgetmem.client import Client

        with Client(again.url, key, namespace=NAMESPACE) as c:
            if c.stats()["sessions"] != len(final_sessions):
                t.failures.append(f"stats count {c.stats()['sessions']} sessions, the listing {len(final_sessions)}")
    finally:
        again.stop()
    ok = killing.integrity(store)
    if ok != "ok":
        t.failures.append(f"integrity_check after the restart: {ok}")
    return t


def make_serve(plan: ServePlan | None = None) -> Campaign:
    plan = plan or ServePlan()
    return Campaign(
        name="kill_serve", title="kill -9 of serve under concurrent adds", trials=plan.trials,
        run=lambda i, work, rng, _: serve_trial(i, work, rng, plan),
        what=f"kill -9 of `budgetmem serve` (SQLite, MiniLM) while {plan.clients} clients add sessions over HTTP, "
        f"after 0 to {plan.max_acks} acknowledged adds and 0 to {plan.jitter_s} s more; after a restart every add answered 2xx is there exactly once, nothing "
        "unsent is there, and retrying the unanswered ones stores each once.",
    )  # fmt: skip


CAMPAIGNS: list[Campaign] = [make_serve()]
