"""The routers' JSON files (rule maps, escalation calibrations): where the packaged ones
are, and an atomic save (temp file, then rename: an interrupted save leaves the old file)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["packaged", "save_json"]


def packaged(name: str) -> Path:
    """A file shipped in ``budgetmem/router/data/``."""
    return Path(str(resources.files("budgetmem.router") / "data" / name))


def save_json(path: str | Path, data: dict[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p
