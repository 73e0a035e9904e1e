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


# ---------------------------------------------------------------------- store backends
# The Store contract runs on both backends. PostgreSQL is a real server from the
# wheel pg_local finds (make test installs it), one per test session in a temporary
# folder, with a fresh database per test.
@pytest.fixture(scope="session")
def pg_server():
    import shutil
    import tempfile

    from budgetmem.store import pg_local

    # Not under pytest's own temporary root: pytest sets that to mode 0700 whenever a session
    # starts, which would lock out the server's user (it runs unprivileged) mid-run.
    folder = Path(tempfile.mkdtemp(prefix="budgetmem-pg-"))
    server = pg_local.start(folder, durable=False)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_address(pg_server, request) -> str:
    import re
    import uuid

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return pg_server.create_database(name)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_address(request, tmp_path) -> str:
    """A new, empty store's address on each backend: a file path, or a fresh database."""
    if request.param == "sqlite":
        return str(tmp_path / "m.db")
    return request.getfixturevalue("pg_address")
