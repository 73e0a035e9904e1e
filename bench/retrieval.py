"""Retrieval benchmark: ANN vs exact at scale, incremental lexical index vs SQLite FTS5,
10,000 namespaces in one store, and evidence recall@5 on LoCoMo dev per improvement.

    .venv/bin/python bench/retrieval.py [--parts ann,lexical,namespaces,quality] [--sizes 100000,1000000]

Each measured unit (a size x backend x dtype, a namespace scenario, ...) is saved to
``bench/results/retrieval.json`` as soon as it is done, and skipped on a re-run unless
``--redo`` names its part: a killed run resumes where it stopped. The markdown section
``retrieval`` of docs/BENCHMARKS.md is rewritten from the JSON at the end (``--render``
only rewrites it). Progress goes to stderr. Every unit records how busy the machine was.
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _report import CpuMeter, latency_stats, log, machine_info, peak_rss_mb, rss_mb, save_json, table, write_section  # noqa: E402
from _synthetic import embedding_like_vectors, unit_vectors  # noqa: E402

RESULTS = HERE / "results" / "retrieval.json"
DIM = 384  # all-MiniLM-L6-v2
SEED = 20241130
N_QUERIES = 200


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}


def _save_unit(part: str, key: str, value: Any) -> None:
    """Merge one finished unit into the results file (re-read first: resumable and safe)."""
    res = _load()
    res.setdefault(part, {})[key] = value
    save_json(RESULTS, res)


def _have(part: str, key: str, redo: set[str]) -> bool:
    return part not in redo and key in _load().get(part, {})


def _time(fn: Any, items: list[Any], warmup: int = 5) -> list[float]:
    for x in items[:warmup]:
        fn(x)
    out = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return out


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _exact_topk(matrix: np.ndarray, queries: np.ndarray, k: int, block: int = 100_000) -> np.ndarray:
    """True top-k rows per query by brute force, in blocks (the ground truth for recall)."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for a in range(0, len(matrix), block):
        s = queries @ matrix[a : a + block].T
        i = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(s, i, 1)], 1)
        ci = np.concatenate([best_i, i + a], 1)
        top = np.argsort(-cs, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, top, 1), np.take_along_axis(ci, top, 1)
    return best_i


