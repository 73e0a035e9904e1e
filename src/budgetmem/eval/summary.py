"""Summaries of an evaluation run: per category and overall, as Markdown, CSV and JSON.

F1 and judge scores get a mean and a 95% percentile-bootstrap interval; costs are means
per question. The system's cost (extraction + answer) and the judge's cost are kept apart.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from budgetmem.eval.metrics import bootstrap_ci

__all__ = ["summarise", "summary_markdown", "summary_csv"]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _group(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    f1 = [r["metrics"]["f1"] for r in rows]
    judged = [r["metrics"]["judge"] for r in rows if r["metrics"].get("judge") is not None]
    judge_failed = sum(1 for r in rows if r.get("judge") and r["judge"].get("score") is None)
    f1_lo, f1_hi = bootstrap_ci(f1)
    j_lo, j_hi = bootstrap_ci(judged)
    return {
        "n": len(rows),
        "f1": _mean(f1), "f1_ci": [f1_lo, f1_hi],
        "em": _mean([r["metrics"]["em"] for r in rows]),
        "judge": _mean(judged), "judge_ci": [j_lo, j_hi], "judged": len(judged), "judge_failed": judge_failed,
        "extraction_usd": _mean([r["cost"]["extraction_usd"] for r in rows]),
        "answer_usd": _mean([r["cost"]["answer_usd"] for r in rows]),
        "total_usd": _mean([r["cost"]["total_usd"] for r in rows]),
        "tokens": _mean([r["cost"]["prompt_tokens"] + r["cost"]["completion_tokens"] for r in rows]),
        "wall_s": _mean([r["cost"]["wall_s"] for r in rows]),
        "judge_usd": _mean([r["judge"]["usd"] for r in rows if r.get("judge")]) if judged or judge_failed else 0.0,
        "parse_failures": sum(r.get("parse_failures", 0) for r in rows),
    }  # fmt: skip


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"overall": {...}, "categories": {name: {...}}}``; categories in first-seen order."""
    cats: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cats.setdefault(str(r["category"]), []).append(r)
    return {"overall": _group(rows), "categories": {c: _group(rs) for c, rs in cats.items()}}


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}"


def _ci(pair: Sequence[float]) -> str:
    return "-" if any(math.isnan(v) for v in pair) else f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def _lines(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*summary["categories"].items(), ("overall", summary["overall"])]


HEADER = ["category", "n", "F1", "F1 95% CI", "EM", "judge", "judge 95% CI", "extraction µ$/q", "answer µ$/q",
          "tokens/q", "wall s/q", "judge µ$/q"]  # fmt: skip


def summary_markdown(summary: dict[str, Any], title: str, notes: Sequence[str] = ()) -> str:
    from budgetmem.cli.table import markdown_table

    rows = [
        [name, g["n"], _pct(g["f1"]), _ci(g["f1_ci"]), _pct(g["em"]), _pct(g["judge"]), _ci(g["judge_ci"]),
         f"{g['extraction_usd'] * 1e6:.1f}", f"{g['answer_usd'] * 1e6:.1f}", f"{g['tokens']:.0f}", f"{g['wall_s']:.1f}",
         f"{g['judge_usd'] * 1e6:.1f}"]
        for name, g in _lines(summary)
    ]  # fmt: skip
    out = [f"# {title}", "", *notes, "", markdown_table(HEADER, rows), ""]
    return "\n".join(out)


def summary_csv(summary: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["category", "n", "f1", "f1_lo", "f1_hi", "em", "judge", "judge_lo", "judge_hi", "judged", "judge_failed",
                "extraction_usd", "answer_usd", "total_usd", "tokens", "wall_s", "judge_usd", "parse_failures"])  # fmt: skip
    for name, g in _lines(summary):
        w.writerow([name, g["n"], g["f1"], *g["f1_ci"], g["em"], g["judge"], *g["judge_ci"], g["judged"], g["judge_failed"],
                    g["extraction_usd"], g["answer_usd"], g["total_usd"], g["tokens"], g["wall_s"], g["judge_usd"],
                    g["parse_failures"]])  # fmt: skip
    return buf.getvalue()
