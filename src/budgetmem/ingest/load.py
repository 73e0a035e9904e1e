"""Read any supported input into Histories, with one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History
from budgetmem.ingest.hotpotqa import looks_like_hotpotqa, parse_hotpotqa
from budgetmem.ingest.jsonl import decode_json, parse_jsonl
from budgetmem.ingest.locomo import looks_like_locomo, parse_locomo
from budgetmem.ingest.longmemeval import looks_like_longmemeval, parse_longmemeval
from budgetmem.ingest.text import TEXT_SUFFIXES, parse_text

__all__ = ["FORMATS", "load_histories", "read_text", "read_json"]

FORMATS = ("auto", "locomo", "longmemeval", "hotpotqa", "jsonl", "text", "markdown")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"file not found: {path}", hint="check the path") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})", hint="convert it to UTF-8") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory") from None


def read_json(path: Path) -> Any:
    return decode_json(read_text(path), str(path))


def _load_file(path: Path, fmt: str) -> list[History]:
    suffix = path.suffix.lower()
    if fmt == "auto":
        if suffix in TEXT_SUFFIXES:
            fmt = TEXT_SUFFIXES[suffix]
        elif suffix == ".json":
            data = read_json(path)
            if looks_like_locomo(data):
                return parse_locomo(data, str(path))
            if looks_like_longmemeval(data):
                return parse_longmemeval(data, str(path))
            if looks_like_hotpotqa(data):
                return parse_hotpotqa(data, str(path))
            raise InputError(
                f"cannot tell the format of {path}", hint="pass --format locomo, longmemeval or hotpotqa"
            )
        elif suffix == ".jsonl":
            fmt = "jsonl"
        else:
            raise InputError(
                f"unknown file type {suffix or '(none)'} for {path}",
                hint="use .json (LoCoMo / LongMemEval / HotpotQA), .jsonl, .txt or .md, or pass --format",
            )
    if fmt == "locomo":
        return parse_locomo(read_json(path), str(path))
    if fmt == "longmemeval":
        return parse_longmemeval(read_json(path), str(path))
    if fmt == "hotpotqa":
        return parse_hotpotqa(read_json(path), str(path))
    if fmt == "jsonl":
        return [r.history for r in parse_jsonl(read_text(path), str(path))]
    if fmt in ("text", "markdown"):
        return [parse_text(read_text(path), path, fmt)]
    raise InputError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def load_histories(path: str | Path, fmt: str = "auto") -> list[History]:
    """Histories in a file, or in every .txt/.md file of a folder (one History each)."""
    p = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if not p.exists():
        raise InputError(f"file not found: {p}", hint="check the path")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise InputError(f"no .txt or .md files in folder {p}")
        histories = [h for f in files for h in _load_file(f, fmt)]
    else:
        histories = _load_file(p, fmt)
    if not histories or all(h.n_turns == 0 for h in histories):
        raise InputError(f"empty history: no turns or text found in {p}", hint="nothing to store")
    return histories
