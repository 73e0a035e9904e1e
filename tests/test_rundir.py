"""A run directory's identity file survives a process killed while writing it.

Found by the kill -9 campaign of ``budgetmem train`` (bench/campaigns/kill_runs.py): a kill
between the truncation of ``train.json`` and its write left an empty file, and every re-run
of the same command then stopped with a JSONDecodeError traceback instead of resuming.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from budgetmem.errors import InputError
from budgetmem.harness.rundir import RunDir

IDENTITY = {"dataset": "locomo", "steps": 4}


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after it runs, no except clause catches it."""


def _die_mid_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next Path.write_text truncates its file, writes nothing, and the process 'dies'
    (the state a kill between open(O_TRUNC) and write() leaves)."""

    def torn(self: Path, data: str, encoding: str | None = None, errors: str | None = None, newline: str | None = None) -> int:
        self.open("wb").close()
        raise Killed

    monkeypatch.setattr(Path, "write_text", torn)


@pytest.mark.parametrize("before", [False, True], ids=["first-claim", "re-claim"])
def test_a_claim_killed_mid_write_leaves_a_directory_the_same_run_resumes(tmp_path, monkeypatch, before):
    run = RunDir(tmp_path / "run")
    if before:
        run.claim(IDENTITY, file="train.json")
    with monkeypatch.context() as m:
        _die_mid_write(m)
        with pytest.raises(Killed):
            run.claim(IDENTITY, file="train.json")
    run.claim(IDENTITY, file="train.json")  # the re-run: resumes, no traceback
    assert json.loads((tmp_path / "run" / "train.json").read_text(encoding="utf-8")) == IDENTITY
    with pytest.raises(InputError):
        run.claim({**IDENTITY, "steps": 5}, file="train.json")  # and still refuses another run


def test_an_unreadable_identity_file_is_a_clean_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"dataset": "loc', encoding="utf-8")
    with pytest.raises(InputError, match="unreadable"):
        RunDir(tmp_path / "run").claim(IDENTITY, file="run.json")
