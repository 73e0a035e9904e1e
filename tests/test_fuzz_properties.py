"""Property tests: every promise in tests/fuzz_props.py on a few hundred generated cases.

Derandomized, so the suite sees the same cases on every run (a failure here is a real
regression, not bad luck); bench/campaigns/fuzz.py runs the same properties with fresh
seeds and many more cases. Each property together takes a few seconds.
"""

from __future__ import annotations

import pytest
from fuzz_props import PROPERTIES, Property, run_property

EXAMPLES = {"loaders": 250, "chunker": 200, "dates": 300, "parsers": 200}
"""Cases per property: enough to reach every strategy branch, small enough for the suite."""


@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.name for p in PROPERTIES])
def test_property_holds(prop: Property) -> None:
    run = run_property(prop, EXAMPLES[prop.name])
    assert run.failure is None, f"{prop.name}: {prop.what}; broken by {run.failure}"
    # hypothesis stops early when a strategy can only make a few distinct cases; every
    # strategy here is rich, so this many cases means the property really ran.
    assert run.cases >= EXAMPLES[prop.name] // 2, run


def test_the_named_properties_are_all_there() -> None:
    assert [p.name for p in PROPERTIES] == list(EXAMPLES)


# The properties can fail: each is run once against a broken implementation and must
# report it, not pass (unshrunk: finding it is the point, and shrinking takes seconds).
def _by_name(name: str) -> Property:
    return next(p for p in PROPERTIES if p.name == name)


def test_the_loader_property_catches_a_stray_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import budgetmem.ingest as ingest

    real = ingest.load_histories

    def broken(path, fmt="auto"):  # noqa: ANN001, ANN202 - the loader's own signature
        if path.is_file() and path.stat().st_size == 0:
            raise KeyError("sessions")  # what a loader must never let out
        return real(path, fmt)

    monkeypatch.setattr(ingest, "load_histories", broken)
    run = run_property(_by_name("loaders"), 250, shrink=False)
    assert run.failure and run.failure.startswith("KeyError"), run


def test_the_chunker_property_catches_a_lost_character(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import budgetmem.ingest as ingest

    real = ingest.chunk_session

    def lossy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        chunks = real(*args, **kwargs)
        return [dataclasses.replace(c, text=c.text.rstrip()) for c in chunks]

    monkeypatch.setattr(ingest, "chunk_session", lossy)
    run = run_property(_by_name("chunker"), 200, shrink=False)
    assert run.failure and "AssertionError" in run.failure, run


def test_the_date_property_catches_a_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    from budgetmem.pipeline.modules import dates

    real = dates.resolve

    def fragile(text, anchor, tense=None):  # noqa: ANN001, ANN202
        if any(c.isdigit() for c in text):
            raise ValueError("day is out of range for month")
        return real(text, anchor, tense)

    monkeypatch.setattr(dates, "resolve", fragile)
    run = run_property(_by_name("dates"), 300, shrink=False)
    assert run.failure and run.failure.startswith("ValueError"), run


def test_the_parser_property_catches_a_foreign_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import budgetmem.pipeline.parsers as parsers

    def strict(text, max_items):  # noqa: ANN001, ANN202
        return json.loads(text)  # a JSONDecodeError is not a ParseError

    monkeypatch.setattr(parsers, "parse_string_list", strict)
    run = run_property(_by_name("parsers"), 200, shrink=False)
    assert run.failure and run.failure.startswith("JSONDecodeError"), run
