"""The memory service under load: a real ``budgetmem serve`` (uvicorn) on 127.0.0.1.

    .venv/bin/python bench/service.py [--clients 16] [--seconds 20] [--queries 16]

One LoCoMo dev conversation is added session by session over HTTP (a LoCoMo-sized
namespace), then, with ``--clients`` concurrent clients (threads, one keep-alive httpx
client each): searches for ``--seconds`` (each client walks the conversation's questions:
distinct texts, so no query-embedding cache helps), adds of small sessions into another
namespace, and queries at the MID policy (retrieval + encoder modules + the answer model).
The server's overhead on a query is measured against the library called directly in this
process, on the same store file and questions (ones the load rows did not ask), through a
fresh server, alternating which side goes first; each side has its own module cache, so both
compute every question afresh, and each answer's ledger splits the server's time into the
pipeline's and the service's own. ``--overhead`` runs only that comparison (on a fresh
store) and re-renders the section. Then the searches again on fresh servers over the same store: one embedding
queries in float32 (the baseline of ``[encoder] query_precision``) where ``auto`` chose
bfloat16, or in int8 (the opt-in) where it chose float32, and one with ``--processes`` worker
processes (adds too); the precision that is not float32 also gets its evidence recall@5 on
every scored LoCoMo dev question, against float32. Writes the ``service`` section of
docs/BENCHMARKS.md and bench/results/service.json.

``--batching`` measures only the effect of ``[server] batch_queries`` (concurrent searches
sharing the encoder's forward passes): the 16-client search row on fresh servers with it
off and on, ``--rounds`` times each in alternating order, in one run on one machine. It
writes the ``batching`` entry of bench/results/service.json (the other rows stay as they
are) and re-renders the section.

The answer model is SmolLM2-135M (the embedded small rung) so that a query's time is not
all LLM; the encoder is MiniLM. Both processes share the machine's 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _report import CpuMeter, latency_stats, log, machine_info, save_json, table, write_section  # noqa: E402

from budgetmem import BudgetMem  # noqa: E402
from budgetmem.encoder import Encoder  # noqa: E402
from budgetmem.retrieval.searcher import Searcher  # noqa: E402
from budgetmem.settings import Settings, load_settings  # noqa: E402

LOCOMO = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
CONFIG = """\
[encoder]
name = "all-minilm-l6-v2"

[pipeline]
answer_llm = "llamacpp:smollm2-135m"
module_llm = "llamacpp:smollm2-135m"
cache_path = "{cache}"
"""


_DEFAULTS: dict[str, Any] = {}
"""The command's default options (set by :func:`main`)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conversation() -> tuple[str, list[dict[str, Any]], list[str]]:
    """The dev conversation with the most turns: (id, sessions as API bodies, its questions)."""
    data = json.loads(LOCOMO.read_text())
    best = max(data, key=lambda c: sum(len(v) for k, v in c["conversation"].items() if isinstance(v, list)))
    conv = best["conversation"]
    sessions = []
    n = 1
    while f"session_{n}" in conv:
        turns = conv[f"session_{n}"]
        sessions.append({"messages": [{"speaker": t["speaker"], "text": t["text"]} for t in turns if t.get("text")],
                         "session_id": f"session_{n}", "date": conv.get(f"session_{n}_date_time")})  # fmt: skip
        n += 1
    questions = [q["question"] for q in best["qa"] if q.get("category") in (1, 2, 3, 4)]
    return best["sample_id"], sessions, questions


def _cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "budgetmem", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"budgetmem {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its children (server worker processes)
    have used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except (OSError, IndexError, ValueError):
        return float("nan")
    return own + sum(_proc_cpu_s(c) for c in children)


