"""LongMemEval records (``longmemeval_s_cleaned.json`` / ``longmemeval_oracle.json``).

A file is a list of questions; each carries its own haystack: ``haystack_session_ids``,
``haystack_dates`` and ``haystack_sessions`` (lists of ``{role, content, has_answer?}``).
Each question's haystack becomes one History named by its ``question_id``.
"""

from __future__ import annotations

from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History, Session, Turn, optional_text

__all__ = ["parse_longmemeval", "looks_like_longmemeval"]


def looks_like_longmemeval(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "haystack_sessions" in data[0]


def parse_longmemeval(data: Any, source: str) -> list[History]:
    if not isinstance(data, list):
        raise InputError(f"{source}: a LongMemEval file is a JSON list of question records")
    histories = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("haystack_sessions"), list):
            raise InputError(f"{source}: record {i} has no 'haystack_sessions' list")
        name = str(rec.get("question_id", f"question-{i}"))
        raw_sessions = rec["haystack_sessions"]
        ids = rec.get("haystack_session_ids") or [f"session_{j + 1}" for j in range(len(raw_sessions))]
        dates = rec.get("haystack_dates") or [None] * len(raw_sessions)
        if not isinstance(ids, list) or not isinstance(dates, list):
            raise InputError(f"{source}: {name} haystack_session_ids and haystack_dates must be lists")
        if len(ids) != len(raw_sessions) or len(dates) != len(raw_sessions):
            raise InputError(f"{source}: {name} has {len(raw_sessions)} sessions but {len(ids)} ids / {len(dates)} dates")
        sessions = []
        for sid, date, turns_raw in zip(ids, dates, raw_sessions):
            if not isinstance(turns_raw, list):
                raise InputError(f"{source}: {name} session {sid} is not a list of turns")
            turns = []
            for j, t in enumerate(turns_raw):
                if not isinstance(t, dict) or not isinstance(t.get("content"), str):
                    raise InputError(f"{source}: {name} session {sid} turn {j} needs 'role' and 'content'")
                extra = {"has_answer": bool(t["has_answer"])} if "has_answer" in t else {}
                role = optional_text(t.get("role"), f"{source}: {name} session {sid} turn {j} role")
                turns.append(Turn(text=t["content"], speaker=role, dia_id=f"{sid}:{j}", extra=extra))
            if turns:
                sessions.append(Session(str(sid), optional_text(date, f"{source}: {name} date of {sid}"), tuple(turns), "chat"))
        histories.append(History(name=name, source=source, format="longmemeval", sessions=tuple(sessions)))
    return histories
