"""``budgetmem doctor``: what this machine can run, with one child-process generation per model."""

from __future__ import annotations

import argparse
import sys

from budgetmem.cli.common import print_json, settings_from
from budgetmem.tables import table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor",
        help="CPU features, llama.cpp build, prepared models (sha256) and a test generation per model",
        description="Report what this machine can run. Each generation runs in a child process, so a native "
        "crash is a one-line error naming the model and the likely cause. Exit status 1 if a prepared model "
        "cannot run or fails its checksum.",
    )
    p.add_argument("--repack", choices=("auto", "on", "off"), help="weight repacking to test (default: the settings' [llm] repack)")
    p.add_argument("--compare", action="store_true", help="run each model with repacking on and off even where the choice is fixed (e.g. AMX)")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models")
    p.add_argument("--prompt-tokens", type=int, default=256, metavar="N", help="prompt length of each generation (default 256)")
    p.add_argument("--gen-tokens", type=int, default=16, metavar="N", help="tokens generated (default 16)")
    p.add_argument("--no-verify", action="store_true", help="skip re-hashing the prepared models")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S", help="seconds per child process (default 300)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.doctor import diagnose
    from budgetmem.errors import InputError
    from budgetmem.models import get_model

    if args.prompt_tokens < 2 or args.gen_tokens < 1:
        raise InputError("--prompt-tokens must be >= 2 and --gen-tokens >= 1")
    if not 0 < args.timeout < float("inf"):  # also refuses nan; subprocess cannot wait an infinite time
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    settings = settings_from(args)
    only = [get_model(n).name for n in args.models] if args.models else None
    quiet = args.json or not sys.stderr.isatty()
    report = diagnose(
        root=settings.models_dir, repack=args.repack or settings.llm.repack, compare=args.compare,
        verify_sha=not args.no_verify, prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
        timeout_s=args.timeout, only=only, query_setting=settings.encoder.query_precision,
        progress=(lambda _: None) if quiet else (lambda msg: print(f"doctor: {msg} ...", file=sys.stderr)),
    )  # fmt: skip
    if args.json:
        print_json(report.to_dict())
        return 1 if report.problems else 0
    cpu = report.cpu
    print(f"cpu        {cpu['model']} ({cpu['vendor']}), {cpu['cores']} cores")
    print(f"features   {' '.join(cpu['features']) or 'none reported'}; AMX: {'yes' if cpu['amx'] else 'no'}")
    print(f"llama.cpp  llama-cpp-python {report.llama['llama_cpp_python']}")
    print(f"           {report.llama['system_info']}")
    print(f"repack     {report.repack_mode} -> {report.repack_choice}")
    print(f"encoder    queries embedded in {report.query_precision}")
    print()
    print(table(["model", "kind", "status", "sha256", "path"],
                [[m.name, m.kind, m.state, m.sha256, m.path] for m in report.models], max_width=70))  # fmt: skip
    print()
    if report.generations:
        print(f"one generation per prepared model, each in a child process "
              f"({report.prompt_tokens} prompt + {report.gen_tokens} generated tokens):")  # fmt: skip
        rows = [[g.model, "on" if g.repack else "off", "ok" if g.ok else (g.signal or "failed"), ",".join(g.buffers) or "-",
                 round(g.load_s, 2), round(g.prompt_tps, 1), round(g.gen_tps, 1)] for g in report.generations]  # fmt: skip
        print(table(["model", "repack", "result", "weight buffers", "load s", "prompt tok/s", "gen tok/s"], rows))
    else:
        print("no embedded LLM is prepared (run: budgetmem models prepare smollm2-135m)")
    if report.decisions:
        print("\nhow the embedded backend loads each model here:")
        for name, how in report.decisions.items():
            print(f"  {name}: {how}")
    for g in report.generations:
        if not g.ok:
            print(f"error: {g.error}", file=sys.stderr)
    if report.problems:
        print(f"\n{len(report.problems)} problem(s): this machine cannot run every prepared model as configured", file=sys.stderr)
        return 1
    return 0
