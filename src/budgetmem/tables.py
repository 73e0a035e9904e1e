"""Plain-text and markdown tables, for people (``--json`` is for scripts). A leaf module: the
CLI, evaluation reports, the pipeline's ledger and the benchmarks all print with it."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table", "markdown_table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int = 80) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]
    lines = []
    for j, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object, max_width: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is 'l'/'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(map(str, headers)) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
