"""Evaluation sets: the histories to store and the questions to ask of them.

One loader per format, all returning an :class:`EvalSet`:

- ``locomo``: ``locomo10.json``; categories 1-4 by default, 5 (adversarial) on request;
- ``longmemeval``: ``longmemeval_s_cleaned.json`` / ``longmemeval_oracle.json``; each question
  brings its own haystack (one history per question) and a ``question_date``;
- ``hotpotqa``: the MemAgent long-context format; one history of passages per question;
- ``jsonl``: budgetmem's own format for users' data (see ``budgetmem.ingest.jsonl``).

Chunk sizes and answer styles per dataset follow routing paper Table 4 and App. C.1-C.3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History, optional_text
from budgetmem.ingest.hotpotqa import parse_hotpotqa, record_name
from budgetmem.ingest.jsonl import parse_jsonl
from budgetmem.ingest.load import read_json, read_text
from budgetmem.ingest.locomo import parse_locomo
from budgetmem.ingest.longmemeval import parse_longmemeval
from budgetmem.settings import Settings

__all__ = ["EvalItem", "EvalSet", "DATASETS", "DEFAULTS", "LOCOMO_CATEGORIES", "load_eval_set", "dataset_settings"]

# Answer style and chunk size per dataset (routing paper Table 4: 256-token chunks for the
# chats, 1,024 for HotpotQA documents; answer prompts per App. C.1-C.3). Users' JSONL data
# is scored like LoCoMo, with short-phrase answers.
DEFAULTS: dict[str, tuple[str, int]] = {
    "locomo": ("locomo", 256),
    "longmemeval": ("longmemeval", 256),
    "hotpotqa": ("hotpotqa", 1024),
    "jsonl": ("locomo", 256),
}

# Category codes of the LoCoMo evaluation code (Maharana et al., 2024).
LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


@dataclass(frozen=True)
class EvalItem:
    id: str
    """Unique within the set (LoCoMo ``conv-26:q12``, a LongMemEval ``question_id``, ...)."""
    history: str
    """The history the question is asked of (its namespace suffix in the store)."""
    question: str
    answers: tuple[str, ...]
    """Gold answers; the first is the reference where a metric takes one."""
    category: str
    """A label to group results by (LoCoMo ``single-hop``, LongMemEval ``question_type``, ...)."""
    code: int | None = None
    """LoCoMo's numeric category, which its F1 rules depend on."""
    question_date: str | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSet:
    dataset: str
    source: str
    histories: tuple[History, ...]
    items: tuple[EvalItem, ...]
    answer_style: str
    chunk_tokens: int

    def history(self, name: str) -> History:
        for h in self.histories:
            if h.name == name:
                return h
        raise KeyError(name)


def _answers(value: Any, where: str) -> tuple[str, ...]:
    # An empty list would leave LoCoMo's F1 without its reference (answers[0]) and make a
    # question no answer can get right elsewhere: say so while loading.
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where} has an empty list of answers", hint="give at least one gold answer")
        return tuple(str(v) for v in value)
    return (str(value),)


def _locomo(path: Path, adversarial: bool) -> EvalSet:
    data = read_json(path)
    histories = parse_locomo(data, str(path))
    wanted = {1, 2, 3, 4, 5} if adversarial else {1, 2, 3, 4}
    items = []
    for sample, h in zip(data, histories):
        for i, q in enumerate(sample.get("qa") or []):
            code = q.get("category")
            if code not in wanted:
                continue
            # Category 5 has no answer: the right reply says the information is not there.
            gold = q.get("answer", q.get("adversarial_answer", "")) if code != 5 else "Not mentioned in the conversation"
            items.append(
                EvalItem(
                    id=f"{h.name}:q{i}", history=h.name, question=str(q["question"]),
                    answers=_answers(gold, f"{path}: {h.name} question {i}"),
                    category=LOCOMO_CATEGORIES[code], code=code, evidence=tuple(str(e) for e in q.get("evidence") or ()),
                )
            )  # fmt: skip
    return EvalSet("locomo", str(path), tuple(histories), tuple(items), *DEFAULTS["locomo"])


