"""LoCoMo conversations (the ``locomo10.json`` format).

A file is a list of samples; each has ``sample_id`` and ``conversation`` with
``session_N`` (a list of turns: ``speaker``, ``dia_id``, ``text``, optionally ``img_url`` /
``blip_caption``) and ``session_N_date_time``. Each sample becomes one History.
"""

from __future__ import annotations

import re
from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History, Session, Turn, optional_text

__all__ = ["parse_locomo", "looks_like_locomo"]

_SESSION_KEY = re.compile(r"^session_(\d+)$")


def looks_like_locomo(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "conversation" in data[0]


def _turn(raw: Any, where: str) -> Turn:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise InputError(f"{where}: a turn must be an object with a 'text' string")
    extra = {}
    text = raw["text"]
    caption = optional_text(raw.get("blip_caption"), f"{where}: blip_caption")
    if caption:
        # Images are shared in LoCoMo chats; their caption is the only trace a text memory keeps.
        extra["image_caption"] = caption
        text = f"{text} [shares an image: {caption}]"
    speaker = optional_text(raw.get("speaker"), f"{where}: speaker")
    return Turn(text=text, speaker=speaker, dia_id=optional_text(raw.get("dia_id"), f"{where}: dia_id"), extra=extra)


def parse_locomo(data: Any, source: str) -> list[History]:
    if not isinstance(data, list):
        raise InputError(f"{source}: a LoCoMo file is a JSON list of samples")
    histories = []
    for i, sample in enumerate(data):
        conv = sample.get("conversation") if isinstance(sample, dict) else None
        if not isinstance(conv, dict):
            raise InputError(f"{source}: sample {i} has no 'conversation' object")
        name = str(sample.get("sample_id", f"sample-{i}"))
        numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
        sessions = []
        for n in numbers:
            turns_raw = conv[f"session_{n}"]
            if not isinstance(turns_raw, list):
                raise InputError(f"{source}: {name} session_{n} is not a list of turns")
            turns = tuple(_turn(t, f"{source}: {name} session_{n}") for t in turns_raw)
            if turns:
                date = optional_text(conv.get(f"session_{n}_date_time"), f"{source}: {name} session_{n}_date_time")
                sessions.append(Session(f"session_{n}", date, turns, "chat"))
        histories.append(History(name=name, source=source, format="locomo", sessions=tuple(sessions)))
    return histories
