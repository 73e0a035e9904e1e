"""``budgetmem report DIR...``: compare evaluation runs (table + PNG of score vs cost)."""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="compare evaluation runs side by side, with a score-vs-cost plot")
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories written by budgetmem eval")
    p.add_argument("--png", metavar="FILE", help="where to draw the plot (default: report.png beside the first run)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.eval.report import compare_table, load_run, plot_runs

    runs = [load_run(d) for d in args.runs]
    png = Path(args.png) if args.png else Path(args.runs[0]).resolve().parent / "report.png"
    drawn = plot_runs(runs, png, title=f"{runs[0].dataset} {runs[0].split}")
    if args.json:
        print_json(
            {"png": str(drawn), "runs": [{"path": str(r.path), "system": r.label, "n": r.n, "partial": r.partial,
                                          "overall": r.overall, "categories": r.categories} for r in runs]}
        )  # fmt: skip
        return 0
    print(compare_table(runs, markdown=args.markdown))
    print(f"\nplot: {drawn}")
    return 0
