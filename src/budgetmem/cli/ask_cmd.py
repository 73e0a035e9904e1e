"""``budgetmem ask "question"``: retrieve, run the tiered pipeline, answer, show the ledger."""

from __future__ import annotations

import argparse
import textwrap

from budgetmem.cli.common import add_store_args, print_json, settings_from
from budgetmem.pipeline.types import STRATEGIES
from budgetmem.retrieval import RETRIEVERS
from budgetmem.store import Store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ask", help="answer a question from memory through the budget-tiered pipeline")
    p.add_argument("question", metavar="QUESTION")
    add_store_args(p)
    p.add_argument("--strategy", choices=STRATEGIES, help="how tiers differ (default implementation)")
    p.add_argument(
        "--policy",
        default="mid",
        help="low | mid | high | random | a per-module map such as 'mid,filter=high,summary=low' (default mid)",
    )
    p.add_argument("--cost-weight", type=float, metavar="L", help="performance-cost knob handed to the policy")
    p.add_argument("-k", "--top-k", type=int, metavar="K", help="candidate chunks retrieved (default 5)")
    p.add_argument("--retriever", choices=RETRIEVERS, help="dense, bm25 or hybrid (default hybrid)")
    p.add_argument("--question-date", metavar="DATE", help="when the question is asked (resolves relative dates)")
    p.add_argument("--answer-llm", metavar="PROVIDER", help="answer model (default llamacpp:qwen2.5-coder-1.5b)")
    p.add_argument("--module-llm", metavar="PROVIDER", help="LLM of implementation HIGH and reasoning tiers")
    p.add_argument("--ladder", metavar="S,M,L", help="three providers for capacity tiers, small to large")
    p.add_argument("--style", choices=["locomo", "longmemeval", "hotpotqa", "plain"], help="answer prompt style")
    p.add_argument("--layout", choices=["prefix-first", "instruction-first"], help="module prompt layout")
    p.add_argument("--sequential", action="store_true", help="run the three extractors one after another")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the module cache")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.errors import ConfigError
    from budgetmem.memory import BudgetMem

    ladder = tuple(x.strip() for x in args.ladder.split(",")) if args.ladder else None
    if ladder is not None and len(ladder) != 3:
        raise ConfigError(f"--ladder needs three providers, got {len(ladder)}", hint="e.g. --ladder A,B,C")
    settings = settings_from(
        args,
        pipeline__strategy=args.strategy,
        pipeline__answer_llm=args.answer_llm,
        pipeline__module_llm=args.module_llm,
        pipeline__ladder=ladder,
        pipeline__answer_style=args.style,
        pipeline__layout=args.layout,
        pipeline__concurrent=False if args.sequential else None,
        retrieval__top_k=args.top_k,
    )
    if args.no_cache:
        settings = _without_cache(settings)  # replace() skips None values, so set it directly
    store = Store(args.store, create=False)
    store.require_namespace(args.namespace)
    with store, BudgetMem(store, args.namespace, settings=settings, policy=args.policy) as mem:
        result = mem.query(
            args.question, cost_weight=args.cost_weight, question_date=args.question_date, retriever=args.retriever
        )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"Q: {result.question}\nA: {result.answer}\n")
    print(f"strategy {result.strategy}, policy {result.policy}: " + ", ".join(f"{m} {t}" for m, t in result.tiers.items()))
    print("\nmemory:")
    for line in result.memory.splitlines() or [""]:
        print(textwrap.fill(line, width=100, initial_indent="  | ", subsequent_indent="  |   ") or "  |")
    print()
    print(result.table())
    return 0


def _without_cache(settings):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(settings, pipeline=dataclasses.replace(settings.pipeline, cache_path=None))
