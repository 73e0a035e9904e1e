"""Input formats and bad input: each error is one clear line."""

from __future__ import annotations

import pytest
from conftest import EXAMPLE, write_json

from budgetmem.errors import InputError
from budgetmem.ingest import load_histories


def test_locomo_example():
    (h,) = load_histories(EXAMPLE)
    assert h.name == "priya-tomasz" and h.format == "locomo"
    assert [s.session_id for s in h.sessions] == ["session_1", "session_2", "session_3", "session_4"]
    assert h.sessions[1].date_time == "7:45 pm on 18 March, 2024"
    first = h.sessions[0].turns[0]
    assert (first.speaker, first.dia_id) == ("Priya", "D1:1")
    assert first.render().startswith("Priya: Morning Tomasz!")


def test_locomo_sessions_in_numeric_order_and_image_captions(tmp_path):
    conv = {
        "session_10": [{"speaker": "A", "dia_id": "D10:1", "text": "ten"}],
        "session_2": [{"speaker": "B", "dia_id": "D2:1", "text": "look", "img_url": ["x"], "blip_caption": "a dog"}],
        "session_2_date_time": "1 Jan 2023",
    }
    (h,) = load_histories(write_json(tmp_path / "c.json", [{"sample_id": "x", "conversation": conv}]))
    assert [s.session_id for s in h.sessions] == ["session_2", "session_10"]
    assert h.sessions[0].turns[0].text == "look [shares an image: a dog]"


def test_locomo_dev_subset_counts(locomo_dev):
    hs = load_histories(locomo_dev)
    assert [h.name for h in hs] == ["conv-26", "conv-30", "conv-41", "conv-42", "conv-43", "conv-44"]
    assert all(h.n_turns > 300 for h in hs)


def test_longmemeval_format(tmp_path):
    rec = {
        "question_id": "q1",
        "question_type": "single-session-user",
        "question": "Where did I park?",
        "answer": "Level 3",
        "question_date": "2023/05/30 (Tue) 10:00",
        "haystack_session_ids": ["s_a", "s_b"],
        "haystack_dates": ["2023/05/20 (Sat) 09:00", "2023/05/29 (Mon) 18:30"],
        "haystack_sessions": [
            [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}],
            [{"role": "user", "content": "I parked on level 3.", "has_answer": True}],
        ],
    }
    (h,) = load_histories(write_json(tmp_path / "lme.json", [rec]))
    assert (h.name, h.format) == ("q1", "longmemeval")
    assert [(s.session_id, s.date_time) for s in h.sessions] == [
        ("s_a", "2023/05/20 (Sat) 09:00"),
        ("s_b", "2023/05/29 (Mon) 18:30"),
    ]
    turn = h.sessions[1].turns[0]
    assert (turn.speaker, turn.dia_id, turn.extra) == ("user", "s_b:0", {"has_answer": True})


