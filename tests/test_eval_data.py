"""Evaluation loaders (LoCoMo, LongMemEval, HotpotQA, our JSONL) and splits."""

from __future__ import annotations

import json

import pytest
from evaldata import write_hotpotqa, write_jsonl, write_longmemeval

from budgetmem.errors import InputError
from budgetmem.eval.datasets import load_eval_set
from budgetmem.eval.splits import make_split
from budgetmem.ingest import load_histories
from budgetmem.ingest.hotpotqa import split_documents


def test_locomo_categories_and_adversarial(locomo_dev):
    data = load_eval_set("locomo", locomo_dev)
    raw = json.loads(locomo_dev.read_text(encoding="utf-8"))
    expected = sum(1 for s in raw for q in s["qa"] if q.get("category") in (1, 2, 3, 4))
    assert len(data.items) == expected
    assert {i.category for i in data.items} == {"multi-hop", "temporal", "open-domain", "single-hop"}
    assert data.chunk_tokens == 256 and data.answer_style == "locomo"
    first = data.items[0]
    q0 = raw[0]["qa"][0]
    assert first.id == f"{raw[0]['sample_id']}:q0" and first.question == q0["question"]
    assert first.answers == (str(q0["answer"]),) and first.history == raw[0]["sample_id"]
    assert first.evidence == tuple(q0["evidence"])
    with_adv = load_eval_set("locomo", locomo_dev, adversarial=True)
    adv = [i for i in with_adv.items if i.code == 5]
    assert len(adv) == sum(1 for s in raw for q in s["qa"] if q.get("category") == 5) > 0
    assert all(i.answers == ("Not mentioned in the conversation",) for i in adv)


def test_longmemeval_one_history_per_question(tmp_path):
    data = load_eval_set("longmemeval", write_longmemeval(tmp_path / "lme.json"))
    assert [i.id for i in data.items] == ["q-001", "q-002_abs"]
    a, b = data.items
    assert a.category == "single-session-user" and a.question_date == "2023/05/30 (Tue) 10:00"
    assert b.answers == ("29",) and a.evidence == ("h1",)
    assert [h.name for h in data.histories] == ["q-001", "q-002_abs"]
    assert [s.date_time for s in data.history("q-001").sessions] == ["2023/05/01 (Mon) 09:00", "2023/05/20 (Sat) 18:30"]
    assert data.answer_style == "longmemeval" and data.chunk_tokens == 256


def test_hotpotqa_documents_and_ids(tmp_path):
    path = write_hotpotqa(tmp_path / "hotpot.json")
    data = load_eval_set("hotpotqa", path)
    assert [i.id for i in data.items] == ["hp-1", "7"]
    assert data.chunk_tokens == 1024 and data.answer_style == "hotpotqa"
    h = data.history("hp-1")
    assert [s.session_id for s in h.sessions] == ["doc_1", "doc_2", "doc_3"]
    assert all(s.kind == "document" for s in h.sessions)
    assert h.sessions[1].turns[0].text == "Marta Keller\nMarta Keller (born in Basel) was a Swiss architect."
    # The ingest reader recognises the format by itself.
    assert [x.name for x in load_histories(path)] == ["hp-1", "7"]


def test_split_documents_edge_cases():
    assert split_documents("no markers at all") == [("0", "no markers at all")]
    assert split_documents("intro\nDocument 2: two\nDocument 5:\nfive") == [("0", "intro"), ("2", "two"), ("5", "five")]


