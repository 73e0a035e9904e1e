"""``budgetmem compress``: LLM-compressed versions of a namespace's semantic memory.

Selective-write paper §III-F3 (Eq. 11): each chunk outside the episodic window gets a note of
about ``compress_tokens`` tokens that keeps names, dates, numbers and facts, stored beside
its raw text; the packed context falls back to it when the raw text does not fit (§III-H3).
Resumable (chunks that have one are skipped) and every call's cost is reported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import add_store_option, print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("compress", help="compress a namespace's older chunks with an LLM (semantic memory)")
    add_store_option(p)
    p.add_argument("--namespace", required=True, metavar="NAME", help="whose memory: a user or agent id")
    p.add_argument("--llm", required=True, metavar="PROVIDER", help="llamacpp:<model> or openai:<model>[@<base_url>]")
    p.add_argument("--limit", type=int, metavar="N", help="at most N LLM calls this run (re-run to continue)")
    p.add_argument("--target-tokens", type=int, metavar="N", help="length of a compressed version (default 100)")
    p.add_argument("--episodic-window", type=int, metavar="N", help="newest chunks left verbatim (default 4)")
    p.add_argument("--prices", metavar="FILE", help="price table (TOML or JSON) over the defaults")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.context.compress import compress_namespace
    from budgetmem.encoder import Encoder
    from budgetmem.errors import ConfigError
    from budgetmem.llm import make_llm
    from budgetmem.settings import EncoderSettings
    from budgetmem.store import open_store

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    settings = settings_from(
        args, prices_file=Path(args.prices) if args.prices else None,
        context__compress_tokens=args.target_tokens, context__episodic_window=args.episodic_window,
    )  # fmt: skip
    store = open_store(args.store, create=False)
    with store:
        info = store.require_namespace(args.namespace)
        # Count with the namespace's own encoder tokenizer: the unit its chunk sizes are in.
        encoder = Encoder(EncoderSettings(name=info.encoder), settings.models_dir)
        llm = make_llm(args.llm, settings=settings, models_dir=settings.models_dir)
        report = compress_namespace(
            store, args.namespace, llm, settings.context, count=encoder.count_tokens,
            counted_with=f"encoder tokenizer ({encoder.name})", limit=args.limit, progress=not args.no_progress,
        )  # fmt: skip
    if args.json:
        print_json(report.to_dict())
        return 0
    r = report
    print(
        f"{r.namespace}: {r.compressed} chunk(s) compressed, {len(r.rejected)} rejected, {r.remaining} still to do; "
        f"{r.already} already had one, {r.short} already short, {r.episodic} in the episodic window (left verbatim)"
    )
    if r.compressed:
        print(f"tokens: {r.raw_tokens:,} -> {r.compressed_tokens:,} ({r.counted_with})")
    for rej in r.rejected:
        print(f"rejected chunk {rej.chunk_id}: {rej.reason}")
    print(
        f"[{r.model}] {r.calls} call(s), {r.prompt_tokens:,} prompt + {r.completion_tokens:,} completion tokens, "
        f"${r.usd:.6f}, {r.seconds:.1f} s\n[price] {r.price_source}"
    )
    return 0
