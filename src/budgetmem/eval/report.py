"""Compare evaluation runs side by side: a table and a PNG of score vs cost.

Each run is read from its ``results.jsonl`` (so an interrupted run can be reported too,
marked partial) and its ``run.json``. The plot puts the system's cost per question (USD,
extraction + answer) on the x axis and F1 (and the judge score, when every run has one)
on the y axis, one labelled point per run: the performance-cost picture of routing paper
Fig. 2 for fixed policies and baselines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError
from budgetmem.eval.results import ResultsFile
from budgetmem.eval.summary import summarise

__all__ = ["RunSummary", "load_run", "compare_table", "plot_runs"]


@dataclass(frozen=True)
class RunSummary:
    path: Path
    label: str
    dataset: str
    split: str
    n: int
    planned: int | None
    overall: dict[str, Any]
    categories: dict[str, dict[str, Any]]

    @property
    def partial(self) -> bool:
        return self.planned is not None and self.n < self.planned


def load_run(path: str | Path) -> RunSummary:
    p = Path(path)
    run_file = p / "run.json"
    if not run_file.is_file():
        raise InputError(f"{p} is not an evaluation run directory (no run.json)", hint="pass a budgetmem eval --out DIR")
    try:
        identity = json.loads(run_file.read_text(encoding="utf-8"))["identity"]
    except (json.JSONDecodeError, KeyError):
        raise InputError(f"{run_file} is not a budgetmem run file") from None
    rows = ResultsFile(p / "results.jsonl").rows()
    if not rows:
        raise InputError(f"{p} has no results yet", hint="run budgetmem eval first")
    s = summarise(rows)
    planned = identity.get("split", {}).get("questions")
    limit = json.loads(run_file.read_text(encoding="utf-8")).get("limit")
    if limit:
        planned = min(planned or limit, limit)
    return RunSummary(p, identity["system"], identity["dataset"], identity["split"]["part"], len(rows), planned,
                      s["overall"], s["categories"])  # fmt: skip


def _fmt(x: float, scale: float = 100.0, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.{digits}f}"


def compare_table(runs: list[RunSummary], *, markdown: bool = False) -> str:
    from budgetmem.tables import markdown_table, table

    head = ["run", "system", "split", "n", "F1", "F1 95% CI", "judge", "extraction µ$/q", "answer µ$/q", "total µ$/q",
            "tokens/q", "wall s/q"]  # fmt: skip
    rows = []
    for r in runs:
        o = r.overall
        ci = o["f1_ci"]
        rows.append(
            [r.path.name, r.label, r.split, f"{r.n}" + (f"/{r.planned} (partial)" if r.partial else ""), _fmt(o["f1"]),
             f"[{_fmt(ci[0])}, {_fmt(ci[1])}]", _fmt(o["judge"]), _fmt(o["extraction_usd"], 1e6),
             _fmt(o["answer_usd"], 1e6), _fmt(o["total_usd"], 1e6), f"{o['tokens']:.0f}", f"{o['wall_s']:.1f}"]
        )  # fmt: skip
    return markdown_table(head, rows) if markdown else table(head, rows)


def plot_runs(runs: list[RunSummary], png: str | Path, title: str = "score vs cost") -> Path:
    """Scatter of F1 (and judge, if every run has it) against total USD per question."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plotting needs matplotlib", hint="pip install 'budgetmem[plot]'") from None
    metrics = [("f1", "F1 (%)")]
    if all(not math.isnan(r.overall["judge"]) for r in runs):
        metrics.append(("judge", "LLM judge (%)"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        for r in runs:
            x = r.overall["total_usd"] * 1e6
            y = 100 * r.overall[key]
            marker = "s" if r.label in ("naive-rag", "full-context") else "o"
            ax.scatter([x], [y], marker=marker, s=48)
            ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("cost per question (µ$, extraction + answer)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{title}: {label.split(' (')[0]}")
    fig.tight_layout()
    out = Path(png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