def _longmemeval(path: Path, adversarial: bool) -> EvalSet:
    data = read_json(path)
    histories = parse_longmemeval(data, str(path))
    items = []
    for rec, h in zip(data, histories):
        if "question" not in rec or "answer" not in rec:
            raise InputError(f"{path}: record {h.name} needs 'question' and 'answer'")
        items.append(
            EvalItem(
                id=h.name, history=h.name, question=str(rec["question"]), answers=_answers(rec["answer"], f"{path}: {h.name}"),
                category=str(rec.get("question_type", "all")),
                question_date=optional_text(rec.get("question_date"), f"{path}: {h.name} question_date"),
                evidence=tuple(str(s) for s in rec.get("answer_session_ids") or ()),
            )
        )  # fmt: skip
    return EvalSet("longmemeval", str(path), tuple(histories), tuple(items), *DEFAULTS["longmemeval"])


def _hotpotqa(path: Path, adversarial: bool) -> EvalSet:
    data = read_json(path)
    histories = parse_hotpotqa(data, str(path))
    items = []
    for i, rec in enumerate(data):
        if not isinstance(rec.get("input"), str) or "answers" not in rec:
            raise InputError(f"{path}: record {i} needs an 'input' question and an 'answers' list")
        name = record_name(rec, i)
        items.append(
            EvalItem(id=name, history=name, question=rec["input"], answers=_answers(rec["answers"], f"{path}: record {i}"),
                     category=str(rec.get("type", "all")))
        )  # fmt: skip
    return EvalSet("hotpotqa", str(path), tuple(histories), tuple(items), *DEFAULTS["hotpotqa"])


def _jsonl(path: Path, adversarial: bool) -> EvalSet:
    records = parse_jsonl(read_text(path), str(path))
    items = []
    for r in records:
        for j, q in enumerate(r.questions):
            gold = q.get("answers", q.get("answer"))
            if not isinstance(q.get("question"), str) or gold is None:
                raise InputError(f"{path} line {r.line}: question {j} needs 'question' and 'answer' (or 'answers')")
            items.append(
                EvalItem(
                    id=str(q.get("id", f"{r.history.name}:q{j}")), history=r.history.name, question=q["question"],
                    answers=_answers(gold, f"{path} line {r.line}: question {j}"), category=str(q.get("category", "all")),
                    question_date=optional_text(q.get("question_date"), f"{path} line {r.line}: question {j} question_date"),
                )
            )  # fmt: skip
    return EvalSet("jsonl", str(path), tuple(r.history for r in records), tuple(items), *DEFAULTS["jsonl"])


DATASETS: dict[str, Callable[[Path, bool], EvalSet]] = {
    "locomo": _locomo,
    "longmemeval": _longmemeval,
    "hotpotqa": _hotpotqa,
    "jsonl": _jsonl,
}


def load_eval_set(dataset: str, path: str | Path, *, adversarial: bool = False) -> EvalSet:
    """Read ``path`` as ``dataset``; ``adversarial`` adds LoCoMo category 5."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}", hint=f"use one of: {', '.join(DATASETS)}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p}", hint="check the --data path")
    try:
        out = DATASETS[dataset](p, adversarial)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{p} does not look like a {dataset} file ({type(exc).__name__}: {exc})") from None
    if not out.items:
        raise InputError(f"{p}: no questions to evaluate", hint="check the file and the --dataset name")
    ids = [i.id for i in out.items]
    if len(set(ids)) != len(ids):
        raise InputError(f"{p}: question ids are not unique")
    return out


def dataset_settings(settings: Settings, dataset: str, *, style: str | None = None, chunk_tokens: int | None = None) -> Settings:
    """The dataset's answer style and chunk size (routing paper Table 4), unless overridden."""
    if dataset not in DEFAULTS:
        raise InputError(f"unknown dataset {dataset!r}", hint=f"use one of: {', '.join(DEFAULTS)}")
    d_style, d_chunk = DEFAULTS[dataset]
    return settings.replace(pipeline__answer_style=style or d_style, chunking__max_tokens=chunk_tokens or d_chunk)
