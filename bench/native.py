"""Embedded LLM speed with and without llama.cpp weight repacking, per rung of the ladder.

    .venv/bin/python bench/native.py [--prompt-tokens 1500] [--gen-tokens 200] [--repeats 3]

Each measurement is one child process (``budgetmem.llm.probe``, as ``budgetmem doctor``
runs it): load, evaluate a prompt of a fixed length, generate a fixed number of tokens
greedily. Repack on and off alternate within each repeat, so both see the same machine
load; the table reports medians and the on/off ratio. Writes the ``native`` section of
docs/BENCHMARKS.md and bench/results/native.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _report import _cpu_ticks, log, machine_info, save_json, table, write_section  # noqa: E402

from budgetmem.doctor import llama_build_info  # noqa: E402
from budgetmem.llm.native import choose_repack, cpu_info  # noqa: E402
from budgetmem.llm.probe import check_model  # noqa: E402
from budgetmem.llm.repack import REFERENCE_CALL, call_seconds  # noqa: E402
from budgetmem.models import LADDER, model_path  # noqa: E402


HEADER = ["model", "weights repacked", "prompt tok/s off", "on", "on/off", "gen tok/s off", "on", "on/off", "crashes", "auto"]


def _others_cores(t0: float, ticks0: tuple[int, int, int], child0: float) -> float:
    """Cores busy with work other than our child processes while we measured."""
    wall = time.perf_counter() - t0
    total, idle, steal = (b - a for a, b in zip(ticks0, _cpu_ticks()))
    t = os.times()
    ours = t.children_user + t.children_system + t.user + t.system - child0
    return max(0.0, (total - idle - steal) / os.sysconf("SC_CLK_TCK") - ours) / wall if wall > 0 else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt-tokens", type=int, default=1500)
    p.add_argument("--gen-tokens", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(LADDER.values()))
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    p.add_argument("--report-only", action="store_true", help="re-render the section from bench/results/native.json")
    args = p.parse_args()

    cpu = cpu_info()
    saved = ROOT / "bench" / "results" / "native.json"
    if args.report_only:
        data = json.loads(saved.read_text())
        for key in ("prompt_tokens", "gen_tokens", "repeats"):
            setattr(args, key, data["settings"][key])
        argv = data.get("argv", [])
        _report(args, argv, cpu, data["llama"], data["results"], data["others_cores"], data["machine"], data.get("date"))
        return 0
    build = llama_build_info()
    results: dict[str, dict[str, list[dict]]] = {}
    t = os.times()
    t0, ticks0, child0 = time.perf_counter(), _cpu_ticks(), t.children_user + t.children_system + t.user + t.system
    for name in args.models:
        path = model_path(name)
        results[name] = {"on": [], "off": []}
        for rep in range(args.repeats):
            for mode in ("on", "off") if rep % 2 == 0 else ("off", "on"):
                r = check_model(path, name=name, repack=mode == "on", prompt_tokens=args.prompt_tokens,
                                gen_tokens=args.gen_tokens, n_ctx=args.prompt_tokens + args.gen_tokens + 64,
                                timeout_s=900, amx=cpu.has_amx)  # fmt: skip
                if not r.ok:
                    log(f"{name} repack {mode}: {r.error}")
                else:
                    log(f"{name} repack {mode} #{rep + 1}: load {r.load_s:.2f} s, prompt {r.prompt_tps:.1f} tok/s, "
                        f"gen {r.gen_tps:.1f} tok/s, buffers {','.join(r.buffers)}")  # fmt: skip
                results[name][mode].append(r.to_dict())
    others = _others_cores(t0, ticks0, child0)
    machine = machine_info()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    save_json(saved, {"settings": {k: v for k, v in vars(args).items() if k != "report_only"}, "argv": sys.argv[1:],
                      "date": stamp, "machine": machine, "cpu": cpu.to_dict(), "llama": build, "others_cores": others,
                      "results": results})  # fmt: skip
    _report(args, sys.argv[1:], cpu, build, results, others, machine, stamp)
    return 0


def _report(args, argv, cpu, build, results, others, machine, stamp) -> None:  # type: ignore[no-untyped-def]
    """Write the section and print the table (from a fresh run or the saved one)."""

    def med(rows: list[dict], key: str) -> float:
        ok = [x[key] for x in rows if x["ok"]]
        return statistics.median(ok) if ok else float("nan")

    rows = []
    for name, by in results.items():
        on_p, off_p = med(by["on"], "prompt_tps"), med(by["off"], "prompt_tps")
        on_g, off_g = med(by["on"], "gen_tps"), med(by["off"], "gen_tps")
        repacked = any(x.get("repacked") for x in by["on"])
        crashed = sum(1 for m in by.values() for x in m if not x["ok"])
        if not repacked:
            auto = "off (the same load either way)"
        else:  # the rule repack="auto" applies, on these medians (budgetmem.llm.repack)
            ratio = call_seconds({"prompt_tps": off_p, "gen_tps": off_g}) / call_seconds({"prompt_tps": on_p, "gen_tps": on_g})
            auto = f"{'on' if ratio > 1 else 'off'} (call {ratio:.2f}x)"
        rows.append([name, "yes" if repacked else "no (format not repacked)", f"{off_p:.1f}", f"{on_p:.1f}", f"{on_p / off_p:.2f}x",
                     f"{off_g:.1f}", f"{on_g:.1f}", f"{on_g / off_g:.2f}x", crashed, auto])  # fmt: skip
    choice = choose_repack("auto", cpu)
    lines = [
        "## Native: embedded LLM speed with and without weight repacking",
        "",
        f"Measured {stamp} on {machine['cpu']} ({cpu.vendor}), {cpu.cores} cores, features "
        f"{' '.join(cpu.reported_flags())}; AMX: {'yes' if cpu.has_amx else 'no'}. llama-cpp-python "
        f"{build['llama_cpp_python']} (`{build['system_info']}`).",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/native.py', *argv])}`. Each cell is the median of "
        f"{args.repeats} child processes ({args.prompt_tokens}-token prompt, then {args.gen_tokens} greedy tokens, all threads); "
        f"on and off alternate, so both see the same load. Other work on the machine during the run: "
        f"{others:.2f} cores on average (of {cpu.cores}).",
        "",
        table(HEADER, rows),
        "",
        f"`auto` is what `[llm] repack = \"auto\"` picks on these rates: repacking where it runs a "
        f"{REFERENCE_CALL[0]:,}-token prompt plus {REFERENCE_CALL[1]} generated tokens (a typical module or answer call) "
        "faster; in use it decides from its own short check children, once per machine and model. "
        f"On this CPU: {choice.reason}. On a CPU with AMX, auto turns repacking off without a check: "
        "llama.cpp's AMX repack crashes in decode there.",
    ]
    write_section(Path(args.out), "native", "\n".join(lines))
    log(f"wrote the native section of {args.out}")
    print(table(HEADER, rows))


if __name__ == "__main__":
    sys.exit(main())
