"""``budgetmem ask "question"``: retrieve, run the tiered pipeline, answer, show the ledger."""

from __future__ import annotations

import argparse
import textwrap

from budgetmem.cli.common import add_pipeline_args, add_store_args, pipeline_settings, print_json
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import STRATEGIES
from budgetmem.settings import Settings
from budgetmem.store import Store, open_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ask", help="answer a question from memory through the budget-tiered pipeline")
    p.add_argument("question", metavar="QUESTION")
    add_store_args(p)
    p.add_argument("--strategy", choices=STRATEGIES, help="how tiers differ (default implementation)")
    p.add_argument(
        "--policy",
        default="mid",
        help="low | mid | high | random | a per-module map such as 'mid,filter=high,summary=low' | router:PATH "
        "(a trained router, or a frontier directory of them) | rules[:PATH] (question-type rule router) | "
        "escalate:CHEAP>COSTLY@T (cheap first, the costly policy when confidence is below T) | packed-rag (episodic + "
        "retrieved memories under a token budget, cited answer; default mid)",
    )
    p.add_argument("--cost-weight", type=float, metavar="L", help="performance-cost knob handed to the policy")
    p.add_argument(
        "--target-usd", type=float, metavar="X",
        help="target-cost mode: keep this namespace's mean extraction USD per query at X (router:DIR or escalate: "
        "policies; the controller's state is kept in the store)",
    )  # fmt: skip
    p.add_argument("--reset-budget", action="store_true", help="forget the namespace's target-cost state first")
    p.add_argument("--question-date", metavar="DATE", help="when the question is asked (resolves relative dates)")
    add_pipeline_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.memory import BudgetMem

    settings = pipeline_settings(args, pipeline__strategy=args.strategy)
    store = open_store(args.store, create=False)
    store.require_namespace(args.namespace)
    if args.policy.strip().lower() == "packed-rag":
        return _run_packed(args, store, settings)
    with store, BudgetMem(store, args.namespace, settings=settings, policy=args.policy) as mem:
        if args.reset_budget:
            mem.reset_budget()
        result = mem.query(
            args.question, cost_weight=args.cost_weight, question_date=args.question_date, retriever=args.retriever,
            target_usd=args.target_usd,
        )  # fmt: skip
    if args.json:
        print_json(result.to_dict())
        return _status(result)
    print(f"Q: {result.question}\nA: {_answer(result)}\n")
    print(f"strategy {result.strategy}, policy {result.policy}: " + ", ".join(f"{m} {t}" for m, t in result.tiers.items()))
    _print_routing(result)
    _print_memory_and_ledger(result)
    return _status(result)


def _run_packed(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    """The packed-rag system (selective-write paper §III-H) on one question: the answer
    without citation markers, the ids it cited and whether they check out."""
    from budgetmem.memory import BudgetMem

    with store, BudgetMem(store, args.namespace, settings=settings) as mem:
        result = mem.query_packed(args.question, question_date=args.question_date, k=args.top_k)
    if args.json:
        print_json(result.to_dict())
        return _status(result)
    cites, packing = result.context["citations"], result.context["packing"]
    print(f"Q: {result.question}\nA: {_answer(result)}\n")
    verdict = "all valid" if cites["all_valid"] else "none" if not cites["cited"] else "NOT all valid"
    bad = ", ".join(f"{i['id']} ({i['reason']})" for i in cites["invalid"])
    print(f"cited memories: {', '.join(map(str, cites['cited'])) or '-'} ({verdict}{'; ' + bad if bad else ''})")
    print(
        f"context: {packing['n_episodic']} episodic + {packing['n_semantic']} semantic memories "
        f"({packing['n_compressed']} compressed), {packing['used_tokens']} of {packing['budget']} tokens "
        f"({packing['counted_with']})"
    )
    _print_memory_and_ledger(result)
    return _status(result)


def _status(result: QueryResult) -> int:
    """1 when the query ran (and was paid) but gave no answer, as ``doctor`` says a problem."""
    return 0 if result.answer.strip() else 1


def _answer(result: QueryResult) -> str:
    """The answer, or why there is none: a blank line must not read as an answer."""
    if result.answer.strip():
        return result.answer
    return "(none: the answer model's reply held no answer; its raw text is the answer step's raw_output, --json)"


def _print_routing(result: QueryResult) -> None:
    """How the policy decided: the rule router's type, escalation's confidence, the budget."""
    r, e, b = (result.context.get(k) for k in ("routing", "escalation", "budget"))
    if r:
        print(f"question type {r['type']} ({r['how']}); map row: " + ", ".join(f"{m} {t}" for m, t in r["map"].items()))
    if e:
        conf = "-" if e["confidence"] is None else f"{e['confidence']:.3f}"
        print(f"escalation: confidence {conf} vs threshold {e['threshold']:g}: " + ("escalated" if e["escalated"] else "kept"))
    if b:
        print(f"budget: target ${b['target_usd']:g}/query, mean ${b['mean_usd']:.6g} over {b['queries']} queries, "
              f"knob {b['knob']:.3f}")  # fmt: skip


def _print_memory_and_ledger(result: QueryResult) -> None:
    print("\nmemory:")
    for line in result.memory.splitlines() or [""]:
        print(textwrap.fill(line, width=100, initial_indent="  | ", subsequent_indent="  |   ") or "  |")
    print()
    print(result.table())
