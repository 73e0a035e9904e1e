"""One trial of each reliability campaign of issue 20's items 5 and 6 (hostile model servers,
exhausted resources), run the way ``bench/reliability.py`` runs it: the driver finds the
campaign, the trial gets its own folder and its seeded random source, and it must find
every promise kept. The full runs are in bench/results/reliability/."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import reliability  # noqa: E402

# (campaign, trial): trials chosen to be quick; 27 is a 429 attacked in-process, 12 a lock
# let go after a few seconds.
TRIALS = [("hostile_llm", 27), ("disk_full", 0), ("store_readonly", 0), ("store_locked", 12), ("store_future", 0)]


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory):
    """The campaigns by name, each with its shared context (set up once per setup function)."""
    found = {c.name: c for c in reliability.campaigns()}
    shared: dict[Any, Any] = {}

    def get(name: str):
        c = found[name]
        if c.setup is not None and c.setup not in shared:
            shared[c.setup] = (c, c.setup(tmp_path_factory.mktemp(name)))
        return c, shared[c.setup][1] if c.setup is not None else None

    yield get
    for c, ctx in shared.values():
        if c.teardown is not None:
            c.teardown(ctx)


def test_the_driver_finds_the_campaigns() -> None:
    names = {c.name for c in reliability.campaigns()}
    assert {name for name, _ in TRIALS} <= names


@pytest.mark.parametrize(("name", "index"), TRIALS)
def test_one_trial_of_each_campaign(campaigns, name: str, index: int, tmp_path: Path) -> None:
    campaign, shared = campaigns(name)
    trial = campaign.run(index, tmp_path, random.Random(reliability._seed(name, index)), shared)
    assert trial.index == index and trial.cases >= 1 and trial.detail
    assert trial.ok, trial.failures
    assert trial.lost == 0 and trial.duplicates == 0
