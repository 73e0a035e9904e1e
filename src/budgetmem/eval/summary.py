"""Summaries of an evaluation run: per category and overall, as Markdown, CSV and JSON.

F1 and judge scores get a mean and a 95% percentile-bootstrap interval; costs are means
per question. The system's cost (extraction + answer) and the judge's cost are kept apart.

Rows whose trace carries a citation check (the packed-rag system, selective-write paper
§III-H) add citation validity: the share of questions whose citations are all valid (at
least one, every one a live chunk that was in the context) and the mean of distinct ids
cited. Runs without citations keep exactly the columns they always had.
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
        **_citations(rows),
    }  # fmt: skip


def _citation_record(row: dict[str, Any]) -> dict[str, Any] | None:
    found = (row.get("trace") or {}).get("context", {}).get("citations")
    return found if isinstance(found, dict) else None


def _citations(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Citation validity over the rows that carry a check; nothing when none do."""
    checks = [c for c in map(_citation_record, rows) if c is not None]
    if not checks:
        return {}
    return {
        "cited_questions": len(checks),
        "citations_valid": _mean([1.0 if c.get("all_valid") else 0.0 for c in checks]),
        "cited_ids": _mean([float(c.get("n_cited", 0)) for c in checks]),
        "uncited": sum(1 for c in checks if not c.get("n_cited")),
    }


def _has_citations(summary: dict[str, Any]) -> bool:
    return "citations_valid" in summary["overall"]


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
CITATION_HEADER = ["citations valid %", "cited ids/q"]
"""Appended when the rows carry citation checks (selective-write paper §III-H)."""


def summary_markdown(summary: dict[str, Any], title: str, notes: Sequence[str] = ()) -> str:
    from budgetmem.tables import markdown_table

    rows = [
        [name, g["n"], _pct(g["f1"]), _ci(g["f1_ci"]), _pct(g["em"]), _pct(g["judge"]), _ci(g["judge_ci"]),
         f"{g['extraction_usd'] * 1e6:.1f}", f"{g['answer_usd'] * 1e6:.1f}", f"{g['tokens']:.0f}", f"{g['wall_s']:.1f}",
         f"{g['judge_usd'] * 1e6:.1f}"]
        for name, g in _lines(summary)
    ]  # fmt: skip
    header = HEADER
    if _has_citations(summary):
        header = [*HEADER, *CITATION_HEADER]
        for row, (_, g) in zip(rows, _lines(summary)):
            row += [_pct(g["citations_valid"]), f"{g['cited_ids']:.2f}"] if "citations_valid" in g else ["-", "-"]
    out = [f"# {title}", "", *notes, "", markdown_table(header, rows), ""]
    return "\n".join(out)


def summary_csv(summary: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cited = _has_citations(summary)
    w.writerow(["category", "n", "f1", "f1_lo", "f1_hi", "em", "judge", "judge_lo", "judge_hi", "judged", "judge_failed",
                "extraction_usd", "answer_usd", "total_usd", "tokens", "wall_s", "judge_usd", "parse_failures",
                *(["citations_valid", "cited_ids"] if cited else [])])  # fmt: skip
    for name, g in _lines(summary):
        w.writerow([name, g["n"], g["f1"], *g["f1_ci"], g["em"], g["judge"], *g["judge_ci"], g["judged"], g["judge_failed"],
                    g["extraction_usd"], g["answer_usd"], g["total_usd"], g["tokens"], g["wall_s"], g["judge_usd"],
                    g["parse_failures"],
                    *([g.get("citations_valid", ""), g.get("cited_ids", "")] if cited else [])])  # fmt: skip
    return buf.getvalue()
