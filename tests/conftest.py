"""Shared fixtures. Encoder-backed tests use the fast all-MiniLM-L6-v2 (prepared by `make test`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from budgetmem.encoder import Encoder
from budgetmem.settings import EncoderSettings, Settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "conversation.json"
LOCOMO_DEV = REPO.parent / "shared" / "data" / "locomo" / "locomo_dev.json"


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    return Encoder(EncoderSettings(name="all-minilm-l6-v2"))


@pytest.fixture(scope="session")
def minilm_settings() -> Settings:
    return Settings(encoder=EncoderSettings(name="all-minilm-l6-v2"))


@pytest.fixture(scope="session")
def locomo_dev() -> Path:
    if not LOCOMO_DEV.exists():
        pytest.fail(f"LoCoMo dev subset not found at {LOCOMO_DEV} (it lives in ../shared beside the repo)")
    return LOCOMO_DEV


class WhitespaceCounter:
    """A token counter whose tokens are whitespace-separated words: easy to check by hand."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        import re

        return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


@pytest.fixture
def words() -> WhitespaceCounter:
    return WhitespaceCounter()


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