def _load(clients: int, seconds: float, make_call, server_pid: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run ``clients`` threads, each calling ``make_call(client_index, i)`` until time is up."""
    lat: list[float] = []
    codes: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(clients)

    def worker(c: int) -> None:
        i = 0
        barrier.wait()
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, text = make_call(c, i)
            dt = time.perf_counter() - t0
            with lock:
                codes[status] = codes.get(status, 0) + 1
                if 200 <= status < 300:
                    lat.append(dt)
                elif len(errors) < 3:
                    errors.append(f"{status}: {text[:200]}")
            i += 1

    meter = CpuMeter()
    server0 = _proc_cpu_s(server_pid)
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = meter.stop()
    server_cores = (_proc_cpu_s(server_pid) - server0) / wall
    cpu["server_cores"], cpu["others_cores"] = server_cores, max(0.0, cpu["others_cores"] - server_cores)
    stats = latency_stats(lat) if lat else {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    log(f"  statuses {codes}, p50 {stats['p50_ms']:.1f} ms, {len(lat) / wall:.1f} ok/s")
    return {**stats, "ok_per_s": len(lat) / wall, "codes": codes, "errors": errors[:3], "cpu": cpu}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--queries", type=int, default=16, help="questions for the query overhead comparison")
    p.add_argument("--processes", type=int, default=2, help="server processes of the scaling rows")
    p.add_argument("--sweep", type=lambda t: [int(x) for x in t.split(",") if x], default=[1, 4, 8],
                   help="fewer concurrent clients for extra search rows (latency without the queue)")
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    p.add_argument("--render", action="store_true", help="only rewrite the section from bench/results/service.json")
    p.add_argument("--batching", action="store_true", help="only the search row with query batching off and on")
    p.add_argument("--rounds", type=int, default=2, help="--batching: servers per setting (alternating order)")
    p.add_argument("--overhead", action="store_true", help="only the query overhead comparison (a fresh store)")
    _DEFAULTS.update(vars(p.parse_args([])))
    args = p.parse_args()
    saved = ROOT / "bench" / "results" / "service.json"
    if args.batching:
        _batching(args, saved)
    if args.overhead:
        _overhead_only(args, saved)
    if args.render or args.batching or args.overhead:
        data = json.loads(saved.read_text(encoding="utf-8"))
        for key, value in data["settings"].items():
            if key not in ("render", "out", "batching", "rounds", "overhead", "queries"):
                setattr(args, key, value)
        results = {k: v for k, v in data.items() if k not in ("settings", "machine")}
        lines = _report_lines(results, args, data["machine"], len(_conversation()[2]), data.get("date", "?"))
        write_section(Path(args.out), "service", "\n".join(lines))
        print("\n".join(lines))
        return 0
    conv_id, sessions, questions = _conversation()
    tmp, store, headers, env = _workspace("budgetmem-service-bench-", "read,query,write,metrics")
    server, url = _start_server(tmp, "server", store, args.clients, env)
    results: dict[str, Any] = {"conversation": conv_id, "sessions": len(sessions), "questions": len(questions)}
    results["query_precision"] = Encoder(load_settings(tmp / "server.toml").encoder).query_precision
    try:
        ns = f"{url}/v1/namespaces/bench/locomo"
        with httpx.Client(headers=headers, timeout=300) as http:
            t0 = time.perf_counter()
            chunks = _add_sessions(http, ns, sessions)
            results["ingest"] = {"seconds": time.perf_counter() - t0, "chunks": chunks}
            log(f"added {len(sessions)} sessions ({chunks} chunks) in {results['ingest']['seconds']:.1f} s")
            http.post(f"{ns}/search", json={"query": "warm-up"}).raise_for_status()

        clients = [httpx.Client(base_url=url, headers=headers, timeout=120) for _ in range(args.clients)]
        log(f"searches ({results['query_precision']} queries): {args.clients} clients for {args.seconds:.0f} s")
        results["search"] = _searches(clients, questions, args, server.pid)
        # Latency without the queue: the same searches from fewer clients. With C clients kept
        # busy, mean latency is C / throughput (Little's law), so p99 at 16 clients is mostly
        # waiting for the 15 requests ahead.
        for n in args.sweep:
            log(f"searches: {n} clients for {args.seconds:.0f} s")
            results[f"search_{n}_clients"] = _searches(clients[:n], questions, args, server.pid)

        log(f"adds: {args.clients} clients for {args.seconds:.0f} s")
        results["add"] = _load(args.clients, args.seconds, _adder(clients, "adds"), server.pid)

        asked = questions[: -args.queries]  # the overhead sample stays unasked (uncached) until then

        def query(c: int, i: int) -> tuple[int, str]:
            q = asked[(c * 37 + i) % len(asked)]
            r = clients[c].post("/v1/namespaces/bench/locomo/query", json={"question": q, "policy": "mid"})
            if r.status_code == 429:
                time.sleep(float(r.headers.get("retry-after", "1")))
            return r.status_code, r.text

        log(f"queries at MID: {args.clients} clients for {2 * args.seconds:.0f} s")
        results["query"] = _load(args.clients, 2 * args.seconds, query, server.pid)
        for c in clients:
            c.close()

        # A query that timed out above still runs to its end in the server's pool: wait for
        # them, or the comparison below would share the cores with them.
        with httpx.Client(headers=headers, timeout=30) as http:
            results["query_drain_s"] = _wait_idle(http, url, "query", timeout_s=900)
        log(f"waited {results['query_drain_s']:.0f} s for the query pool to drain")
        _stop(server)
        results["overhead"] = _overhead(tmp, store, headers, env, args, questions)
        # Baselines and scaling, each a fresh server on the same store (its indexes are on
        # disk): float32 queries, one process; then the service on two processes.
        variants = {"search_processes": ("processes", ["--processes", str(args.processes)])}
        if results["query_precision"] != "float32":
            (tmp / "float32.toml").write_text(
                (tmp / "server.toml").read_text().replace("[encoder]\n", '[encoder]\nquery_precision = "float32"\n', 1)
            )
            variants = {"search_float32": ("float32", []), **variants}
        else:  # no native bfloat16 here: the int8 opt-in instead
            (tmp / "int8.toml").write_text(
                (tmp / "server.toml").read_text().replace("[encoder]\n", '[encoder]\nquery_precision = "int8"\n', 1)
            )
            variants = {"search_int8": ("int8", []), **variants}
        (tmp / "processes.toml").write_text((tmp / "server.toml").read_text())
        for label, (conf, extra) in variants.items():
            server, url = _start_server(tmp, conf, store, args.clients, env, *extra)
            clients = [httpx.Client(base_url=url, headers=headers, timeout=120) for _ in range(args.clients)]
            for c in clients:  # each connection warms the process that accepted it (encoder, indexes)
                c.post("/v1/namespaces/bench/locomo/search", json={"query": "warm-up"}).raise_for_status()
            log(f"searches ({label}): {args.clients} clients for {args.seconds:.0f} s")
            results[label] = _searches(clients, questions, args, server.pid)
            if label == "search_processes":
                log(f"adds ({label}): {args.clients} clients for {args.seconds:.0f} s")
                results["add_processes"] = _load(args.clients, args.seconds, _adder(clients, "procs"), server.pid)
            for c in clients:
                c.close()
            _stop(server)
    finally:
        _stop(server)
    if results["query_precision"] != "float32" and "precision" not in results:
        results["precision"] = _precision_recall(tmp, results["query_precision"])
    elif "search_int8" in results:
        results["precision_int8"] = _precision_recall(tmp, "int8")

    machine = machine_info()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    results["date"] = stamp
    lines = _report_lines(results, args, machine, len(questions), stamp)
    write_section(Path(args.out), "service", "\n".join(lines))
    if saved.exists() and "batching" in (earlier := json.loads(saved.read_text(encoding="utf-8"))):
        results["batching"] = earlier["batching"]  # its own command; kept until that is run again
        lines = _report_lines(results, args, machine, len(questions), stamp)
    write_section(Path(args.out), "service", "\n".join(lines))
    save_json(saved, {"settings": vars(args), "machine": machine, **results})
    print("\n".join(lines))
    return 0


def _batching(args: argparse.Namespace, saved: Path) -> None:
    """The 16-client search row with ``[server] batch_queries`` off and on, alternating."""
    _, sessions, questions = _conversation()
    tmp = Path(tempfile.mkdtemp(prefix="budgetmem-batching-bench-"))
    store = tmp / "store.db"
    base = CONFIG.format(cache=tmp / "cache.sqlite")
    for on in (True, False):
        (tmp / f"batch-{'on' if on else 'off'}.toml").write_text(base + f"\n[server]\nbatch_queries = {str(on).lower()}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    key = json.loads(_cli("keys", "create", "--store", str(store), "--namespace", "bench", "--scope", "read,write", "--json", env=env))["key"]
    headers = {"Authorization": f"Bearer {key}"}
    server, url = _start_server(tmp, "batch-on", store, args.clients, env)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
            for body in sessions:
                http.post("/v1/namespaces/bench/locomo/memories", json=body).raise_for_status()
    finally:
        _stop(server)
    rows: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for setting in (("off", "on") if r % 2 == 0 else ("on", "off")):
            server, url = _start_server(tmp, f"batch-{setting}", store, args.clients, env)
            clients = [httpx.Client(base_url=url, headers=headers, timeout=120) for _ in range(args.clients)]
            try:
                for c in clients:
                    c.post("/v1/namespaces/bench/locomo/search", json={"query": "warm-up"}).raise_for_status()
                load = os.getloadavg()[0]
                log(f"batching {setting}, round {r + 1}: {args.clients} clients for {args.seconds:.0f} s (load {load:.1f})")
                row = _searches(clients, questions, args, server.pid)
            finally:
                for c in clients:
                    c.close()
                _stop(server)
            rows.append({"batching": setting, "round": r + 1, "loadavg_1m": load, **row})

    def total(setting: str) -> float:
        picked = [x for x in rows if x["batching"] == setting]
        return sum(x["n"] for x in picked) / sum(x["cpu"]["wall_s"] for x in picked)

    machine = machine_info()
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    entry = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "command": shlex.join(["bench/service.py", *sys.argv[1:]]),
        "machine": machine, "avx512_bf16": "avx512_bf16" in flags, "nice": os.nice(0),
        "query_precision": Encoder(load_settings(tmp / "batch-on.toml").encoder).query_precision,
        "clients": args.clients, "seconds": args.seconds, "rows": rows,
        "searches_per_s": {"off": total("off"), "on": total("on")}, "ratio": total("on") / total("off"),
    }  # fmt: skip
    log(f"batching: {entry['searches_per_s']['off']:.1f} -> {entry['searches_per_s']['on']:.1f} searches/s ({entry['ratio']:.2f}x)")
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["batching"] = entry
    save_json(saved, data)


def _report_lines(results: dict[str, Any], args: argparse.Namespace, machine: dict[str, Any], n_questions: int,
                  stamp: str) -> list[str]:  # fmt: skip
    """The markdown section, from one run's results."""
    s, a, q, o = results["search"], results["add"], results["query"], results["overhead"]
    conv_id = results["conversation"]
    rows = [
        ["search (k=5, hybrid)", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['ok_per_s']:.1f}", _codes(s), *_cores(s)],
        ["add (one-turn session)", f"{a['p50_ms']:.1f}", f"{a['p99_ms']:.1f}", f"{a['ok_per_s']:.1f}", _codes(a), *_cores(a)],
        ["query (MID, SmolLM2 answers)", f"{q['p50_ms']:.0f}", f"{q['p99_ms']:.0f}", f"{q['ok_per_s']:.2f}", _codes(q), *_cores(q)],
    ]  # fmt: skip
    f32 = results.get("search_float32")
    if f32:
        rows.insert(0, ["search, float32 queries (baseline)", f"{f32['p50_ms']:.1f}", f"{f32['p99_ms']:.1f}",
                        f"{f32['ok_per_s']:.1f}", _codes(f32), *_cores(f32)])  # fmt: skip
    i8 = results.get("search_int8")
    if i8:
        rows.insert(1, ["search, int8 queries (opt-in)", f"{i8['p50_ms']:.1f}", f"{i8['p99_ms']:.1f}",
                        f"{i8['ok_per_s']:.1f}", _codes(i8), *_cores(i8)])  # fmt: skip
    sweep = [n for n in args.sweep if f"search_{n}_clients" in results]
    for n in sorted(sweep, reverse=True):
        r = results[f"search_{n}_clients"]
        rows.insert(rows.index(next(x for x in rows if x[0].startswith("search (k=5"))) + 1,
                    [f"search, {n} client{'s' if n > 1 else ''}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                     f"{r['ok_per_s']:.1f}", _codes(r), *_cores(r)])  # fmt: skip
    fast = [n for n in sweep if results[f"search_{n}_clients"]["p99_ms"] <= 50]
    n = args.processes
    sp, ap = results["search_processes"], results["add_processes"]
    rows[-1:-1] = [
        [f"search, {n} processes", f"{sp['p50_ms']:.1f}", f"{sp['p99_ms']:.1f}", f"{sp['ok_per_s']:.1f}", _codes(sp), *_cores(sp)],
        [f"add, {n} processes", f"{ap['p50_ms']:.1f}", f"{ap['p99_ms']:.1f}", f"{ap['ok_per_s']:.1f}", _codes(ap), *_cores(ap)],
    ]  # fmt: skip
    lines = [
        "## Service: budgetmem serve under concurrent clients",
        "",
        f"Measured {stamp} on {machine['cpu']}, {machine['cores']} cores. Command: "
        f"`{shlex.join(['.venv/bin/python', 'bench/service.py', *_main_args(args)])}`. A real `budgetmem serve` (uvicorn, "
        f"one process) on 127.0.0.1; the namespace holds LoCoMo dev conversation {conv_id} ({results['sessions']} sessions, "
        f"{results['ingest']['chunks']} chunks of 256 tokens, MiniLM), added over HTTP in {results['ingest']['seconds']:.1f} s. "
        f"{args.clients} concurrent clients (threads in this process, one keep-alive connection each) for "
        f"{args.seconds:.0f} s per row ({2 * args.seconds:.0f} s for queries); searches walk the conversation's "
        f"{n_questions} questions; the `search, N clients` rows ask the same searches from fewer clients (latency with a shorter queue). Latency counts 2xx answers; the status column counts every answer. The clients "
        "share the 2 cores with the server; the cores columns split the machine's CPU between the server process, "
        "the clients (this process) and everything else running at the time.",
        "",
        table(["operation", "p50 ms", "p99 ms", "per s", "statuses", "server cores", "client cores", "other cores"], rows),
        "",
        f"Server overhead on a query (MID, the same {o['questions']} questions through the library in this process "
        f"and through a fresh server{' (' + o['date'] + ', `--overhead`)' if 'date' in o else ''}, alternating which "
        "goes first; each side computes every question afresh, with the server's one torch thread per forward pass): "
        f"library p50 {o['library_p50_s']:.2f} s, server p50 {o['server_p50_s']:.2f} s; in total "
        f"{o['overhead_pct']:+.1f}% (median extra per query {o['overhead_ms_p50']:.0f} ms; 95% bootstrap interval "
        f"over the questions {o['overhead_pct_ci95'][0]:+.1f}% to {o['overhead_pct_ci95'][1]:+.1f}%). Target: at "
        "most 2%."
        + (f" Of the server's time, the service itself (HTTP, key check, the pool's hand-off, JSON: the request's "
           f"wall time minus the pipeline's own, from the answer's ledger) took {o['service_ms_p50']:.0f} ms per query "
           f"at the median ({o['service_ms_max']:.0f} ms at most), {o['service_pct']:.2f}% of the server's time "
           f"({'within' if o['service_pct'] <= 2 else 'over'} the target); the rest of the difference is the "
           f"pipeline's own wall time, {o['pipeline_pct']:+.1f}% in the server process against this one (the same "
           "steps on the same inputs, computed in another process)." if "service_ms_p50" in o else "")
        + (" Not a valid measurement this time: the server calls the same library, so it cannot be this much "
           "faster; something slowed the library side in this process (the cause was not established; other "
           "sessions' jobs held about one of the two cores, and the answer model decodes on 2 threads on each side)."
           if o["overhead_pct"] < -10 else ""),
        "",
        f"Targets for search: p99 <= 50 ms and >= 200 searches/s. One process: p99 {s['p99_ms']:.1f} ms "
        f"({'met' if s['p99_ms'] <= 50 else 'not met'}), {s['ok_per_s']:.0f}/s ({'met' if s['ok_per_s'] >= 200 else 'not met'}); "
        f"`--processes {n}`: p99 {sp['p99_ms']:.1f} ms ({'met' if sp['p99_ms'] <= 50 else 'not met'}), {sp['ok_per_s']:.0f}/s "
        f"({'met' if sp['ok_per_s'] >= 200 else 'not met'}), {sp['ok_per_s'] / s['ok_per_s']:.2f}x one process's searches/s. "
        + (f"p99 stays within 50 ms up to {max(fast)} concurrent client{'s' if max(fast) > 1 else ''} (one process). "
           if fast else "p99 exceeds 50 ms even with one client. " if sweep else "")
        + f"With {args.clients} clients always waiting, a search's mean latency is {args.clients} / throughput "
        f"(Little's law): p99 <= 50 ms at {args.clients} clients needs more than {args.clients / 0.05:.0f} searches/s "
        "from the 2 cores the clients also use. " + _budget_sentence(s, args.clients, float(machine["cores"])),
    ]
    if "sweep_from" in results:
        w = results["sweep_from"]
        lines += ["", f"The `search, N clients` rows come from a second run ({w['date']}, the same command) while other "
                      f"engineers' test suites used about {w['others_cores']:.1f} of the 2 cores (the benchmark ran at "
                      f"nice -10); in that run 16 clients gave p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms, "
                      f"{w['ok_per_s']:.0f} searches/s. The other rows are from a run on a quiet machine."]  # fmt: skip
    if f32:
        pr = results["precision"]
        lines += [
            "",
            f"Queries are embedded in {results['query_precision']} on this CPU (`[encoder] query_precision = \"auto\"`; "
            f"stored chunks stay float32): {s['ok_per_s'] / f32['ok_per_s']:.2f}x the searches/s of float32 queries in "
            f"the same run. On all {pr['questions']} scored LoCoMo dev questions (MiniLM, default hybrid retrieval), "
            f"evidence recall@5 is {pr['recall_' + results['query_precision']]:.3f} with {results['query_precision']} queries against "
            f"{pr['recall_float32']:.3f} with float32 ({pr['same_top5']:.1%} of questions get the same top 5); the "
            f"cosine between the two embeddings of a question is at least {pr['min_cosine']:.5f}.",
        ]
    if i8:
        pr = results["precision_int8"]
        lines += [
            "",
            f"No native bfloat16 on this CPU, so `auto` embeds queries in float32 (the main rows). The int8 row is the "
            f"opt-in `[encoder] query_precision = \"int8\"` (linear layers dynamically quantised; stored chunks stay "
            f"float32) on a fresh server after the other rows (not interleaved with the float32 row, so the "
            f"machine's other load may differ): {i8['ok_per_s'] / s['ok_per_s']:.2f}x the searches/s, "
            f"{_cpu_ms(i8):.1f} against {_cpu_ms(s):.1f} ms of server CPU per search. On all {pr['questions']} scored "
            f"LoCoMo dev questions evidence recall@5 is {pr['recall_int8']:.3f} with int8 queries against "
            f"{pr['recall_float32']:.3f} with float32, but only {pr['same_top5']:.1%} of questions get the same top 5 "
            f"and the cosine between the two embeddings of a question is {pr['min_cosine']:.3f} at worst "
            f"({pr['mean_cosine']:.3f} on average), so `auto` does not choose it.",
        ]
    if "batching" in results:
        lines += ["", *_batching_lines(results["batching"])]
    return lines


def _cpu_ms(r: dict[str, Any]) -> float:
    """Milliseconds of server CPU per answered request in a load row."""
    return 1e3 * r["cpu"]["server_cores"] / r["ok_per_s"]


def _budget_sentence(s: dict[str, Any], clients: int, cores: float) -> str:
    """Whether the search target is within reach on these cores, from the row's CPU per search."""
    server_ms, client_ms = _cpu_ms(s), 1e3 * s["cpu"]["own_cpu_s"] / s["cpu"]["wall_s"] / s["ok_per_s"]
    need = clients / 0.05
    ceiling = 1e3 * cores / (server_ms + client_ms)
    return (
        f"Here a search cost {server_ms:.1f} ms of server CPU and {client_ms:.1f} ms of client CPU, so even with "
        f"both cores busy all the time the machine could answer at most {ceiling:.0f} searches/s, "
        + ("enough for the target in principle (the server used "
           f"{s['cpu']['server_cores']:.2f} cores)." if ceiling >= need else
           f"{need / ceiling:.1f}x short of the {need:.0f}/s the 50 ms p99 needs: that needs at most "
           f"{1e3 * cores / need:.1f} ms of CPU per search, server and client together.")
    )


def _main_args(args: argparse.Namespace) -> list[str]:
    """The options of the main run that differ from their defaults (its rows' command line,
    whichever command renders them)."""
    out = []
    for key in ("clients", "seconds", "queries", "processes", "sweep"):
        value = getattr(args, key)
        if value != _DEFAULTS.get(key, value):
            out += [f"--{key}", ",".join(map(str, value)) if isinstance(value, list) else f"{value:g}"]
    return out


def _batching_lines(b: dict[str, Any]) -> list[str]:
    """The query-batching comparison (``--batching``): one row per server, in run order."""
    rows = [[f"batching {x['batching']}", str(x["round"]), f"{x['p50_ms']:.1f}", f"{x['p99_ms']:.1f}", f"{x['ok_per_s']:.1f}",
             f"{x['ok_per_s'] / x['cpu']['server_cores']:.1f}", _codes(x), *_cores(x), f"{x['loadavg_1m']:.1f}"]
            for x in b["rows"]]  # fmt: skip
    per_s = b["searches_per_s"]

    def per_core(setting: str) -> float:
        """Searches per CPU-second of the server: less swayed than searches/s by how much of
        the machine other work left it."""
        picked = [x for x in b["rows"] if x["batching"] == setting]
        return sum(x["n"] for x in picked) / sum(x["cpu"]["server_cores"] * x["cpu"]["wall_s"] for x in picked)

    return [
        f"### Query batching off and on ({b['date']})",
        "",
        f"`{b['command']}` (run at nice {b['nice']}) on {b['machine']['cpu']}, {b['machine']['cores']} cores"
        f"{'' if b['avx512_bf16'] else ', a host without avx512_bf16 this time'}: queries embedded in "
        f"{b['query_precision']}. The {b['clients']}-client search row ({b['seconds']:.0f} s) on a fresh server per row, "
        "`[server] batch_queries` off and on in alternating order, over the same store. With batching on, a search "
        "that finds no forward pass running encodes every query waiting at that moment in one pass; off, each query "
        "has a pass of its own, one after another.",
        "",
        table(["server", "round", "p50 ms", "p99 ms", "per s", "per server CPU-s", "statuses", "server cores",
               "client cores", "other cores", "load 1 min"], rows),  # fmt: skip
        "",
        f"Searches/s over the rounds: off {per_s['off']:.1f}, on {per_s['on']:.1f}: batching gives {b['ratio']:.2f}x; "
        f"per CPU-second of the server: off {per_core('off'):.1f}, on {per_core('on'):.1f} ({per_core('on') / per_core('off'):.2f}x). "
        "The other-cores column is the CPU other work on the shared machine took meanwhile; compare rows by their "
        "ratios, not with the rows above.",
    ]


def _workspace(prefix: str, scope: str) -> tuple[Path, Path, dict[str, str], dict[str, str]]:
    """A fresh folder with the store, the server's and the library's configs (each its own
    module cache) and a key for the ``bench`` namespace: (folder, store, headers, env)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    store = tmp / "store.db"
    for name in ("server", "library"):
        (tmp / f"{name}.toml").write_text(CONFIG.format(cache=tmp / f"{name}-cache.sqlite"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    key = json.loads(_cli("keys", "create", "--store", str(store), "--namespace", "bench", "--scope", scope, "--json", env=env))["key"]
    return tmp, store, {"Authorization": f"Bearer {key}"}, env


def _add_sessions(http: httpx.Client, ns: str, sessions: list[dict[str, Any]]) -> int:
    """Adds the sessions one by one over HTTP; returns the chunks stored."""
    chunks = 0
    for body in sessions:
        r = http.post(f"{ns}/memories", json=body)
        r.raise_for_status()
        chunks += r.json()["chunks_added"]
    return chunks


def _overhead(tmp: Path, store: Path, headers: dict[str, str], env: dict[str, str], args: argparse.Namespace,
              questions: list[str]) -> dict[str, Any]:
    """The server's overhead on a MID query against the library called directly in this
    process: the last ``--queries`` questions (ones no load row asked), on a fresh server (not
    the one that just served the load rows: its state after a load test is not the service's
    cost), alternating which side goes first. Each side has its own module cache, so both
    compute every question afresh; a warm-up question first loads the models on each side.
    Besides the wall time each side took, each answer's ledger gives the pipeline's own wall
    time, so the service's share (HTTP, keys, the pool's hand-off, JSON) is read apart from
    the pipeline's run-to-run spread."""
    import torch

    server, url = _start_server(tmp, "server", store, args.clients, env)
    ns = f"{url}/v1/namespaces/bench/locomo"
    sample = questions[-args.queries :]
    log(f"overhead: {len(sample)} questions, server vs library, after a warm-up question")
    settings = load_settings(tmp / "library.toml")
    # The server runs torch with one thread per forward pass ([server] torch_threads); the
    # library side does the same here, so the comparison is of the service alone.
    torch.set_num_threads(Settings().server.torch_threads or torch.get_num_threads())
    rows = []
    try:
        with BudgetMem(store, "bench/locomo", settings=settings) as mem, httpx.Client(headers=headers, timeout=300) as http:
            mem.query(questions[0], policy="mid")
            http.post(f"{ns}/query", json={"question": questions[0], "policy": "mid"}).raise_for_status()
            for j, q in enumerate(sample):
                row: dict[str, float] = {}
                for side in ("lib", "srv") if j % 2 == 0 else ("srv", "lib"):  # alternate who goes first
                    t0 = time.perf_counter()
                    if side == "lib":
                        pipeline = mem.query(q, policy="mid").to_dict()["totals"]["wall_s"]
                    else:
                        r = http.post(f"{ns}/query", json={"question": q, "policy": "mid"})
                        r.raise_for_status()
                        pipeline = r.json()["cost"]["totals"]["wall_s"]
                    row[side], row[f"{side}_pipeline"] = time.perf_counter() - t0, pipeline
                rows.append(row)
    finally:
        _stop(server)
    pairs = [(r["lib"], r["srv"]) for r in rows]
    lib_total, srv_total = sum(x for x, _ in pairs), sum(y for _, y in pairs)
    service_ms = [1e3 * (r["srv"] - r["srv_pipeline"]) for r in rows]
    return {
        "questions": len(pairs), "library_p50_s": statistics.median(x for x, _ in pairs),
        "server_p50_s": statistics.median(y for _, y in pairs), "library_total_s": lib_total, "server_total_s": srv_total,
        "overhead_pct": 100.0 * (srv_total - lib_total) / lib_total,
        "overhead_ms_p50": 1e3 * statistics.median(y - x for x, y in pairs),
        "overhead_pct_ci95": _bootstrap_overhead(pairs),
        "service_ms_p50": statistics.median(service_ms), "service_ms_max": max(service_ms),
        "service_pct": 100.0 * sum(service_ms) / 1e3 / srv_total,
        "pipeline_pct": 100.0 * (sum(r["srv_pipeline"] for r in rows) - sum(r["lib_pipeline"] for r in rows))
        / sum(r["lib_pipeline"] for r in rows),
    }  # fmt: skip


def _overhead_only(args: argparse.Namespace, saved: Path) -> None:
    """``--overhead``: the conversation added to a fresh store over HTTP, then :func:`_overhead`;
    writes the ``overhead`` entry of bench/results/service.json (the other rows stay)."""
    _, sessions, questions = _conversation()
    tmp, store, headers, env = _workspace("budgetmem-service-overhead-", "read,query,write")
    server, url = _start_server(tmp, "server", store, args.clients, env)
    try:
        with httpx.Client(headers=headers, timeout=300) as http:
            _add_sessions(http, f"{url}/v1/namespaces/bench/locomo", sessions)
    finally:
        _stop(server)
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["overhead"] = {**_overhead(tmp, store, headers, env, args, questions),
                        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}  # fmt: skip
    data["settings"]["queries"] = args.queries
    save_json(saved, data)


def _bootstrap_overhead(pairs: list[tuple[float, float]], rounds: int = 10_000) -> list[float]:
    """95% interval of the total overhead (server over library, %) by resampling questions."""
    import numpy as np

    lib, srv = np.array(pairs).T
    picks = np.random.default_rng(0).integers(0, len(pairs), size=(rounds, len(pairs)))
    pct = 100.0 * (srv[picks].sum(axis=1) - lib[picks].sum(axis=1)) / lib[picks].sum(axis=1)
    return [float(np.percentile(pct, 2.5)), float(np.percentile(pct, 97.5))]


def _in_flight(metrics: str, pool: str) -> float:
    """Tasks running or waiting in the service's worker ``pool``, from its /metrics text
    (0 when the gauge has not been set yet)."""
    for line in metrics.splitlines():
        if line.startswith("budgetmem_pool_in_flight{") and f'pool="{pool}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_idle(http: httpx.Client, url: str, pool: str, timeout_s: float) -> float:
    """Wait until the server's ``pool`` has nothing running or waiting (at most
    ``timeout_s``); the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        r = http.get(f"{url}/metrics")
        r.raise_for_status()
        if _in_flight(r.text, pool) == 0:
            break
        time.sleep(1.0)
    return time.perf_counter() - started


def _adder(clients: list[httpx.Client], namespace: str):  # type: ignore[no-untyped-def]
    def add(c: int, i: int) -> tuple[int, str]:
        body = {"messages": [{"speaker": "user", "text": f"client {c} note {i}: the meeting moved to room {i % 50}."}],
                "session_id": f"c{c}-n{i}"}  # fmt: skip
        r = clients[c].post(f"/v1/namespaces/bench/{namespace}/memories", json=body)
        return r.status_code, r.text

    return add


def _start_server(
    tmp: Path, name: str, store: Path, clients: int, env: dict[str, str], *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``budgetmem serve`` with ``tmp/<name>.toml`` on a free port, once /healthz answers."""
    port = _free_port()
    log_file = (tmp / f"{name}.log").open("wb")
    cmd = [sys.executable, "-m", "budgetmem", "--config", str(tmp / f"{name}.toml"), "serve", "--store", str(store),
           "--port", str(port), "--log-level", "warning", "--queue", str(4 * clients), *extra]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # a loaded shared machine can take minutes to import torch
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.time() > deadline:
            _stop(server)
            raise SystemExit(f"server did not start: {(tmp / f'{name}.log').read_text()[-2000:]}")
        time.sleep(0.3)


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def _searches(clients: list[httpx.Client], questions: list[str], args: argparse.Namespace, pid: int) -> dict[str, Any]:
    """Searches from every client in ``clients`` for ``args.seconds``."""
    def search(c: int, i: int) -> tuple[int, str]:
        q = questions[(c * 37 + i) % len(questions)]
        r = clients[c].post("/v1/namespaces/bench/locomo/search", json={"query": q, "k": 5})
        return r.status_code, r.text

    return _load(len(clients), args.seconds, search, pid)


def _precision_recall(tmp: Path, precision: str) -> dict[str, Any]:
    """Evidence recall@5 on every scored LoCoMo dev question, with queries embedded in
    ``precision`` and in float32 (the library, default hybrid retrieval, MiniLM)."""
    import numpy as np
    from _evidence import load_questions, recall

    from budgetmem.ingest.ingest import ingest_histories
    from budgetmem.ingest.load import load_histories
    from budgetmem.store import Store

    histories = load_histories(LOCOMO)
    turns = {h.name: {t.dia_id for s in h.sessions for t in s.turns if t.dia_id} for h in histories}
    scored, _ = load_questions(json.loads(LOCOMO.read_text()), turns)
    settings = load_settings(tmp / "server.toml")
    log(f"precision: LoCoMo dev ({len(histories)} conversations) into a library store, {len(scored)} questions")
    out: dict[str, Any] = {"questions": len(scored)}
    auto = Encoder(replace(settings.encoder, query_precision=precision), settings.models_dir)
    full = Encoder(replace(settings.encoder, query_precision="float32"), settings.models_dir)
    with Store(tmp / "precision.db") as store:
        report = ingest_histories(store, "locomo", histories, full, 256)
        ns_of = {n.history: n.namespace for n in report.namespaces}
        tops: dict[str, list[tuple[int, ...]]] = {}
        for name, enc in ((precision, auto), ("float32", full)):
            searcher = Searcher(store, enc, settings.retrieval)
            found, tops[name] = [], []
            for q in scored:
                hits = searcher.search(ns_of[q.sample_id], q.question, k=5)
                tops[name].append(tuple(int(h.chunk.id or 0) for h in hits))
                found.append(recall(q.evidence, {d for h in hits for d in h.chunk.dia_ids}))
            out[f"recall_{name}"] = float(np.mean(found))
        texts = [q.question for q in scored]
        cos = [float(auto.encode_query(t) @ full.encode_query(t)) for t in texts]
        out["min_cosine"] = min(cos)
        out["mean_cosine"] = float(np.mean(cos))
        out["same_top5"] = float(np.mean([a == b for a, b in zip(tops[precision], tops["float32"])]))
    log(f"precision: recall@5 {out[f'recall_{precision}']:.3f} ({precision}) vs float32 {out['recall_float32']:.3f}")
    return out


def _cores(r: dict[str, Any]) -> list[str]:
    c = r["cpu"]
    return [f"{c['server_cores']:.2f}", f"{c['own_cpu_s'] / c['wall_s']:.2f}", f"{c['others_cores']:.2f}"]


def _codes(r: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))


if __name__ == "__main__":
    sys.exit(main())
