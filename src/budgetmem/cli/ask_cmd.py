"""``budgetmem ask "question"``: retrieve, run the tiered pipeline, answer, show the ledger."""

from __future__ import annotations

import argparse
import textwrap

from budgetmem.cli.common import add_pipeline_args, add_store_args, pipeline_settings, print_json
from budgetmem.pipeline.types import STRATEGIES
from budgetmem.store import Store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ask", help="answer a question from memory through the budget-tiered pipeline")
    p.add_argument("question", metavar="QUESTION")
    add_store_args(p)
    p.add_argument("--strategy", choices=STRATEGIES, help="how tiers differ (default implementation)")
    p.add_argument(
        "--policy",
        default="mid",
        help="low | mid | high | random | a per-module map such as 'mid,filter=high,summary=low' | router:PATH (a trained router; default mid)",
    )
    p.add_argument("--cost-weight", type=float, metavar="L", help="performance-cost knob handed to the policy")
    p.add_argument("--question-date", metavar="DATE", help="when the question is asked (resolves relative dates)")
    add_pipeline_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.memory import BudgetMem

    settings = pipeline_settings(args, pipeline__strategy=args.strategy)
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
