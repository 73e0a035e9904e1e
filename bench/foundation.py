"""Foundation benchmark: ingest throughput, retrieval latency at scale, LoCoMo evidence recall.

    .venv/bin/python bench/foundation.py [--quick] [--out docs/BENCHMARKS.md]

Writes the ``foundation`` section of the markdown file (other sections are kept) and the
raw numbers to ``bench/results/foundation.json``; progress goes to stderr.
``--quick`` measures latency at 10k and 100k chunks only.
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # only for the 1-thread numpy diagnostic row
    threadpool_limits = None

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _evidence import CATEGORIES, load_questions, recall  # noqa: E402
from _report import CpuMeter, latency_stats, log, machine_info, peak_rss_mb, rss_mb, save_json, table, write_section  # noqa: E402
from _synthetic import ZipfTexts, unit_vectors  # noqa: E402

from budgetmem.encoder import Encoder  # noqa: E402
from budgetmem.ingest.ingest import ingest_histories  # noqa: E402
from budgetmem.ingest.load import load_histories  # noqa: E402
from budgetmem.retrieval import fusion  # noqa: E402
from budgetmem.retrieval.bm25 import BM25Index  # noqa: E402
from budgetmem.retrieval.dense import DenseIndex  # noqa: E402
from budgetmem.retrieval.searcher import Searcher  # noqa: E402
from budgetmem.settings import EncoderSettings, RetrievalSettings  # noqa: E402
from budgetmem.store import Store  # noqa: E402

LOCOMO = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
ENCODERS = ("all-mpnet-base-v2", "all-minilm-l6-v2")
BASELINE_ENCODER = ENCODERS[0]
CHUNK_TOKENS = 256
INGEST_CONVERSATIONS = 2
TOP_K = 5
DEPTH = 100  # candidates each retriever ranks before hybrid fusion (RetrievalSettings.candidates)
DIM = 768
SEED = 20240601
RETRIEVERS = ("dense", "bm25", "hybrid-rrf", "hybrid-weighted")


# --------------------------------------------------------------------------- 1. ingest
def bench_ingest(histories: list[Any]) -> tuple[dict[str, Any], dict[str, Encoder]]:
    """Ingest the first conversations with each encoder into a fresh store; returns warm encoders."""
    part = histories[:INGEST_CONVERSATIONS]
    out: dict[str, Any] = {"conversations": [h.name for h in part], "chunk_tokens": CHUNK_TOKENS, "runs": {}}
    encoders: dict[str, Encoder] = {}
    for name in ENCODERS:
        enc = Encoder(EncoderSettings(name=name))
        t = time.perf_counter()
        enc.encode(["warm-up: load the network and run one forward pass"])
        load_s = time.perf_counter() - t
        log(f"ingest: {name} loaded + first encode in {load_s:.2f}s")
        with tempfile.TemporaryDirectory(prefix="bm-bench-") as tmp, Store(Path(tmp) / "ingest.db") as store:
            meter = CpuMeter()
            t = time.perf_counter()
            rep = ingest_histories(store, "bench", part, enc, CHUNK_TOKENS)
            wall = time.perf_counter() - t
            load = meter.stop()
        chunks = rep.chunks_added
        tokens = sum(n.tokens_added for n in rep.namespaces)
        out["runs"][name] = {
            "dim": enc.dim,
            "load_and_first_encode_s": load_s,
            "chunks": chunks,
            "tokens": tokens,
            "seconds": wall,
            "chunks_per_s": chunks / wall,
            "tokens_per_s": tokens / wall,
            "machine_load": load,
        }
        encoders[name] = enc
        log(f"ingest: {name} {chunks} chunks / {tokens} tokens in {wall:.1f}s ({chunks / wall:.2f} chunks/s)")
    base = out["runs"][BASELINE_ENCODER]["chunks_per_s"]
    for r in out["runs"].values():
        r["vs_baseline"] = r["chunks_per_s"] / base
    return out, encoders


def bench_query_encoding(encoders: dict[str, Encoder], questions: list[str], n: int = 100) -> dict[str, Any]:
    out: dict[str, Any] = {}
    qs = questions[:n]
    for name, enc in encoders.items():
        for q in qs[:3]:
            enc.encode_query(q)
        meter = CpuMeter()
        times = []
        for q in qs:
            t = time.perf_counter()
            enc.encode_query(q)
            times.append(time.perf_counter() - t)
        out[name] = latency_stats(times)
        out[name]["machine_load"] = meter.stop()
        log(f"query encoding: {name} p50 {out[name]['p50_ms']:.1f} ms")
    return out


# --------------------------------------------------------------------------- 3. recall
def bench_recall(histories: list[Any], samples: list[dict[str, Any]], encoders: dict[str, Encoder]) -> dict[str, Any]:
    turns = {h.name: {t.dia_id for s in h.sessions for t in s.turns if t.dia_id} for h in histories}
    questions, stats = load_questions(samples, turns)
    out: dict[str, Any] = {
        "conversations": [h.name for h in histories],
        "chunk_tokens": CHUNK_TOKENS,
        "k": TOP_K,
        "questions_scored": len(questions),
        "questions_per_category": {CATEGORIES[c]: sum(q.category == c for q in questions) for c in CATEGORIES},
        "evidence": {
            "questions_cat_1_4": stats.questions_cat_1_4,
            "questions_without_evidence": stats.no_evidence,
            "questions_without_matchable_evidence": stats.questions_all_unmatched,
            "evidence_strings": stats.ids_raw,
            "repaired": stats.ids_repaired,
            "unmatched": stats.ids_unmatched,
        },
        "encoders": {},
    }
    log(f"recall: {len(questions)} questions; unmatched evidence ids: {stats.ids_unmatched}")
    for name, enc in encoders.items():
        with tempfile.TemporaryDirectory(prefix="bm-bench-") as tmp, Store(Path(tmp) / "locomo.db") as store:
            meter = CpuMeter()
            t = time.perf_counter()
            rep = ingest_histories(store, "locomo", histories, enc, CHUNK_TOKENS)
            ingest_s = time.perf_counter() - t
            ingest_load = meter.stop()
            meter = CpuMeter()
            ns_of = {n.history: n.namespace for n in rep.namespaces}
            log(f"recall: {name} ingested {rep.chunks_added} chunks in {ingest_s:.1f}s")
            rrf = Searcher(store, enc, RetrievalSettings(fusion="rrf", top_k=TOP_K, candidates=DEPTH))
            wtd = Searcher(store, enc, RetrievalSettings(fusion="weighted", dense_weight=0.7, top_k=TOP_K, candidates=DEPTH))
            calls = {
                "dense": lambda ns, q: rrf.search(ns, q, k=TOP_K, retriever="dense"),
                "bm25": lambda ns, q: rrf.search(ns, q, k=TOP_K, retriever="bm25"),
                "hybrid-rrf": lambda ns, q: rrf.search(ns, q, k=TOP_K, retriever="hybrid"),
                "hybrid-weighted": lambda ns, q: wtd.search(ns, q, k=TOP_K, retriever="hybrid"),
            }
            for ns in ns_of.values():  # build every index before timing queries
                for call in calls.values():
                    call(ns, "warm up")
            per: dict[str, list[tuple[int, float]]] = {r: [] for r in RETRIEVERS}
            times: dict[str, list[float]] = {r: [] for r in RETRIEVERS}
            for i, q in enumerate(questions):
                ns = ns_of[q.sample_id]
                for r, call in calls.items():
                    t = time.perf_counter()
                    hits = call(ns, q.question)
                    times[r].append(time.perf_counter() - t)
                    got = {d for h in hits for d in h.chunk.dia_ids}
                    per[r].append((q.category, recall(q.evidence, got)))
                if (i + 1) % 200 == 0:
                    log(f"recall: {name} {i + 1}/{len(questions)} questions")
        res: dict[str, Any] = {
            "chunks": rep.chunks_added,
            "tokens": sum(n.tokens_added for n in rep.namespaces),
            "ingest_s": ingest_s,
            "ingest_load": ingest_load,
            "search_load": meter.stop(),
            "retrievers": {},
        }
        for r in RETRIEVERS:
            vals = np.array([v for _, v in per[r]])
            cats = np.array([c for c, _ in per[r]])
            res["retrievers"][r] = {
                "recall": float(vals.mean()),
                "all_found": float((vals >= 1.0 - 1e-9).mean()),
                "per_category": {
                    CATEGORIES[c]: {
                        "n": int((cats == c).sum()),
                        "recall": float(vals[cats == c].mean()),
                        "all_found": float((vals[cats == c] >= 1.0 - 1e-9).mean()),
                    }
                    for c in CATEGORIES
                    if (cats == c).any()
                },
                "search_latency": latency_stats(times[r]),
            }
        base = res["retrievers"]["dense"]
        for r in RETRIEVERS:
            x = res["retrievers"][r]
            x["recall_vs_dense"] = x["recall"] / base["recall"] if base["recall"] else float("nan")
            for c, v in x["per_category"].items():
                b = base["per_category"][c]["recall"]
                v["recall_vs_dense"] = v["recall"] / b if b else float("nan")
        out["encoders"][name] = res
        log("recall: " + name + " " + ", ".join(f"{r} {res['retrievers'][r]['recall']:.3f}" for r in RETRIEVERS))
    return out


# --------------------------------------------------------------------------- 2. latency
def _time_queries(fn: Any, queries: list[Any], warmup: int = 5) -> list[float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return times


def _numpy_topk(matrix: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ q
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def _reset_peak() -> None:
    try:  # Linux: "5" resets VmHWM, so each size reports its own peak
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def bench_latency(sizes: list[int], n_queries: int, min_queries_1m: int, slow_budget_s: float) -> dict[str, Any]:
    log("latency: building the Zipf vocabulary")
    zipf = ZipfTexts(vocab_size=50_000, s=1.0, seed=SEED)
    out: dict[str, Any] = {
        "dim": DIM,
        "k": TOP_K,
        "hybrid_depth": DEPTH,
        "vocab_size": len(zipf.vocab),
        "zipf_s": zipf.s,
        "words_per_text": [zipf.min_words, zipf.max_words],
        "query_words": 6,
        "sizes": {},
    }
    for n in sizes:
        gc.collect()
        _reset_peak()
        r: dict[str, Any] = {"rss_before_mb": rss_mb()}
        meter = CpuMeter()
        log(f"latency {n:,}: generating {n:,} texts")
        t = time.perf_counter()
        texts = list(zipf.texts(n, seed=SEED + n))
        r["texts_gen_s"] = time.perf_counter() - t
        r["texts_mean_chars"] = float(np.mean([len(x) for x in texts[:10_000]]))
        log(f"latency {n:,}: texts in {r['texts_gen_s']:.1f}s; building BM25Index")
        t = time.perf_counter()
        bm25 = BM25Index(texts)
        r["bm25_build_s"] = time.perf_counter() - t
        r["bm25_build_peak_rss_mb"] = peak_rss_mb()
        del texts
        gc.collect()
        segs = bm25._segments  # noqa: SLF001 - only to report the index size
        r["bm25_index_mb"] = sum(s.rows.nbytes + s.tf.nbytes + s.terms.nbytes + s.indptr.nbytes for s in segs) / 2**20
        log(f"latency {n:,}: BM25 built in {r['bm25_build_s']:.1f}s (peak RSS {r['bm25_build_peak_rss_mb']:.0f} MiB)")

        text_q = zipf.queries(n_queries, seed=SEED + 1)
        r["bm25"] = latency_stats(_time_queries(lambda q: bm25.search(q, TOP_K), text_q))
        log(f"latency {n:,}: bm25 p50 {r['bm25']['p50_ms']:.2f} ms")

        log(f"latency {n:,}: generating {n:,} x {DIM} unit vectors")
        t = time.perf_counter()
        matrix = unit_vectors(n, DIM, seed=SEED + n)
        r["vectors_gen_s"] = time.perf_counter() - t
        vec_q = list(unit_vectors(n_queries, DIM, seed=SEED + 2))

        t = time.perf_counter()
        dense = DenseIndex(matrix)
        r["dense_build_s"] = time.perf_counter() - t

        # At 1M a flat scan takes a while: keep >= min_queries_1m but fit the time budget
        # (five flat-scan paths below: numpy x2, faiss x2, hybrid).
        probe = _time_queries(lambda q: dense.search(q, TOP_K), vec_q[:5], warmup=1)
        n_slow = n_queries
        if float(np.median(probe)) * n_queries * 5 > slow_budget_s:
            n_slow = max(min_queries_1m, int(slow_budget_s / (5 * float(np.median(probe)))))
            n_slow = min(n_slow, n_queries)
        r["queries_slow_paths"] = n_slow

        r["numpy"] = latency_stats(_time_queries(lambda q: _numpy_topk(matrix, q, TOP_K), vec_q[:n_slow]))
        log(f"latency {n:,}: numpy p50 {r['numpy']['p50_ms']:.2f} ms")
        if threadpool_limits is not None:
            with threadpool_limits(limits=1, user_api="blas"):
                r["numpy_1thread"] = latency_stats(_time_queries(lambda q: _numpy_topk(matrix, q, TOP_K), vec_q[:n_slow]))
            log(f"latency {n:,}: numpy (1 BLAS thread) p50 {r['numpy_1thread']['p50_ms']:.2f} ms")
        del matrix
        gc.collect()
        r["dense"] = latency_stats(_time_queries(lambda q: dense.search(q, TOP_K), vec_q[:n_slow]))
        r["dense_vs_numpy_p50"] = r["dense"]["p50_ms"] / r["numpy"]["p50_ms"]
        log(f"latency {n:,}: faiss p50 {r['dense']['p50_ms']:.2f} ms ({r['dense_vs_numpy_p50']:.2f}x numpy)")
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            r["dense_1thread"] = latency_stats(_time_queries(lambda q: dense.search(q, TOP_K), vec_q[:n_slow]))
        finally:
            faiss.omp_set_num_threads(threads)
        log(f"latency {n:,}: faiss (1 OpenMP thread) p50 {r['dense_1thread']['p50_ms']:.2f} ms")

        def hybrid(i: int) -> list[int]:
            # What Searcher.search does for retriever="hybrid", fusion="rrf", minus query encoding and chunk fetch.
            rankings = [dense.search(vec_q[i], DEPTH), bm25.search(text_q[i], DEPTH)]
            fused = fusion.rrf(rankings, k=60)
            return sorted(fused, key=lambda row: (-fused[row], row))[:TOP_K]

        r["hybrid"] = latency_stats(_time_queries(hybrid, list(range(n_slow))))
        log(f"latency {n:,}: hybrid p50 {r['hybrid']['p50_ms']:.2f} ms")
        r["peak_rss_mb"] = peak_rss_mb()
        r["machine_load"] = meter.stop()
        out["sizes"][str(n)] = r
        del dense, bm25
        gc.collect()
    return out


# --------------------------------------------------------------------------- markdown
def _f(x: float, nd: int = 2) -> str:
    return f"{x:,.{nd}f}"


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    L: list[str] = ["## Foundation: ingest, retrieval latency, evidence recall", ""]
    L += [
        f"- Date: {res['date']} (start of the run)",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}",
        f"- Software: Python {m['python']}, torch {m['torch']} ({m.get('torch_threads', '?')} threads), "
        f"faiss {m['faiss']} ({m.get('faiss_omp_threads', '?')} OpenMP threads), bm25s {m['bm25s']}, "
        f"numpy {m['numpy']}, sentence-transformers {m['sentence_transformers']}",
        f"- Command: `{res['command']}`",
        f"- Total wall time: {res['total_s'] / 60:.1f} min",
        "",
        "Notes: CPU-only, on a 2-core machine that was also running other work (test suites) during the run,",
        "so timings are noisy; compare ratios within this table rather than absolute numbers across runs.",
        "\"Other load\" columns give the CPU (in cores, out of "
        f"{m['cores']}) that other processes used while that row was measured, from /proc/stat; over the whole run "
        f"it averaged {res['machine_load']['others_cores']:.2f} cores, and the hypervisor stole "
        f"{res['machine_load']['steal_pct']:.1f}% of CPU time.",
        "Latencies are single-query wall times (`time.perf_counter`) in one process, after a few warm-up queries.",
        "",
    ]
    if res["machine_load"]["others_cores"] > 0.5:
        L += [
            "With another process holding about one core, code that runs two threads (torch, faiss, OpenBLAS) waits",
            "for a descheduled thread at every synchronisation point: many two-thread latencies below come out as",
            "multiples of 4 ms (the scheduler tick), and the one-thread diagnostic rows show the cost without that wait.",
            "",
        ]
    if "ingest" in res:
        ing = res["ingest"]
        L += [
            "### Ingest throughput",
            "",
            f"LoCoMo dev conversations {', '.join(ing['conversations'])}, chunks of {ing['chunk_tokens']} encoder tokens, "
            "`ingest_histories` into a fresh temporary store (chunking + embedding + one SQLite transaction). "
            "Each encoder is a fresh `Encoder`, loaded and warmed by one encode before the timed ingest. "
            "Chunks are cut by each encoder's own tokenizer, so chunk and token counts may differ between encoders.",
            "",
        ]
        rows = []
        for name, r in ing["runs"].items():
            rows.append([
                name, r["dim"], _f(r["load_and_first_encode_s"]), r["chunks"], f"{r['tokens']:,}", _f(r["seconds"], 1),
                _f(r["chunks_per_s"]), _f(r["tokens_per_s"], 0), _f(r["vs_baseline"]) + "x",
                _f(r["machine_load"]["others_cores"]),
            ])
        L += [table(["encoder", "dim", "load + 1st encode (s)", "chunks", "tokens", "ingest (s)", "chunks/s", "tokens/s",
                     "vs MPNet", "other load (cores)"], rows), ""]
        if "recall" in res:
            cross = [
                f"{n} {e['chunks'] / e['ingest_s']:.2f} chunks/s ({e['chunks']} chunks in {e['ingest_s']:.0f}s, "
                f"other load {e['ingest_load']['others_cores']:.2f} cores)"
                for n, e in res["recall"]["encoders"].items()
            ]
            L += ["Cross-check, the recall section's ingest of all dev conversations: " + "; ".join(cross) + ".", ""]
    if "query_encoding" in res:
        L += ["### Query encoding", "", "One LoCoMo question through `Encoder.encode_query` (warm model).", ""]
        rows = [[n, s["n"], _f(s["p50_ms"]), _f(s["p99_ms"]), _f(s["machine_load"]["others_cores"])]
                for n, s in res["query_encoding"].items()]
        L += [table(["encoder", "queries", "p50 (ms)", "p99 (ms)", "other load (cores)"], rows), ""]
    if "latency" in res:
        lat = res["latency"]
        L += [
            "### Query latency at scale (synthetic)",
            "",
            f"Synthetic, seeded corpora. Dense: random {lat['dim']}-d unit vectors, `DenseIndex` (faiss `IndexFlatIP`, exact). "
            f"BM25: texts of {lat['words_per_text'][0]}-{lat['words_per_text'][1]} words drawn from a Zipf(s={lat['zipf_s']}) "
            f"vocabulary of {lat['vocab_size']:,} invented words (no stop words, one stem each), `BM25Index` built by its "
            f"public constructor; queries of {lat['query_words']} Zipf-drawn words. Final k={lat['k']}; hybrid = dense and BM25 "
            f"each to depth {lat['hybrid_depth']}, then RRF (k=60) and top {lat['k']}, as `Searcher` does "
            "(query encoding and the chunk fetch from SQLite are not included; see the query-encoding table). "
            "numpy baseline: `matrix @ q` + `argpartition` on the same matrix.",
            "",
        ]
        rows = []
        for n, r in lat["sizes"].items():
            n_i = int(n)
            rows.append([f"{n_i:,}", "dense (faiss flat)", _f(r["dense_build_s"]), r["dense"]["n"], _f(r["dense"]["p50_ms"]), _f(r["dense"]["p99_ms"])])
            rows.append([f"{n_i:,}", "dense (numpy baseline)", "-", r["numpy"]["n"], _f(r["numpy"]["p50_ms"]), _f(r["numpy"]["p99_ms"])])
            for key, label in (("dense_1thread", "dense (faiss flat, 1 OpenMP thread)*"), ("numpy_1thread", "dense (numpy, 1 BLAS thread)*")):
                if key in r:
                    rows.append([f"{n_i:,}", label, "-", r[key]["n"], _f(r[key]["p50_ms"]), _f(r[key]["p99_ms"])])
            rows.append([f"{n_i:,}", "bm25", _f(r["bm25_build_s"]), r["bm25"]["n"], _f(r["bm25"]["p50_ms"]), _f(r["bm25"]["p99_ms"])])
            rows.append([f"{n_i:,}", "hybrid (rrf)", "-", r["hybrid"]["n"], _f(r["hybrid"]["p50_ms"]), _f(r["hybrid"]["p99_ms"])])
        L += [table(["chunks", "retriever", "index build (s)", "queries", "p50 (ms)", "p99 (ms)"], rows), ""]
        L += ["\\* Diagnostic rows: the same searches with faiss (or numpy's BLAS) limited to one thread. The default "
              "rows use every core (faiss and OpenBLAS start one thread per core).", ""]
        rows = [
            [f"{int(n):,}", _f(r["dense"]["p50_ms"]), _f(r["numpy"]["p50_ms"]), _f(r["dense_vs_numpy_p50"]) + "x",
             _f(r["dense"]["p99_ms"] / r["numpy"]["p99_ms"]) + "x"]
            for n, r in lat["sizes"].items()
        ]
        L += ["faiss vs the numpy baseline (ratio < 1: faiss faster):", "",
              table(["chunks", "faiss p50 (ms)", "numpy p50 (ms)", "faiss/numpy p50", "faiss/numpy p99"], rows), ""]
        rows = [
            [f"{int(n):,}", _f(r["texts_gen_s"], 1), _f(r["vectors_gen_s"], 1), _f(r["bm25_index_mb"], 0),
             _f(r["bm25_build_peak_rss_mb"] / 1024, 1), _f(r["peak_rss_mb"] / 1024, 1),
             _f(r["machine_load"]["wall_s"] / 60, 1), _f(r["machine_load"]["others_cores"])]
            for n, r in lat["sizes"].items()
        ]
        L += ["Corpus generation and memory (process RSS; the dense matrix is float32, n x 768 x 4 bytes, held by faiss):", "",
              table(["chunks", "texts gen (s)", "vectors gen (s)", "BM25 index (MiB)", "peak RSS during BM25 build (GiB)",
                                "peak RSS for the size (GiB)", "size total (min)", "other load (cores)"], rows), ""]
        if lat.get("skipped"):
            L += [f"Not measured in this run: {lat['skipped']}.", ""]
    if "recall" in res:
        rc = res["recall"]
        ev = rc["evidence"]
        per_cat = ", ".join(f"{v} {k}" for k, v in rc["questions_per_category"].items())
        L += [
            "### Evidence recall@5 on LoCoMo dev",
            "",
            f"All {len(rc['conversations'])} dev conversations, each in its own namespace, chunks of {rc['chunk_tokens']} tokens. "
            f"Questions of categories 1-4 with evidence: {rc['questions_scored']} ({per_cat}). "
            f"Recall of a question = fraction of its evidence dia_ids found in the dia_ids of the {rc['k']} retrieved chunks; "
            "\"all found\" = share of questions with recall 1. Retrieval through `Searcher` "
            "(hybrid-rrf: RRF k=60; hybrid-weighted: min-max fusion, dense weight 0.7; depth 100).",
            "",
            f"Evidence ids: {ev['evidence_strings']} strings over {ev['questions_cat_1_4']} category 1-4 questions; "
            f"{ev['questions_without_evidence']} questions have an empty evidence list (not scored); "
            f"{len(ev['repaired'])} malformed strings were repaired ({'; '.join(ev['repaired']) or 'none'}); "
            f"**{len(ev['unmatched'])} ids match no turn at all** ({'; '.join(ev['unmatched']) or 'none'}) and are left out "
            f"of their question's denominator; {ev['questions_without_matchable_evidence']} questions were left with no matchable evidence.",
            "",
        ]
        for name, e in rc["encoders"].items():
            L += [f"**{name}** ({e['chunks']} chunks, ingested in {e['ingest_s']:.0f}s; other load while searching "
                  f"{e['search_load']['others_cores']:.2f} cores):", ""]
            rows = [
                [r, _f(x["recall"], 3), _f(x["all_found"], 3), _f(x["recall_vs_dense"]) + "x",
                 _f(x["search_latency"]["p50_ms"], 1)]
                for r, x in e["retrievers"].items()
            ]
            L += [table(["retriever", "recall@5", "all found", "recall vs dense", "search p50 (ms, incl. query encoding)"], rows), ""]
            cats = list(next(iter(e["retrievers"].values()))["per_category"])
            header = ["category (n)"] + [f"{r} recall / all found" for r in e["retrievers"]]
            rows = []
            for c in cats:
                n_c = e["retrievers"]["dense"]["per_category"][c]["n"]
                row = [f"{c} ({n_c})"]
                for r, x in e["retrievers"].items():
                    v = x["per_category"][c]
                    row.append(f"{v['recall']:.3f} / {v['all_found']:.3f} ({v['recall_vs_dense']:.2f}x)")
                rows.append(row)
            L += [table(header, rows), "", "(ratios in brackets: recall vs dense in that category)", ""]
    return "\n".join(L)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="latency at 10k and 100k chunks only")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="markdown file to update")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "foundation.json", help="raw results")
    ap.add_argument("--parts", default="ingest,recall,latency", help="comma list of ingest, recall, latency")
    ap.add_argument("--sizes", default=None, help="comma list of corpus sizes (overrides --quick)")
    ap.add_argument("--queries", type=int, default=200, help="queries per size")
    ap.add_argument("--data", type=Path, default=LOCOMO, help="LoCoMo dev file")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON",
                    help="measure nothing: rewrite the markdown section from a saved results file")
    args = ap.parse_args(argv)

    if args.render is not None:
        write_section(args.out, "foundation", render(json.loads(args.render.read_text(encoding="utf-8"))))
        log(f"rendered {args.render} into {args.out}")
        return 0

    started = time.perf_counter()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    full_sizes = [10_000, 100_000, 1_000_000]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (full_sizes[:2] if args.quick else full_sizes)
    res: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "bench/foundation.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "quick": args.quick,
    }
    log(f"machine: {res['machine']}")
    run_meter = CpuMeter()

    if parts & {"ingest", "recall"}:
        if not args.data.exists():
            log(f"LoCoMo dev subset not found at {args.data}: skipping ingest and recall")
            parts -= {"ingest", "recall"}
        else:
            histories = load_histories(args.data)
            samples = json.loads(args.data.read_text(encoding="utf-8"))
            questions = [qa["question"] for s in samples for qa in s["qa"] if qa.get("category") in CATEGORIES]
            encoders: dict[str, Encoder] = {}
            if "ingest" in parts:
                res["ingest"], encoders = bench_ingest(histories)
                res["query_encoding"] = bench_query_encoding(encoders, questions)
            if "recall" in parts:
                if not encoders:
                    encoders = {n: Encoder(EncoderSettings(name=n)) for n in ENCODERS}
                res["recall"] = bench_recall(histories, samples, encoders)
            del encoders
            gc.collect()
    if "latency" in parts:
        res["latency"] = bench_latency(sizes, args.queries, min_queries_1m=100, slow_budget_s=600.0)
        skipped = [f"{s:,}" for s in full_sizes if s not in sizes]
        if skipped:
            res["latency"]["skipped"] = ", ".join(skipped) + " chunks" + (" (--quick)" if args.quick else "")

    res["total_s"] = time.perf_counter() - started
    res["machine_load"] = run_meter.stop()
    save_json(args.json, res)
    write_section(args.out, "foundation", render(res))
    log(f"done in {res['total_s'] / 60:.1f} min: wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
