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

_SESSION_KEY = re.compile(r"session_([0-9]+)")


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
        # In numeric order, each read by its own key: "session_01" is not "session_1".
        keys = sorted((int(m.group(1)), k) for k in conv if (m := _SESSION_KEY.fullmatch(k)))
        sessions = []
        for _, key in keys:
            turns_raw = conv[key]
            if not isinstance(turns_raw, list):
                raise InputError(f"{source}: {name} {key} is not a list of turns")
            turns = tuple(_turn(t, f"{source}: {name} {key}") for t in turns_raw)
            if turns:
                date = optional_text(conv.get(f"{key}_date_time"), f"{source}: {name} {key}_date_time")
                sessions.append(Session(key, date, turns, "chat"))
        histories.append(History(name=name, source=source, format="locomo", sessions=tuple(sessions)))
    return histories
