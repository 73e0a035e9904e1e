"""bench/routing.py fits the rule map and the escalation calibration on a typed sample of the
train split, not on its first questions (one conversation's, with no single-hop question)."""

from __future__ import annotations

import json
import sys
from collections import Counter

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import routing as bench  # noqa: E402

from budgetmem.eval.datasets import load_eval_set  # noqa: E402
from budgetmem.eval.splits import make_split  # noqa: E402


def test_the_fit_sample_has_each_type_alike_and_spans_the_split(tmp_path, locomo_dev) -> None:  # type: ignore[no-untyped-def]
    data = load_eval_set("locomo", locomo_dev)
    train = list(make_split(data, "train", seed=0).items)
    assert "single-hop" not in {i.category for i in train[:30]}  # why the first N would not do
    path = tmp_path / "sample.json"
    ids = bench.fit_sample(train, 30, path)
    assert json.loads(path.read_text(encoding="utf-8"))["train"] == ids
    kind = {i.id: i.category for i in train}
    assert Counter(kind[i] for i in ids) == {"temporal": 7, "multi-hop": 7, "single-hop": 7, "open-domain": 7}
    assert len({i.split(":")[0] for i in ids}) == len({i.history for i in train})  # every train conversation
    order = [i.id for i in train]
    assert ids == sorted(ids, key=order.index)  # in the split's order
    # The file is an ordinary split file: the harness reads it, and it holds train questions only.
    sample = make_split(data, "train", seed=0, split_file=path)
    assert [i.id for i in sample.items] == ids