def _recall_at(found: list[np.ndarray], truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


# --------------------------------------------------------------------------- ANN
def bench_ann(sizes: list[int], redo: set[str], dtypes_at: dict[int, tuple[str, ...]]) -> None:
    from budgetmem.retrieval.ann import VectorIndex
    from budgetmem.settings import RetrievalSettings

    rs = RetrievalSettings()
    efs = (32, 64, 128, 256)
    for n in sizes:
        key0 = f"{n}"
        log(f"ann {n:,}: generating vectors")
        X = embedding_like_vectors(n, DIM, seed=SEED + n)
        Q = embedding_like_vectors(N_QUERIES, DIM, seed=SEED + 1)
        extra = embedding_like_vectors(1000, DIM, seed=SEED + 2)
        keys = np.arange(n, dtype=np.int64)
        t = time.perf_counter()
        truth = _exact_topk(X, Q, 10)
        log(f"ann {n:,}: ground truth in {time.perf_counter() - t:.1f}s")
        if not _have("ann", f"{key0}/exact", redo):
            meter = CpuMeter()
            ex = VectorIndex(DIM, exact_below=n + 10_000)
            ex.add(keys, X)
            nq = N_QUERIES if n <= 100_000 else 100
            lat = latency_stats(_time(lambda q: ex.search(q, 10), list(Q[:nq])))
            _save_unit("ann", f"{key0}/exact", {"n": n, "search": lat, "machine_load": meter.stop()})
            log(f"ann {n:,}: exact p50 {lat['p50_ms']:.2f} ms")
            del ex
        # Random isotropic vectors: the hard case where no ANN index works (reported once).
        if n == min(sizes) and not _have("ann", f"{key0}/isotropic", redo):
            U = unit_vectors(n, DIM, seed=SEED + n)
            UQ = unit_vectors(N_QUERIES, DIM, seed=SEED + 1)
            ut = _exact_topk(U, UQ, 10)
            g = VectorIndex(DIM, backend="faiss", exact_below=0, connectivity=rs.hnsw_connectivity,
                            expansion_add=rs.hnsw_expansion_add, expansion_search=rs.hnsw_expansion_search)  # fmt: skip
            g.add(keys, U)
            found = [g.search(q, 10)[0] for q in UQ]
            _save_unit("ann", f"{key0}/isotropic", {"n": n, "backend": "faiss", "recall@10": _recall_at(found, ut)})
            del g, U
        for backend in ("faiss", "usearch"):
            for dtype in dtypes_at.get(n, ("f32",)):
                key = f"{key0}/{backend}/{dtype}"
                if _have("ann", key, redo):
                    continue
                gc.collect()
                _reset_peak()
                rss0 = rss_mb()
                meter = CpuMeter()
                g = VectorIndex(DIM, backend=backend, dtype=dtype, exact_below=0, connectivity=rs.hnsw_connectivity,
                                expansion_add=rs.hnsw_expansion_add, expansion_search=rs.hnsw_expansion_search)  # fmt: skip
                log(f"ann {n:,}: building {backend} {dtype}")
                t = time.perf_counter()
                g.add(keys, X)
                build_s = time.perf_counter() - t
                rss_index = rss_mb() - rss0
                log(f"ann {n:,}: {backend} {dtype} built in {build_s:.1f}s, +{rss_index:.0f} MiB")
                sweep = {}
                for ef in efs:
                    _set_ef(g, ef)
                    found: list[np.ndarray] = []
                    lat = latency_stats(_time(lambda q: found.append(g.search(q, 10)[0]), list(Q)))
                    sweep[str(ef)] = {"recall@10": _recall_at(found[5:], truth), **lat}
                    log(f"ann {n:,}: {backend} {dtype} ef={ef} recall {sweep[str(ef)]['recall@10']:.3f} p50 {lat['p50_ms']:.2f} p99 {lat['p99_ms']:.2f}")
                _set_ef(g, rs.hnsw_expansion_search)
                t = time.perf_counter()
                g.add(np.arange(n, n + 1000), extra)
                add_s = time.perf_counter() - t
                found = [g.search(q, 10)[0] for q in extra[:50]]
                self_found = float(np.mean([int(n + i) in set(f.tolist()) for i, f in enumerate(found)]))
                t = time.perf_counter()
                g.remove(np.arange(0, n, max(1, n // 1000))[:1000])
                remove_s = time.perf_counter() - t
                _save_unit("ann", key, {
                    "n": n, "backend": backend, "dtype": dtype, "build_s": build_s, "rss_index_mb": rss_index,
                    "peak_rss_mb": peak_rss_mb(), "sweep": sweep, "add_1000_s": add_s,
                    "added_found_by_own_vector": self_found, "remove_1000_s": remove_s,
                    "params": {"connectivity": rs.hnsw_connectivity, "expansion_add": rs.hnsw_expansion_add},
                    "machine_load": meter.stop(),
                })  # fmt: skip
                log(f"ann {n:,}: {backend} {dtype} add 1000 in {add_s:.2f}s, remove 1000 in {remove_s:.2f}s")
                del g
        del X
        gc.collect()


def _set_ef(g: Any, ef: int) -> None:
    graph = g._graph  # noqa: SLF001 - the benchmark sweeps the search beam without rebuilding
    if hasattr(graph, "ef_search"):
        graph.ef_search = ef
        graph._params = None  # noqa: SLF001
    else:
        graph.index.expansion_search = ef


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ann,lexical,namespaces,quality")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--redo", default="", help="parts to measure again even if saved")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--render", action="store_true", help="measure nothing: rewrite the markdown from the JSON")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    redo = {p.strip() for p in args.redo.split(",") if p.strip()}
    if not args.render:
        res = _load()
        res.setdefault("runs", []).append({
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([".venv/bin/python", "bench/retrieval.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])]),
            "machine": machine_info(),
        })  # fmt: skip
        save_json(RESULTS, res)
        sizes = [int(s) for s in args.sizes.split(",")]
        if "ann" in parts:
            bench_ann(sizes, redo, {min(sizes): ("f32", "f16", "i8")})
        for name in ("lexical", "namespaces", "quality"):
            if name in parts:
                globals()[f"bench_{name}"](sizes, redo)
    try:
        from _retrieval_render import render

        write_section(args.out, "retrieval", render(_load()))
    except ImportError:
        log("no renderer yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
