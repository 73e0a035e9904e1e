"""budgetmem's own JSONL format for users' data: one history per line, with its questions.

    {"id": "alice",
     "sessions": [
        {"id": "s1", "date": "2024-05-08 10:00", "turns": [{"speaker": "Alice", "text": "..."}, "plain text turn"]},
        {"id": "handbook", "kind": "document", "text": "A whole document ..."}],
     "questions": [
        {"id": "q1", "question": "...", "answer": "..." , "category": "travel", "question_date": "2024-06-01"},
        {"question": "...", "answers": ["...", "..."]}]}

``questions`` is optional for ingest and needed for evaluation. Blank lines and lines
starting with ``#`` are skipped. Errors name the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History, Session, Turn, optional_text
from budgetmem.userfiles import decode_json

__all__ = ["JsonlRecord", "parse_jsonl", "decode_json"]


@dataclass(frozen=True)
class JsonlRecord:
    history: History
    questions: tuple[dict[str, Any], ...]
    line: int


def _session(raw: Any, where: str, j: int) -> Session:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: session {j} must be an object")
    sid = str(raw.get("id", f"session_{j + 1}"))
    date = optional_text(raw.get("date"), f"{where}: session {sid} date")
    if raw.get("kind") == "document" or "text" in raw and "turns" not in raw:
        if not isinstance(raw.get("text"), str):
            raise InputError(f"{where}: document session {sid} needs a 'text' string")
        return Session(sid, date, (Turn(text=raw["text"], dia_id=f"{sid}:0"),), "document")
    turns_raw = raw.get("turns")
    if not isinstance(turns_raw, list):
        raise InputError(f"{where}: session {sid} needs a 'turns' list (or 'text' for a document)")
    turns = []
    for k, t in enumerate(turns_raw):
        if isinstance(t, str):
            turns.append(Turn(text=t, dia_id=f"{sid}:{k}"))
        elif isinstance(t, dict) and isinstance(t.get("text"), str):
            speaker = optional_text(t.get("speaker"), f"{where}: session {sid} turn {k} speaker")
            turns.append(Turn(text=t["text"], speaker=speaker, dia_id=str(t.get("id", f"{sid}:{k}"))))
        else:
            raise InputError(f"{where}: session {sid} turn {k} must be a string or an object with 'text'")
    return Session(sid, date, tuple(turns), "chat")


def parse_jsonl(text: str, source: str) -> list[JsonlRecord]:
    records: list[JsonlRecord] = []
    names: set[str] = set()
    # Lines end at "\n" only (a trailing "\r" is JSON whitespace). str.splitlines() would also
    # cut at U+2028, U+0085, U+001C..., which json.dumps(ensure_ascii=False) leaves raw in strings.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source} line {n}"
        raw = decode_json(line, where, lines=False)
        if not isinstance(raw, dict) or not isinstance(raw.get("sessions"), list):
            raise InputError(f"{where}: each line is an object with a 'sessions' list")
        name = str(raw.get("id", f"history-{len(records) + 1}"))
        if name in names:
            raise InputError(f"{where}: history id {name!r} appears twice")
        names.add(name)
        sessions = tuple(_session(s, where, j) for j, s in enumerate(raw["sessions"]))
        questions = raw.get("questions", [])
        if not isinstance(questions, list) or not all(isinstance(q, dict) for q in questions):
            raise InputError(f"{where}: 'questions' must be a list of objects")
        history = History(name=name, source=source, format="jsonl", sessions=tuple(s for s in sessions if s.turns))
        records.append(JsonlRecord(history, tuple(questions), n))
    return records