def test_jsonl_format(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl")
    data = load_eval_set("jsonl", path)
    assert [i.id for i in data.items] == ["ana-1", "ana-2", "ana-3", "raj-1", "raj-2"]
    assert data.items[2].answers == ("Barro Studio", "Barro") and data.items[3].category == "all"
    assert data.items[4].question_date == "2024-07-02"
    ana = data.history("ana")
    assert ana.sessions[1].turns[1].text == "Ben: Which studio?" and ana.sessions[0].turns[0].speaker == "Ana"
    raj = data.history("raj")
    assert raj.sessions[0].kind == "document" and raj.sessions[1].kind == "chat"
    assert [h.name for h in load_histories(path)] == ["ana", "raj"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "sessions": []}\n{"id": "b", "sessions": [}\n', "line 2"),
        ('{"id": "a", "sessions": []}\n{"id": "a", "sessions": []}\n', "appears twice"),
        ('{"id": "a", "sessions": [{"id": "s", "turns": [3]}]}\n', "turn 0"),
        ('{"id": "a", "sessions": [], "questions": [{"question": "q?"}]}\n', "needs 'question' and 'answer'"),
        ('{"id": "a", "sessions": []}\n', "no questions"),
    ],
)
def test_jsonl_errors_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_eval_set("jsonl", path)


def test_jsonl_lines_end_at_newline_only(tmp_path):
    # Found by fuzzing: JSON keeps U+0085, U+2028 and U+001C raw inside strings (json.dumps with
    # ensure_ascii=False writes them so), and str.splitlines() used to cut the line there.
    text = "a\x85b\u2028c\x1cd"
    path = tmp_path / "raw.jsonl"
    record = {"id": "h", "sessions": [{"turns": [text]}], "questions": [{"question": text, "answer": text}]}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n", encoding="utf-8")
    data = load_eval_set("jsonl", path)
    assert data.histories[0].sessions[0].turns[0].text == text and data.items[0].answers == (text,)


def test_question_date_must_be_text(tmp_path):
    # Found by fuzzing: a list question_date loaded, then broke the temporal module's regexes.
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"sessions": [{"turns": ["hi"]}], "questions": [{"question": "q", "answer": "a",
                                "question_date": ["2024"]}]}), encoding="utf-8")  # fmt: skip
    with pytest.raises(InputError, match="question_date must be a string, got list"):
        load_eval_set("jsonl", path)


@pytest.mark.parametrize(
    ("dataset", "content"),
    [
        ("locomo", [{"conversation": {"session_1": [{"text": "hi"}]}, "qa": [{"question": "q", "answer": [], "category": 1}]}]),
        ("hotpotqa", [{"input": "q", "context": "Document 1: x", "answers": []}]),
    ],
)
def test_an_empty_answer_list_is_an_input_error(tmp_path, dataset, content):
    # Found by fuzzing: LoCoMo's scorer reads answers[0], so the run died at the first score.
    path = tmp_path / "x.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError, match="empty list of answers"):
        load_eval_set(dataset, path)


def test_results_file_keeps_rows_with_line_separators(tmp_path):
    from budgetmem.eval.results import ResultsFile

    results = ResultsFile(tmp_path / "results.jsonl")
    results.append({"id": "q1", "answer": "one\u2028two\x85three"})
    results.append({"id": "q2", "answer": "x"})
    assert [r["answer"] for r in results.rows()] == ["one\u2028two\x85three", "x"]


