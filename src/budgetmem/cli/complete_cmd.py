"""``budgetmem complete "prompt" --provider P``: one LLM call, with its tokens, price and cost.

A quick way to check a backend and what it will cost before pointing the pipeline at it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("complete", help="one LLM call with its token counts, latency and USD cost")
    p.add_argument("prompt", metavar="PROMPT")
    p.add_argument(
        "--provider",
        default="llamacpp:smollm2-135m",
        help="llamacpp:<model> or openai:<model>[@<base_url>] (default llamacpp:smollm2-135m)",
    )
    p.add_argument("--max-tokens", type=int, default=64, metavar="N")
    p.add_argument("--grammar", metavar="FILE", help="GBNF grammar file that constrains the output")
    p.add_argument("--prices", metavar="FILE", help="price table (TOML or JSON) over the defaults")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.errors import InputError
    from budgetmem.llm import make_llm

    settings = settings_from(args, prices_file=Path(args.prices) if args.prices else None)
    grammar = None
    if args.grammar:
        try:
            grammar = Path(args.grammar).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read grammar file {args.grammar}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"grammar file {args.grammar} is not UTF-8 text (byte {exc.start})", hint="GBNF is text") from None
    llm = make_llm(args.provider, settings=settings, models_dir=settings.models_dir)
    out = llm.complete(args.prompt, max_tokens=args.max_tokens, grammar=grammar)
    if args.json:
        print_json(out.to_dict())
        return 0
    print(out.text.strip() or "(empty reply)")  # a blank line would read as nothing having come back
    print(
        f"\n[{out.model}] {out.prompt_tokens} prompt + {out.completion_tokens} completion tokens, "
        f"{out.latency_s:.2f} s, ${out.usd:.8f}\n[price] ${out.price.input_per_m}/${out.price.output_per_m} "
        f"per 1M in/out tokens: {out.price.source}"
    )
    if out.retries:
        print(f"[retried] after {', '.join(out.retries)}")
    return 0
