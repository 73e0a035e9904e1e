"""What every reliability campaign shares: the trial record and the campaign contract.

A campaign is a named, seeded series of independent trials. A trial attacks the system
once (a kill -9 at a random point, a generated input, a hostile reply, a full disk) and
then checks the promises a memory system makes: nothing acknowledged is lost, nothing is
stored twice, every failure is visible. It reports what it found as a :class:`Trial`; the
driver only counts, saves and renders.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Trial", "Campaign"]


@dataclass
class Trial:
    """One trial's outcome.

    ``failures`` names every broken promise (empty: the trial passed). ``lost`` counts
    items the system had acknowledged (or seen) and no longer has; ``duplicates`` counts
    items stored more than once. ``detail`` is free-form evidence for the JSON results
    (where the kill landed, which exit code, ...).
    """

    index: int
    cases: int = 1
    """How many attacks the trial made: 1 for a kill, N for a batch of N generated inputs."""
    failures: list[str] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and self.lost == 0 and self.duplicates == 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        return cls(**data)


@dataclass(frozen=True)
class Campaign:
    """A series of trials.

    ``setup(workdir)``, when given, runs once per run of the driver (so again on a resumed
    run) and returns a shared context: a template store, a model server, a prepared
    fixture. ``run(index, workdir, rng, shared)`` runs trial ``index`` in a fresh empty
    folder with a random source seeded from the campaign's name and the index, so a trial
    re-run after a resume attacks the same way. ``teardown(shared)`` undoes ``setup``. Keep
    trials independent: a resumed run skips the ones already saved.
    """

    name: str
    title: str
    trials: int
    run: Callable[[int, Path, random.Random, Any], Trial]
    setup: Callable[[Path], Any] | None = None
    teardown: Callable[[Any], None] | None = None
    what: str = ""
    """One sentence for the table: what a trial does and what it checks."""