def test_loader_errors(tmp_path):
    with pytest.raises(InputError, match="unknown dataset"):
        load_eval_set("squad", tmp_path / "x.json")
    with pytest.raises(InputError, match="file not found"):
        load_eval_set("locomo", tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"input": "q"', encoding="utf-8")
    with pytest.raises(InputError, match="malformed JSON"):
        load_eval_set("hotpotqa", bad)
    bad.write_text(json.dumps([{"input": "q", "context": "Document 1: x"}]), encoding="utf-8")
    with pytest.raises(InputError, match="answers"):
        load_eval_set("hotpotqa", bad)


def test_locomo_split_is_by_conversation(locomo_dev):
    data = load_eval_set("locomo", locomo_dev)
    parts = {p: make_split(data, p, seed=0) for p in ("train", "val", "test")}
    groups = [set(parts[p].groups) for p in ("train", "val", "test")]
    assert [len(g) for g in groups] == [4, 1, 1]  # 6 conversations at 6/2/2: round(3.6), round(4.8) - 4, rest
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert set().union(*groups) == {i.history for i in data.items}
    for p, split in parts.items():
        assert {i.history for i in split.items} == set(split.groups)
        assert "conversation-level 6/2/2, seed 0" in split.method
    assert sum(len(s.items) for s in parts.values()) == len(data.items)
    assert make_split(data, "test", seed=0).groups == parts["test"].groups  # seeded: the same every time
    assert {make_split(data, "test", seed=s).groups for s in range(6)} != {parts["test"].groups}


def test_question_level_split_and_split_file(tmp_path):
    lines = [
        {"id": f"h{i}", "sessions": [{"id": "s", "turns": [f"turn {i}"]}],
         "questions": [{"id": f"q{i}-{j}", "question": "?", "answer": "a"} for j in range(2)]}
        for i in range(5)
    ]  # fmt: skip
    path = tmp_path / "ten.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    data = load_eval_set("jsonl", path)
    sizes = [len(make_split(data, p, seed=3).items) for p in ("train", "val", "test")]
    assert sizes == [6, 2, 2]
    assert len(make_split(data, "all").items) == 10
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": ["h0", "h1"], "val": ["q2-0"], "test": ["h4", "q3-1"]}), encoding="utf-8")
    test = make_split(data, "test", split_file=split_file)
    assert [i.id for i in test.items] == ["q3-1", "q4-0", "q4-1"]
    assert test.method == "split file split.json"
    split_file.write_text(json.dumps({"train": ["h0"], "test": ["h0"]}), encoding="utf-8")
    with pytest.raises(InputError, match="in both"):
        make_split(data, "test", split_file=split_file)
    split_file.write_text(json.dumps({"test": ["nobody"]}), encoding="utf-8")
    with pytest.raises(InputError, match="neither a question id nor a history"):
        make_split(data, "test", split_file=split_file)
    with pytest.raises(InputError, match="unknown split"):
        make_split(data, "dev")


@pytest.mark.parametrize(
    ("data", "match"),
    [(bytes(range(256)), "not UTF-8 text"), (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"), (None, "is a folder")],
)
def test_a_split_file_that_cannot_be_read_is_an_input_error(tmp_path, data, match):
    # Found by the CLI fuzz campaign: `eval --split-file FOLDER` ended in an IsADirectoryError
    # traceback, and deeply nested JSON in a RecursionError.
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "h", "sessions": [{"turns": ["t"]}], "questions": [{"question": "?", "answer": "a"}]}))
    split_file = tmp_path / "split.json"
    if data is None:
        split_file.mkdir()
    else:
        split_file.write_bytes(data)
    with pytest.raises(InputError, match=match) as err:
        make_split(load_eval_set("jsonl", path), "test", split_file=split_file)
    assert "\n" not in str(err.value)


def test_the_benchmarks_longmemeval_format_file_loads(tmp_path):
    """bench/longmemeval_mini.py writes our six LongMemEval-format questions at run time."""
    import importlib.util
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "bench" / "longmemeval_mini.py"
    spec = importlib.util.spec_from_file_location("longmemeval_mini", source)
    assert spec is not None and spec.loader is not None
    mini = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mini)
    path = mini.write(tmp_path / "lme" / "mini.json")
    data = load_eval_set("longmemeval", path)
    assert len(data.items) == 6 and data.items[0].answers == ("a border collie",)
    assert all(data.history(i.history).sessions for i in data.items)
    # Every question has an answer session among its haystack, marked as LongMemEval marks it.
    for rec in json.loads(path.read_text(encoding="utf-8")):
        assert set(rec["answer_session_ids"]) <= set(rec["haystack_session_ids"])
        assert any(t.get("has_answer") for s in rec["haystack_sessions"] for t in s)
    stamp = path.stat().st_mtime_ns
    mini.write(path)  # same content: not rewritten, so a run's data hash and mtime stay put
    assert path.stat().st_mtime_ns == stamp
