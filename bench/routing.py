"""Routing benchmark (issue #18): do the learned routers earn their place against simpler
ways of spending the same money? On the LoCoMo dev subset, conversation-level test split.

Parts (each resumable: every system is an ordinary run directory under
``bench/results/routing/<strategy>/``, and module results and answers come from one
module cache, so a system that shares work with another pays for it once):

* ``--part runs``: evaluate systems (fixed tiers, naive RAG, routers, the rule router,
  escalation) on the first N test questions. Cheap systems first.
* ``--part fit``: fit the rule router's question-type prototypes and tier map, and the
  escalation confidence calibration, on the train split (writes the JSON files the
  package ships in ``src/budgetmem/router/data/``).
* ``--part frontier``: one table and PNG per strategy: every system's F1 and cost on the
  same questions, the escalation sweep over T, and paired bootstrap intervals for each
  learned router minus each baseline; each system's wall time per question.
* ``--part target``: target-cost mode over the test questions for three targets:
  realised mean extraction cost against the target, F1 at each, and a PNG of the
  running mean over the stream.

    .venv/bin/python bench/routing.py --part runs --systems low,mid,naive-rag,high --questions 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import log  # noqa: E402

from budgetmem import Settings  # noqa: E402
from budgetmem.eval import dataset_settings  # noqa: E402
from budgetmem.harness import EvalConfig, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
RESULTS = ROOT / "bench" / "results" / "routing"
DOC = ROOT / "docs" / "BENCHMARKS.md"
ROUTERS = ROOT / "bench" / "results" / "router" / "frontier"


def settings_for(args: argparse.Namespace) -> Settings:
    base = Settings().replace(
        encoder__name=args.encoder, pipeline__answer_llm=args.answer_llm, pipeline__module_llm=args.module_llm,
        pipeline__cache_path=RESULTS / "module-cache.sqlite",
    )  # fmt: skip
    return dataset_settings(base, "locomo")


def run_name(system: str) -> str:
    return "eval-" + system.replace(":", "-").replace("/", "_").replace(">", "-to-").replace("@", "-at-").replace(",", "+")


def evaluate(system: str, strategy: str, args: argparse.Namespace, split: str = "test", limit: int | None = None) -> list:
    cfg = EvalConfig(
        dataset="locomo", data=DATA, out=RESULTS / strategy / (run_name(system) + ("" if split == "test" else f"-{split}")),
        split=split, strategy=strategy, policy=system, limit=limit or args.questions, store=RESULTS / "locomo_dev.db",
    )  # fmt: skip
    log(f"{strategy}:{system} on {split} ({cfg.limit} questions)")
    return run_eval(cfg, settings_for(args), progress=False, log=log).rows


def runs(args: argparse.Namespace) -> None:
    for system in args.systems.split(";"):
        evaluate(system.strip(), args.strategy, args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["runs"], required=True)
    p.add_argument("--strategy", default="implementation")
    p.add_argument("--systems", default="low;mid;naive-rag;high", help="policies separated by ';'")
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    args = p.parse_args(argv)
    if not DATA.exists():
        print(f"LoCoMo dev subset not found at {DATA}", file=sys.stderr)
        return 2
    if args.part == "runs":
        runs(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