def test_text_folder(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n\nbeta", encoding="utf-8")
    (tmp_path / "b.md").write_text("# gamma", encoding="utf-8")
    (tmp_path / "skip.csv").write_text("x,y", encoding="utf-8")
    hs = load_histories(tmp_path)
    assert [(h.name, h.format, h.n_turns) for h in hs] == [("a", "text", 2), ("b", "markdown", 1)]


@pytest.mark.parametrize(
    ("make", "fmt", "message"),
    [
        (lambda p: p / "missing.json", "auto", "file not found"),
        (lambda p: _write(p / "bad.json", '[{"conversation": '), "auto", "malformed JSON in"),
        (lambda p: _write(p / "data.csv", "a,b"), "auto", "unknown file type .csv"),
        (lambda p: _write(p / "x.json", '{"hello": 1}'), "auto", "cannot tell the format"),
        (lambda p: _write(p / "x.json", "[]"), "locomo", "empty history"),
        (lambda p: _write(p / "empty.txt", ""), "auto", "empty history"),
        (lambda p: _write(p / "x.json", '[{"nope": 1}]'), "locomo", "has no 'conversation'"),
        (lambda p: _write(p / "x.json", "[]"), "yaml", "unknown format 'yaml'"),
        (lambda p: _write(p / "bin.txt", b"\xff\xfe\x00bad"), "auto", "not UTF-8"),
        # Found by fuzzing: json.loads raises RecursionError and a plain ValueError too.
        (lambda p: _write(p / "deep.json", "[" * 50_000), "auto", "nested too deeply"),
        (lambda p: _write(p / "deep.jsonl", '{"sessions": ' * 3000), "auto", "nested too deeply"),
        (lambda p: _write(p / "long.json", "[" + "7" * 5000 + "]"), "locomo", "a number too long to read"),
        (lambda p: _write(p / "long.jsonl", '{"id": ' + "7" * 5000 + "}"), "jsonl", "a number too long to read"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, make, fmt, message):
    with pytest.raises(InputError) as err:
        load_histories(make(tmp_path), fmt)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", [{"conversation": {"session_1": [{"speaker": ["x"], "text": "hi"}]}}], "speaker must be a string, got list"),
        ("x.json", [{"conversation": {"session_1": [{"text": "hi"}], "session_1_date_time": {"a": 1}}}], "session_1_date_time must be a string"),
        ("x.json", [{"conversation": {"session_1": [{"text": "hi", "blip_caption": [1]}]}}], "blip_caption must be a string"),
        ("x.json", [{"haystack_sessions": [[{"role": {}, "content": "hi"}]]}], "role must be a string, got dict"),
        ("x.json", [{"haystack_sessions": [[{"role": "user", "content": "hi"}]], "haystack_dates": [[2023]]}], "date of session_1 must be a string"),
        ("x.jsonl", {"sessions": [{"date": [], "turns": ["hi"]}]}, "date must be a string, got list"),
        ("x.jsonl", {"sessions": [{"turns": [{"speaker": True, "text": "hi"}]}]}, "speaker must be a string, got bool"),
    ],
)
def test_wrong_field_types_are_input_errors(tmp_path, name, content, message):
    # Found by fuzzing: these loaded, then crashed the chunker (a list speaker is unhashable)
    # or the store (a dict date cannot be bound) with a traceback.
    with pytest.raises(InputError, match=message):
        load_histories(write_json(tmp_path / name, content))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"haystack_sessions": [5]}, "session session_1 is not a list of turns"),
        ({"haystack_sessions": [{"role": "user", "content": "hi"}]}, "is not a list of turns"),
        ({"haystack_sessions": [[]], "haystack_session_ids": 7}, "must be lists"),
        ({"haystack_sessions": [[], []], "haystack_dates": "ab"}, "must be lists"),
    ],
)
def test_longmemeval_sessions_must_be_lists(tmp_path, record, message):
    # Found by fuzzing: a number where a list belongs raised TypeError (not iterable, no
    # len()), and a string of the right length was read one character per session.
    with pytest.raises(InputError, match=message):
        load_histories(write_json(tmp_path / "x.json", [record]), "longmemeval")


def test_locomo_session_keys_are_read_as_written(tmp_path):
    # Found by fuzzing: "session_01" (and "session_\u0661", an Arabic-Indic one) parsed as
    # session 1 and was then looked up as "session_1": KeyError.
    conv = {"session_01": [{"text": "a"}], "session_01_date_time": "1 May 2023", "session_\u0661": [{"text": "b"}],
            "session_2": [{"text": "c"}]}  # fmt: skip
    (h,) = load_histories(write_json(tmp_path / "x.json", [{"conversation": conv}]))
    assert [(s.session_id, s.date_time) for s in h.sessions] == [("session_01", "1 May 2023"), ("session_2", None)]


def test_numbers_in_text_fields_are_read_as_text(tmp_path):
    content = [{"conversation": {"session_1": [{"speaker": 7, "dia_id": 1, "text": "hi"}], "session_1_date_time": 2023}}]
    (h,) = load_histories(write_json(tmp_path / "x.json", content))
    (s,) = h.sessions
    assert (s.date_time, s.turns[0].speaker, s.turns[0].dia_id) == ("2023", "7", "1")


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path
