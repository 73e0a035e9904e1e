"""Where PostgreSQL ingest time goes: ``Store.add`` with and without the HNSW / GIN index,
and ``PostgresStore.bulk_add`` (COPY, then the indexes), on the same synthetic chunks.

    .venv/bin/python bench/pg_ingest.py [--chunks 20000] [--variants full,nohnsw,nogin,none,bulk]

Each variant gets a fresh database on one local server (fsync on, shared_buffers 1GB). The
``Store.add`` variants write the first 1,000-chunk session, drop the named indexes, then
time the rest; ``client_cpu_s`` is this process's CPU over the timed part, so the rest of the
wall time is the server's. Results: ``bench/results/pg_ingest.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _report import log, machine_info, save_json  # noqa: E402
from _synthetic import ZipfTexts, embedding_like_vectors  # noqa: E402

DIM, BATCH, SEED = 384, 1_000, 20261130
DROPS = {"full": [], "nohnsw": [f"chunks_hnsw_{DIM}"], "nogin": ["chunks_tsv"], "none": [f"chunks_hnsw_{DIM}", "chunks_tsv"]}


def main() -> int:
    from budgetmem.chunk import Chunk
    from budgetmem.store import SessionBatch, open_store, pg_local

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--variants", default="full,nohnsw,nogin,none,bulk")
    args = ap.parse_args()
    n = args.chunks
    texts = list(ZipfTexts(vocab_size=50_000, seed=SEED).texts(n, seed=SEED))
    vectors = embedding_like_vectors(n, DIM, seed=SEED)

    def batch(a: int) -> SessionBatch:
        chunks = [Chunk(id=0, source="synthetic", history="h", session_id=f"s{a}", session_date=None, position=i,
                        kind="doc", text=texts[a + i], n_tokens=150, dia_ids=(), speakers=(), meta={})
                  for i in range(min(BATCH, n - a))]  # fmt: skip
        return SessionBatch("bench", f"k{a}", "synthetic", "h", f"s{a}", chunks, vectors[a : a + len(chunks)])

    folder = Path(tempfile.mkdtemp(prefix="bm-pg-ingest-"))
    server = pg_local.start(folder, shared_buffers="1GB")
    out: dict[str, object] = {"chunks": n, "variants": {}}
    try:
        for variant in args.variants.split(","):
            with open_store(server.create_database(f"v_{variant}")) as store:
                load0 = os.getloadavg()[0]
                if variant == "bulk":
                    t, c = time.perf_counter(), time.process_time()
                    rep = store.bulk_add("bench", (batch(a) for a in range(0, n, BATCH)), encoder="e", dim=DIM,  # type: ignore[attr-defined]
                                         chunk_tokens=256, maintenance_work_mem="1GB")  # fmt: skip
                    timed, extra = n, dict(rep)
                else:
                    store.add([batch(0)], encoder="e", dim=DIM, chunk_tokens=256)
                    with store._tx() as conn:  # type: ignore[attr-defined]
                        for index in DROPS[variant]:
                            conn.execute(f"DROP INDEX {index}")
                    t, c = time.perf_counter(), time.process_time()
                    for a in range(BATCH, n, BATCH):
                        store.add([batch(a)], encoder="e", dim=DIM, chunk_tokens=256)
                    timed, extra = n - BATCH, {}
                wall = time.perf_counter() - t
                row = {"chunks": timed, "wall_s": wall, "chunks_per_s": timed / wall, "client_cpu_s": time.process_time() - c,
                       "load": [load0, os.getloadavg()[0]], **extra}  # fmt: skip
                out["variants"][variant] = row  # type: ignore[index]
                log(f"{variant}: {row['chunks_per_s']:.0f} chunks/s, client CPU {row['client_cpu_s']:.1f} s of {wall:.0f} s")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    out["machine"] = machine_info()
    save_json(HERE / "results" / "pg_ingest.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
