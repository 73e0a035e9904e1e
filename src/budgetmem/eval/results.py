"""The results file of an evaluation run: one JSON line per question, appended as it goes.

A line is written whole and flushed to disk before the next question starts, so an
interrupted run loses at most the question in flight. On resume a torn last line (the
process died mid-write) is cut off, every complete line counts as done, and the run
carries on with the questions that have no line yet: nothing is lost or repeated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError

__all__ = ["ResultsFile"]


class ResultsFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def repair(self) -> int:
        """Cut a torn trailing line; returns the bytes removed."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        with self.path.open("r+b") as fh:
            fh.truncate(keep)
        return len(data) - keep

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        # Split at "\n" only: append() writes with ensure_ascii=False, so a row may hold a raw
        # U+2028 or U+0085, where str.splitlines() would cut it in two.
        for n, line in enumerate(self.path.read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path} line {n} is not valid JSON ({exc.msg})", hint="fix or remove that line") from None
        return out

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
