"""A run directory: what run it holds (its identity), the rows it has written, its CSV logs.

The same command re-run in the same directory resumes: the identity is compared with the
one on disk, and a directory that holds a different run is refused rather than mixed. Rows
are appended one JSON line at a time (a torn last line is cut on resume); CSV logs are
trimmed to the last checkpoint so a resumed run logs each step once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError
from budgetmem.eval.results import ResultsFile

__all__ = ["RunDir", "append_csv", "read_csv", "trim_csv", "write_atomic"]


class RunDir:
    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def claim(self, identity: dict[str, Any], *, file: str, what: str = "run", extra: dict[str, Any] | None = None) -> None:
        """Refuse a directory holding another run; then (re)write the identity file.

        ``extra`` is stored beside the identity without being compared (e.g. ``--limit``: a
        larger limit extends the same run). Without it the file holds the identity alone."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / file
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                raise InputError(
                    f"{path} is unreadable, so {self.out} cannot be checked to hold this {what}",
                    hint="use a new --out directory (or delete the file if the directory holds this very run)",
                ) from None
            before = saved.get("identity") if extra is not None else saved
            if before != identity:
                diff = sorted(k for k in identity if (before or {}).get(k) != identity[k])
                raise InputError(
                    f"{self.out} holds a different {what} (differs in: {', '.join(diff) or 'format'})",
                    hint="use a new --out directory",
                )
        record = {"identity": identity, **extra} if extra is not None else identity
        write_atomic(path, json.dumps(record, indent=2) + "\n")

    def results(self, name: str = "results.jsonl") -> tuple[ResultsFile, dict[str, dict[str, Any]], int]:
        """The results file (a torn last line cut), its rows by id, and the bytes cut."""
        results = ResultsFile(self.out / name)
        torn = results.repair()
        return results, {r["id"]: r for r in results.rows()}, torn


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: a
    process killed mid-write leaves the old file (or none), never a truncated one. The
    identity file is read back by every resume, so a torn one would stop the run for good."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def append_csv(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def trim_csv(path: Path, fields: list[str], last_step: int) -> None:
    """Drop rows logged after ``last_step`` (a kill between a log line and the checkpoint)."""
    rows = read_csv(path)
    keep = [r for r in rows if int(r["step"]) <= last_step]
    if len(keep) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(keep)
    tmp.replace(path)
