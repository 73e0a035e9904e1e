"""Answer-step candidates, measured on fixed memories (issue: short answers on every style).

Replays the answer step alone over memories an evaluation run already made (its
``results.jsonl``: question, memory, gold), so every candidate reads the very same memory
and only the answer step differs. Candidates:

- ``prompt``: the per-kind prompt contract only (yes/no, date, phrase), no grammar, no
  second call;
- ``grammar``: the prompt plus a llama.cpp grammar that forces the kind's shape;
- ``shorten``: the prompt plus the second "shorten to the answer span" call on the answer
  model whenever the reply is longer than the style allows (the cost is in the ledger);
- ``before``: the answer prompts and reply extraction as they were before this contract
  (kept here, in the bench, to compare against in the same run);
- the run's own answers (``as run``), as written by the code that made the run.

Reports F1, the share of answers longer than the gold answer plus 10 tokens, answer-step
cost per question, and the share of questions that took a second call. Resumable: each
(run, candidate) is a JSONL file under ``bench/results/answers/``. Usage:

    .venv/bin/python bench/answers.py --runs DIR [DIR ...] [--candidates prompt,grammar,shorten]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import log, machine_info, table, write_section  # noqa: E402

from budgetmem.encoder import Encoder  # noqa: E402
from budgetmem.eval.datasets import EvalItem, load_eval_set  # noqa: E402
from budgetmem.eval.metrics import answer_tokens, bootstrap_ci  # noqa: E402
from budgetmem.eval.scoring import score  # noqa: E402
from budgetmem.llm import make_llm  # noqa: E402
from budgetmem.pipeline.prompts import extract_answer  # noqa: E402
from budgetmem.pipeline.runner import ANSWER_MAX_TOKENS, Pipeline, llm_resolver  # noqa: E402
from budgetmem.pipeline.types import StepRecord  # noqa: E402
from budgetmem.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "answers"
CANDIDATES = {
    "before": {"answer_grammar": False, "answer_shorten": False},
    "prompt": {"answer_grammar": False, "answer_shorten": False},
    "grammar": {"answer_grammar": True, "answer_shorten": False},
    "shorten": {"answer_grammar": False, "answer_shorten": True},
}


def before_prompt(style: str, q: str, m: str, question_date: str | None) -> str:
    """The answer prompts before the short-answer contract (one line per style, no kinds)."""
    m = m.strip() or "(no memory)"
    if style == "locomo":
        return (f"Memory:\n{m}\n\nUsing the memory above, answer the question below with a short phrase. Reuse the "
                "memory's own words where you can. If the question asks when something happened, give the date, "
                f"worked out from the dates in the memory.\n\nQuestion: {q}\nShort answer:")
    if style == "longmemeval":
        date = question_date.strip() if question_date else "not given"
        return ("Here is what you remember from earlier chats with the user. Answer the user's question from it, "
                f"briefly.\n\nChat history:\n{m}\n\nToday's date: {date}\nQuestion: {q}\nShort answer:")
    return (f"Context:\n{m}\n\nQuestion: {q}\n\nThe answer may need facts from more than one part of the context. "
            "Read it carefully and give a short, precise answer inside answer tags, like this: "
            "<answer>short answer</answer>")  # fmt: skip


def answer_with(pipe: Pipeline, candidate: str, style: str, item: EvalItem, memory: str) -> tuple[str, StepRecord]:
    if candidate != "before":
        return pipe.answer(item.question, memory, item.question_date)
    prompt = before_prompt(style, item.question.strip(), memory, item.question_date)
    text, step = pipe.answer_call(prompt, version="before", max_tokens=ANSWER_MAX_TOKENS[style])
    step.raw_output = text
    return extract_answer(text, style), step  # type: ignore[arg-type]


def too_long(answer: str, golds: list[str]) -> bool:
    """Longer than the shortest gold answer plus 10 tokens (the issue's bar), in F1's tokens."""
    return len(answer_tokens(answer)) > min(len(answer_tokens(g)) for g in golds) + 10


def replay(run: Path, candidate: str, answer_llm: str, limit: int | None = None) -> Path:
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    ident = meta["identity"]
    data = load_eval_set(ident["dataset"], meta["data"])
    items = {i.id: i for i in data.items}
    style = ident.get("answer_style") or data.answer_style
    settings = Settings().replace(pipeline__answer_llm=answer_llm, encoder__name="all-minilm-l6-v2")
    p = dataclasses.replace(settings.pipeline, cache_path=None, answer_style=style, **CANDIDATES[candidate])
    pipe = Pipeline(Encoder(settings.encoder), p, llm_resolver(None, lambda name: make_llm(name, settings=settings)))
    out = RESULTS / f"{run.parent.name}-{run.name}.{candidate}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines() if x.strip()} if out.exists() else set()
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()][:limit]
    for k, row in enumerate(rows, 1):
        if row["id"] in done:
            continue
        item = items[row["id"]]
        started = time.perf_counter()
        answer, step = answer_with(pipe, candidate, style, item, row["memory"])
        line = {
            "id": item.id, "candidate": candidate, "answer": answer, "raw": step.raw_output, "gold": list(item.answers),
            "f1": score(data, item, answer)["f1"], "usd": step.usd, "calls": len(step.calls),
            "tokens": step.prompt_tokens + step.completion_tokens, "wall_s": time.perf_counter() - started,
        }  # fmt: skip
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        log(f"{run.name} {candidate}: {k}/{len(rows)} f1={line['f1']:.2f} {answer!r}")
    return out


def summarise(name: str, rows: list[dict]) -> list[object]:
    f1 = [r["f1"] for r in rows]
    lo, hi = bootstrap_ci(f1)
    long_share = sum(too_long(r["answer"], r["gold"]) for r in rows) / len(rows)
    second = sum(r["calls"] > 1 for r in rows) / len(rows)
    usd = sum(r["usd"] for r in rows) / len(rows)
    return [name, len(rows), f"{100 * sum(f1) / len(f1):.1f}", f"[{100 * lo:.1f}, {100 * hi:.1f}]",
            f"{100 * long_share:.0f}%", f"{100 * second:.0f}%", f"{1e6 * usd:.1f}"]  # fmt: skip


def as_run(run: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()][:limit]
    return [{"f1": r["metrics"]["f1"], "answer": r["answer"], "gold": r["gold"], "usd": r["cost"]["answer_usd"], "calls": 1} for r in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="evaluation run directories to replay")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N questions of each run")
    ap.add_argument("--note", default="", help="what else was running (goes into the table's text)")
    args = ap.parse_args(argv)
    cands = [c for c in args.candidates.split(",") if c]
    m = machine_info()

    def publish(blocks: list[str]) -> str:
        text = "\n".join([
            "## Answers: short-answer candidates on fixed memories",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); answer model "
            f"`{args.answer_llm}`. {args.note}",
            "",
            "Each candidate answers the same questions from the same memories (replayed from an evaluation run), "
            "so only the answer step differs. *as run*: the answers the evaluation run itself wrote; *before*: the "
            "answer prompts and extraction as they were before the short-answer contract. Command: "
            "`.venv/bin/python bench/answers.py --runs DIR ...` (resumable).",
            "",
            *[b + "\n" for b in blocks],
        ])  # fmt: skip
        write_section(ROOT / "docs" / "BENCHMARKS.md", "answers", text)
        return text

    blocks: list[str] = []
    text = ""
    for run in args.runs:
        if not (run / "results.jsonl").exists():
            log(f"{run}: no rows yet, skipped")
            continue
        ident = json.loads((run / "run.json").read_text(encoding="utf-8"))["identity"]
        caption = f"**{run.parent.name}/{run.name}** ({ident['dataset']}, memories of `{ident['system']}`):\n\n"
        head = ["answer step", "n", "F1", "F1 95% CI", "answers > gold+10 tok", "2nd call", "answer µ$/q"]
        body = [summarise("as run", as_run(run, args.limit))]
        blocks.append(caption + table(head, body))
        for c in cands:
            out = replay(run, c, args.answer_llm, args.limit)
            body.append(summarise(c, [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]))
            blocks[-1] = caption + table(head, body)
            text = publish(blocks)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
