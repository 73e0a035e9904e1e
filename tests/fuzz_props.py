"""Generated inputs and the promises they must keep, in one place for two callers.

tests/test_fuzz_properties.py runs every property here on a few hundred derandomized
examples (stable in CI); bench/campaigns/fuzz.py runs the same properties for thousands
of examples per trial with a fresh seed each. A property is a hypothesis strategy that
draws one case and a ``check`` that raises (``AssertionError``, or the unexpected
exception itself) when the case breaks a promise:

- loaders (LoCoMo, LongMemEval, HotpotQA, JSONL, text, Markdown; the ingest reader and the
  evaluation reader): any file either loads into well-typed histories / questions or raises
  :class:`InputError`, whose message is one line (the CLI prints it and exits 2). A file
  of a valid shape with arbitrary content loads and keeps every text;
- the chunker: a session's chunks joined give back its rendered text exactly (no overlap,
  no whitespace normalisation), each chunk holds at most ``max_tokens`` tokens, every token
  of every turn is counted once, and ``meta["turns"]`` spans rebuild each chunk;
- the date code (the temporal module's resolver, the retrieval date filter): never raises
  on any string or any anchor day, and what it returns is well formed;
- the output parsers of model replies: a value of the promised shape or a ``ParseError``
  (``JudgeParseError`` for the judge), nothing else.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

__all__ = ["Property", "PROPERTIES", "LoaderCase", "SplitCounter"]


@dataclass(frozen=True)
class Property:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]
    what: str


# =========================================================================== text
# Characters that have broken text code before or are likely to: NUL and other controls,
# line separators that str.splitlines() honours but JSON Lines does not, letters that a
# case-insensitive regex matches to ASCII while str.lower() leaves them alone (long s,
# dotless i, dotted capital I, Kelvin sign), a BOM, combining marks, non-breaking and
# ideographic spaces, digits of other scripts, an emoji beyond the BMP.
AWKWARD = "\x00\x01\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r\t\n ſıİKé\u0301\u00a0\u3000\ufeff١٢३\U0001f600<>{}[]\",:\\"

awkward_text = st.text(alphabet=st.sampled_from(AWKWARD) | st.characters(codec="utf-8"), max_size=40)
any_text = st.one_of(st.text(max_size=40), awkward_text)


def _swap_case_lookalikes(s: str) -> str:
    return s.replace("s", "ſ").replace("i", "ı").replace("k", "K")


def words_text(vocabulary: list[str], max_words: int = 8) -> st.SearchStrategy[str]:
    """Sentences made of domain words (with case and look-alike variants) and stray text."""
    word = st.one_of(
        st.sampled_from(vocabulary),
        st.sampled_from(vocabulary).map(str.upper),
        st.sampled_from(vocabulary).map(str.capitalize),
        st.sampled_from(vocabulary).map(_swap_case_lookalikes),
        st.integers(0, 10_000).map(str),
        st.text(max_size=6),
    )
    sep = st.sampled_from([" ", " ", " ", ", ", "-", "/", ".", "\u00a0", "\n", "  ", "\t"])
    return st.lists(st.tuples(word, sep), max_size=max_words).map(lambda ws: "".join(w + s for w, s in ws))


# =========================================================================== loaders
@dataclass(frozen=True)
class LoaderCase:
    """One file (or folder, or nothing) handed to a reader.

    ``reader`` is ``ingest`` (:func:`budgetmem.ingest.load_histories`, with ``fmt``) or
    ``eval`` (:func:`budgetmem.eval.datasets.load_eval_set`, with ``fmt`` the dataset).
    ``payload`` None means the path does not exist; ``folder`` puts the file in a folder
    and hands over the folder. ``valid`` marks a file of the right shape, which must load.
    """

    reader: str
    fmt: str
    suffix: str
    payload: bytes | None
    folder: bool = False
    valid: bool = False

    def __repr__(self) -> str:  # short enough for a failure line, long enough to replay
        body = None if self.payload is None else self.payload[:400]
        return (f"LoaderCase({self.reader!r}, {self.fmt!r}, {self.suffix!r}, {body!r}"
                f"{'...' if self.payload and len(self.payload) > 400 else ''}, folder={self.folder}, valid={self.valid})")


_KEYS = [
    "conversation", "session_1", "session_2", "session_1_date_time", "session_01", "session_١", "text", "speaker",
    "dia_id", "blip_caption", "img_url", "qa", "question", "answer", "category", "evidence", "adversarial_answer",
    "haystack_sessions", "haystack_session_ids", "haystack_dates", "content", "role", "has_answer", "question_id",
    "question_type", "answer_session_ids", "context", "input", "answers", "_id", "id", "index", "type", "sessions",
    "turns", "kind", "date", "questions", "question_date", "sample_id",
]  # fmt: skip

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), any_text,
    st.sampled_from([0, 1, 5, 6, -1, "", "document", "chat", "2023-05-08", "8 May, 2023", "Document 1: x"]),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), c, max_size=5),
    max_leaves=16,
)

short = st.text(max_size=12)
content = st.one_of(st.text(max_size=30), awkward_text)
date_like = st.one_of(
    st.none(), content, st.sampled_from(["1:56 pm on 8 May, 2023", "2023/05/20 (Sat) 02:21", "2023-05-20", "0001-01-01"])
)
answer_value = st.one_of(content, st.integers(), st.lists(content, min_size=1, max_size=3))


@st.composite
def locomo_data(draw: st.DrawFn) -> list[dict[str, Any]]:
    samples = []
    for i in range(draw(st.integers(1, 3))):
        conv: dict[str, Any] = {"speaker_a": draw(short), "speaker_b": draw(short)}
        for n in draw(st.lists(st.integers(1, 30), min_size=1, max_size=3, unique=True)):
            turns = []
            for j in range(draw(st.integers(1, 3))):
                t: dict[str, Any] = {"speaker": draw(short), "dia_id": f"D{n}:{j + 1}", "text": draw(content)}
                if draw(st.booleans()):
                    t["blip_caption"] = draw(content)
                turns.append(t)
            conv[f"session_{n}"] = turns
            conv[f"session_{n}_date_time"] = draw(st.one_of(content, st.just("1:56 pm on 8 May, 2023")))
        qa = [
            {"question": draw(content), "answer": draw(answer_value), "evidence": draw(st.lists(short, max_size=2)),
             "category": draw(st.integers(1, 5))}
            for _ in range(draw(st.integers(1, 3)))
        ]  # fmt: skip
        qa[0]["category"] = draw(st.integers(1, 4))  # at least one question the evaluation scores
        samples.append({"sample_id": f"conv-{i}", "conversation": conv, "qa": qa})
    return samples


@st.composite
def longmemeval_data(draw: st.DrawFn) -> list[dict[str, Any]]:
    records = []
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 3))
        sessions = [
            [{"role": draw(st.sampled_from(["user", "assistant"])), "content": draw(content), "has_answer": draw(st.booleans())}
             for _ in range(draw(st.integers(1, 3)))]
            for _ in range(n)
        ]  # fmt: skip
        records.append({
            "question_id": f"q{i}", "question_type": draw(short), "question": draw(content), "answer": draw(answer_value),
            "question_date": draw(st.one_of(st.just("2023/05/30 (Tue) 10:00"), content)),
            "haystack_session_ids": [f"s{i}-{j}" for j in range(n)],
            "haystack_dates": [draw(st.one_of(st.just("2023/05/20 (Sat) 02:21"), content)) for _ in range(n)],
            "haystack_sessions": sessions, "answer_session_ids": [f"s{i}-0"],
        })  # fmt: skip
    return records


@st.composite
def hotpotqa_data(draw: st.DrawFn) -> list[dict[str, Any]]:
    records = []
    for i in range(draw(st.integers(1, 3))):
        docs = draw(st.lists(content.filter(str.strip), min_size=1, max_size=4))
        context = "".join(f"Document {k + 1}:\n{d}\n\n" for k, d in enumerate(docs))
        records.append({"_id": f"hp{i}", "input": draw(content), "context": context,
                        "answers": draw(st.lists(content, min_size=1, max_size=2)), "type": draw(short)})  # fmt: skip
    return records


@st.composite
def jsonl_lines(draw: st.DrawFn) -> list[dict[str, Any]]:
    lines = []
    for i in range(draw(st.integers(1, 3))):
        sessions: list[dict[str, Any]] = []
        for j in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                sessions.append({"id": f"d{j}", "kind": "document", "text": draw(content.filter(bool))})
            else:
                turns = draw(st.lists(st.one_of(content, st.builds(lambda s, t: {"speaker": s, "text": t}, short, content)),
                                      min_size=1, max_size=3))  # fmt: skip
                sessions.append({"id": f"s{j}", "date": draw(date_like), "turns": turns})
        questions = [{"id": f"h{i}-q{k}", "question": draw(content), "answer": draw(answer_value),
                      "question_date": draw(date_like)} for k in range(draw(st.integers(1, 2)))]  # fmt: skip
        lines.append({"id": f"h{i}", "sessions": sessions, "questions": questions})
    return lines


def _dump_json(data: Any, ascii_only: bool) -> bytes:
    return json.dumps(data, ensure_ascii=ascii_only).encode("utf-8")


def _dump_jsonl(lines: list[Any], ascii_only: bool, newline: str = "\n") -> bytes:
    return newline.join(json.dumps(x, ensure_ascii=ascii_only) for x in lines).encode("utf-8")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        data = data[k]
    return data


@st.composite
def mutate_tree(draw: st.DrawFn, data: Any) -> Any:
    """``data`` (a copy) with one to three nodes replaced by another JSON value, deleted,
    renamed (a key such as ``session_1`` becoming ``session_01``) or given a sibling / an
    extra key. A node is picked uniformly, half the time among containers only: a list or
    an object where a reader expects the other kind is the commonest wrong type."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if draw(st.booleans()):
            paths = [p for p in paths if isinstance(_at(data, p), (list, dict))] or paths
        path = draw(st.sampled_from(paths))
        if not path:
            data = draw(json_values)
            continue
        holder = data
        for k in path[:-1]:
            holder = holder[k]
        key, node = path[-1], holder[path[-1]]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]))
        if action == "rename" and isinstance(holder, dict):
            holder[draw(st.sampled_from(_KEYS))] = holder.pop(key)
        elif action == "replace":
            holder[key] = draw(json_values)
        elif action == "delete":
            del holder[key]
        elif isinstance(node, dict):
            node[draw(st.sampled_from(_KEYS))] = draw(json_values)
        elif isinstance(node, list):
            node.append(draw(json_values))
        else:
            holder[key] = [node, draw(json_values)]
    return data


@st.composite
def mutate_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` cut, spliced or sprinkled with bytes that are not (valid) text."""
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["truncate", "insert", "delete", "invalid", "bom", "crlf"]))
        if action == "truncate":
            raw = raw[:i]
        elif action == "insert":
            raw = raw[:i] + draw(st.binary(max_size=6) | st.sampled_from([b"\x00", b"\n", b"{", b"]", b'"', b","])) + raw[i:]
        elif action == "delete":
            raw = raw[:i] + raw[i + draw(st.integers(1, 8)) :]
        elif action == "invalid":
            raw = raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])) + raw[i:]
        elif action == "bom":
            raw = b"\xef\xbb\xbf" + raw
        else:
            raw = raw.replace(b"\n", b"\r\n")
    return raw


# Inputs too big or too deep for naive code: a 200,000-character turn, JSON nested 50,000
# levels (json raises RecursionError), an integer of 5,000 digits (int() refuses it).
_DEEP = b"[" * 50_000 + b"]" * 50_000
_HUGE_INT = b'[{"conversation": {"session_1": [{"text": "a", "dia_id": ' + b"7" * 5000 + b"}]}}]"
_SPECIALS = [
    b"", b" ", b"\n\n\n", b"\x00" * 64, b"null", b"[]", b"{}", b"[{}]", b"[null]", b'"text"', b"42", _DEEP, _HUGE_INT,
    b"\xff\xfe\x00\x00", b"[" * 5000, b'{"sessions": ' * 3000,
    json.dumps([{"conversation": {"session_1": [{"text": "x" * 200_000, "speaker": "A"}]}, "qa": []}]).encode(),
    json.dumps({"id": "h", "sessions": [{"turns": ["y " * 100_000]}]}).encode(),
    ("Document 1: " + "z" * 100_000).encode(),
]  # fmt: skip

_SHAPES: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any, bool], bytes], str]] = {
    "locomo": (locomo_data(), _dump_json, ".json"),
    "longmemeval": (longmemeval_data(), _dump_json, ".json"),
    "hotpotqa": (hotpotqa_data(), _dump_json, ".json"),
    "jsonl": (jsonl_lines(), _dump_jsonl, ".jsonl"),
}
_SUFFIX_OF_FMT = {"locomo": ".json", "longmemeval": ".json", "hotpotqa": ".json", "jsonl": ".jsonl", "text": ".txt",
                  "markdown": ".md"}  # fmt: skip


@st.composite
def loader_cases(draw: st.DrawFn) -> LoaderCase:
    reader = draw(st.sampled_from(["ingest", "eval"]))
    shape = draw(st.sampled_from([*_SHAPES, "text", "markdown"]))
    if reader == "eval" and shape in ("text", "markdown"):
        shape = "jsonl"
    if reader == "eval":
        fmt = draw(st.sampled_from([shape] * 3 + ["locomo", "longmemeval", "hotpotqa", "jsonl"]))
    else:
        fmt = draw(st.sampled_from([shape, shape, "auto", "auto", "locomo", "longmemeval", "hotpotqa", "jsonl", "text", "markdown"]))
    suffix = _SUFFIX_OF_FMT[shape] if fmt == "auto" or draw(st.booleans()) else draw(st.sampled_from([".json", ".jsonl", ".txt", ".md", ".csv", ""]))
    kind = draw(st.sampled_from(["valid", "valid", "tree", "tree", "tree", "tree", "bytes", "tree+bytes", "special", "random", "missing"]))
    if kind == "missing":
        return LoaderCase(reader, fmt, suffix, None)
    if kind == "special":
        return LoaderCase(reader, fmt, suffix, draw(st.sampled_from(_SPECIALS)))
    if kind == "random":
        payload = draw(st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
        return LoaderCase(reader, fmt, suffix, payload)
    ascii_only = draw(st.booleans())
    if shape in ("text", "markdown"):
        text = draw(st.one_of(st.text(max_size=200), words_text(["#", "##", "-", "*", "\n", "\n\n", "para", "Title"], 30)))
        raw = text.encode("utf-8")
    else:
        strategy, dump, _ = _SHAPES[shape]
        data = draw(strategy)
        if kind in ("tree", "tree+bytes"):
            data = draw(mutate_tree(data))
            dump = _dump_jsonl if shape == "jsonl" and isinstance(data, list) else _dump_json
        raw = dump(data, ascii_only)
    if kind in ("bytes", "tree+bytes"):
        raw = draw(mutate_bytes(raw))
    fits = fmt in (shape, "auto") and (suffix == _SUFFIX_OF_FMT[shape] or (fmt != "auto" and suffix != ""))
    folder = reader == "ingest" and shape in ("text", "markdown") and suffix in (".txt", ".md") and draw(st.booleans())
    return LoaderCase(reader, fmt, suffix, raw, folder=folder, valid=kind == "valid" and fits and bool(raw))


def _one_line_input_error(exc: BaseException) -> None:
    from budgetmem.errors import InputError

    if not isinstance(exc, InputError):
        raise exc
    assert "\n" not in str(exc) and str(exc).strip(), f"error message is not one line: {str(exc)!r}"


def _check_history(h: Any) -> None:
    from budgetmem.ingest import History, Session, Turn

    assert isinstance(h, History) and isinstance(h.name, str) and isinstance(h.source, str)
    for s in h.sessions:
        assert isinstance(s, Session) and isinstance(s.session_id, str), s
        assert s.date_time is None or isinstance(s.date_time, str), f"session date {s.date_time!r} is not a string"
        assert s.turns, f"session {s.session_id} has no turns"
        assert s.kind in ("chat", "document")
        for t in s.turns:
            assert isinstance(t, Turn) and isinstance(t.text, str), t
            assert t.speaker is None or isinstance(t.speaker, str), f"speaker {t.speaker!r} is not a string"
            assert t.dia_id is None or isinstance(t.dia_id, str), f"dia_id {t.dia_id!r} is not a string"


def _texts(h: Any) -> list[str]:
    return [t.text for s in h.sessions for t in s.turns]


def _expected_texts(case: LoaderCase) -> list[str] | None:
    """The turn texts a valid file must load with, in order (None: not checked)."""
    raw = case.payload or b""
    if case.fmt in ("text", "markdown") or (case.fmt == "auto" and case.suffix in (".txt", ".md")):
        # Universal newlines: the file is read as text, so "\r\n" and "\r" become "\n".
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        return [text] if text else []
    return None


def check_loader(case: LoaderCase) -> None:
    from budgetmem.eval.datasets import load_eval_set
    from budgetmem.ingest import load_histories

    with tempfile.TemporaryDirectory(prefix="bm-fuzz-") as tmp:
        where = Path(tmp) / "in"
        where.mkdir()
        path = where / f"case{case.suffix}"
        if case.payload is not None:
            path.write_bytes(case.payload)
        target = where if case.folder else path
        try:
            if case.reader == "ingest":
                histories = load_histories(target, case.fmt)
            else:
                out = load_eval_set(case.fmt, target)
                histories = list(out.histories)
        except Exception as exc:  # noqa: BLE001 - which exception is the point of the test
            if case.valid:
                raise AssertionError(f"a valid {case.fmt} file was refused: {exc}") from exc
            _one_line_input_error(exc)
            return
    assert histories, "loaded nothing but raised no error"
    for h in histories:
        _check_history(h)
    if case.reader == "eval":
        names = {h.name for h in histories}
        assert out.items
        for item in out.items:
            assert isinstance(item.id, str) and isinstance(item.question, str), item
            assert item.answers and all(isinstance(a, str) for a in item.answers), item
            assert item.question_date is None or isinstance(item.question_date, str), item
            assert all(isinstance(e, str) for e in item.evidence) and isinstance(item.category, str), item
            assert item.history in names, f"question {item.id} asks of unknown history {item.history!r}"
    if case.valid:
        expected = _expected_texts(case)
        if expected is not None:
            assert ["".join(_texts(h)) for h in histories] == expected, "the document's text changed on loading"
        else:
            _check_valid_structured(case, histories)


def _check_valid_structured(case: LoaderCase, histories: list[Any]) -> None:
    """Every text of a valid structured file is in the histories, in file order."""
    raw = (case.payload or b"").decode("utf-8")
    if case.fmt == "jsonl" or (case.fmt == "auto" and case.suffix == ".jsonl"):
        records = [json.loads(line) for line in raw.split("\n") if line.strip()]
        want = [[s["text"]] if "text" in s else [t if isinstance(t, str) else t["text"] for t in s["turns"]]
                for r in records for s in r["sessions"]]  # fmt: skip
    else:
        data = json.loads(raw)
        if case.fmt == "locomo" or "conversation" in data[0]:
            want = []
            for sample in data:
                conv = sample["conversation"]
                for n in sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k)):
                    want.append([t["text"] + (f" [shares an image: {t['blip_caption']}]" if t.get("blip_caption") else "")
                                 for t in conv[f"session_{n}"]])  # fmt: skip
        elif case.fmt == "longmemeval" or "haystack_sessions" in data[0]:
            want = [[t["content"] for t in s] for r in data for s in r["haystack_sessions"]]
        else:
            from budgetmem.ingest.hotpotqa import split_documents

            want = [[text] for r in data for _, text in split_documents(r["context"])]
    got = [[t.text for t in s.turns] for h in histories for s in h.sessions]
    assert got == [w for w in want if w], f"texts changed on loading: {got[:3]!r} vs {want[:3]!r}"


# =========================================================================== chunker
class SplitCounter:
    """A tokenizer-like counter with the habits of real ones: words of more than three
    characters become several tokens, a character outside ASCII becomes two tokens with the
    same span (byte-level BPE), and whitespace and control characters are no token at all."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for m in re.finditer(r"[^\s\x00-\x1f]+", text):
            for i in range(m.start(), m.end(), 3):
                j = min(i + 3, m.end())
                out.append((i, j))
                if any(ord(c) > 127 for c in text[i:j]):
                    out.append((i, j))
        return out


class CharCounter:
    """Every character is a token, whitespace included (the worst case for splitting)."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i in range(len(text))]


class WordCounter:
    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


_MINILM: list[Any] = []


def minilm_counter() -> Any:
    """all-MiniLM-L6-v2's real tokenizer (only the tokenizer: no network is loaded)."""
    if not _MINILM:
        from budgetmem.encoder import Encoder
        from budgetmem.settings import EncoderSettings

        _MINILM.append(Encoder(EncoderSettings(name="all-minilm-l6-v2")))
    return _MINILM[0]


COUNTERS: dict[str, Callable[[], Any]] = {"words": WordCounter, "split": SplitCounter, "chars": CharCounter, "minilm": minilm_counter}


@dataclass(frozen=True)
class ChunkCase:
    counter: str
    max_tokens: int
    kind: str
    turns: tuple[tuple[str | None, str], ...]
    """(speaker, text) per turn."""


turn_text = st.one_of(
    st.text(max_size=60), awkward_text, words_text(["the", "a", "supercalifragilistic", "naïve", "日本語", "😀", "x" * 40], 40),
    st.builds(lambda w, n: (w + " ") * n, st.sampled_from(["ab", "word", "é", "  "]), st.integers(0, 80)),
)


@st.composite
def chunk_cases(draw: st.DrawFn) -> ChunkCase:
    kind = draw(st.sampled_from(["chat", "document"]))
    speaker = st.none() | st.sampled_from(["A", "Bob", "日本"]) | short if kind == "chat" else st.none()
    turns = tuple(draw(st.lists(st.tuples(speaker, turn_text), max_size=6)))
    return ChunkCase(draw(st.sampled_from(list(COUNTERS))), draw(st.integers(1, 40)), kind, turns)


def check_chunker(case: ChunkCase) -> None:
    from budgetmem.ingest import Session, Turn, chunk_session, render_session
    from budgetmem.ingest.chunker import _render

    counter = COUNTERS[case.counter]()
    session = Session("s", "8 May 2023", tuple(Turn(t, sp, f"s:{i}") for i, (sp, t) in enumerate(case.turns)), case.kind)
    chunks = chunk_session(session, counter, case.max_tokens, source="src", history="h")
    # The chunker's promise (ingest/chunker.py): joining the chunks gives back the rendered
    # session exactly; no chunk holds more than max_tokens; every token is counted once.
    assert "".join(c.text for c in chunks) == render_session(session), "joined chunks differ from the session"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    lines = [_render(t, case.kind) for t in session.turns]
    assert sum(c.n_tokens for c in chunks) == sum(len(counter.offsets(line)) for line in lines)
    covered: dict[int, int] = {}
    for c in chunks:
        assert c.n_tokens <= case.max_tokens, f"chunk of {c.n_tokens} tokens over {case.max_tokens}"
        assert (c.session_id, c.session_date, c.kind, c.history) == ("s", "8 May 2023", case.kind, "h")
        assert "".join(lines[t][s:e] for t, s, e in c.meta["turns"]) == c.text, "meta turn spans do not rebuild the chunk"
        for t, s, e in c.meta["turns"]:
            assert covered.get(t, 0) == s, f"turn {t} span starts at {s}, expected {covered.get(t, 0)}"
            covered[t] = e
        assert c.dia_ids == tuple(dict.fromkeys(f"s:{t}" for t, _, _ in c.meta["turns"]))
    assert covered == {i: len(line) for i, line in enumerate(lines)}


# =========================================================================== dates
_DATE_WORDS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "first", "second", "third", "twenty-first", "thirty-first",
    "1st", "2nd", "31st", "the", "of", "on", "in", "last", "next", "this", "past", "coming", "every", "ago", "from now",
    "day", "days", "week", "weeks", "weekend", "month", "months", "year", "years", "a few", "a couple of", "several",
    "seven", "twelve", "999", "spring", "summer", "autumn", "fall", "winter", "yesterday", "today", "tomorrow",
    "tonight", "last night", "the day before yesterday", "the other day", "morning", "evenings", "early", "mid", "late",
    "the end of", "the beginning of", "1999", "2023", "2024", "0001", "9999", "2023-05-08", "2023/5/8", "0000-01-01",
    "9999-12-31", "1:56 pm", "noon", "midnight", "am", "pm", "dollars", "%", "(Sat)", "ſeptember", "aprıl", "yeſterday",
]  # fmt: skip


@dataclass(frozen=True)
class DateCase:
    text: str
    anchor: date
    tense: str | None


date_cases = st.builds(
    DateCase,
    st.one_of(words_text(_DATE_WORDS, 8), any_text),
    st.one_of(st.dates(), st.sampled_from([date(1, 1, 1), date(1, 1, 2), date(9999, 12, 31), date(2023, 5, 8)])),
    st.sampled_from([None, "past", "future"]),
)


def check_dates(case: DateCase) -> None:
    from budgetmem.pipeline.modules import dates
    from budgetmem.retrieval import dates as rdates

    text = case.text
    found = dates.find_expressions(text)
    last = 0
    for e in found:
        assert last <= e.start < e.end <= len(text), e
        assert text[e.start : e.end].strip() == e.text
        last = e.end
        _check_resolved(dates.resolve(e.text, case.anchor, case.tense))  # type: ignore[arg-type]
    _check_resolved(dates.resolve(text, case.anchor, case.tense))  # type: ignore[arg-type]
    day = dates.parse_session_date(text)
    assert day is None or isinstance(day, date)
    if day is not None:  # a session stamp becomes the anchor of everything said in it
        _check_resolved(dates.resolve(text, day, case.tense))  # type: ignore[arg-type]
    first = dates.first_date_in(text)
    assert first is None or isinstance(first, date)
    query = rdates.query_dates(text)
    assert all(1 <= m <= 12 for m in query.months)
    month, year = rdates.session_month_year(text)
    assert month is None or 1 <= month <= 12, month
    assert isinstance(query.matches(text), bool)


def _check_resolved(res: Any) -> None:
    if res is not None:
        assert isinstance(res.label, str) and res.label and res.start <= res.end, res


# =========================================================================== parsers
_REPLY_PARTS = [
    "<answer>", "</answer>", "<ANSWER>", "<thinking>", "</thinking>", "<plan>", "</plan>", "<PLAN>", "```", "```json\n",
    "\n", " ", "[", "]", "{", "}", ",", '"', "'", "1", "10", "11", "3.0", "-1", "1e3", "١", "7" * 5000, "[" * 3000,
    '["a fact", "another"]', "['single', 'quoted',]", "[1, 2, 3]", "{'a': 1}", "[{[1]}]", "[{[]: 1}]", "null", "true",
    "İ", "ſ", "\x00", '{"score": 1, "explanation": "ok"}', '{"score": 0.5}', '{"score": true}', "Answer:",
    "Short answer: x", "I don't know", "score", " " * 200,
]  # fmt: skip

reply_part = st.sampled_from(_REPLY_PARTS) | st.text(max_size=8)
# A small model stuck in a loop repeats one piece until max_tokens: thousands of characters
# of the same few, the input that makes a backtracking regex blow up.
looping_reply = st.builds(
    lambda pre, unit, n, post: pre + unit * n + post,
    st.sampled_from(["", "<answer>", "<answer>```", "<answer>```json\n", "<answer>[", "<thinking>", "```", "{"])
    | st.lists(reply_part, max_size=3).map("".join),
    st.sampled_from([" ", "\n", "\n ", " \n", "```", "[", "{", "<thinking>", "<answer>", "\t", "1, ", '"a", ']),
    st.integers(500, 3000),
    st.lists(reply_part, max_size=3).map("".join),
)
model_reply = st.one_of(
    st.lists(reply_part, max_size=12).map("".join),
    looping_reply,
    st.builds(lambda v: f"<answer>{json.dumps(v)}</answer>", json_values),
    any_text,
)


PARSE_SECONDS = 5.0
"""The most one check of every parser on one reply may take."""


@dataclass(frozen=True)
class ReplyCase:
    text: str
    n: int
    max_items: int
    style: str


reply_cases = st.builds(ReplyCase, model_reply, st.integers(0, 8), st.integers(-2, 8),
                        st.sampled_from(["locomo", "longmemeval", "hotpotqa", "plain"]))  # fmt: skip


def _reference_plan(text: str) -> str:
    """What _plan_text promises, written again with case-insensitive regex search (an
    independent reference): the text after the first <plan> up to </plan> or <answer>, as
    at most four distinct non-empty lines of at most 200 characters."""
    m = re.search("<plan>", text, re.I)
    body = text[m.end() :] if m else text
    for tag in ("</plan>", "<answer>"):
        cut = re.search(re.escape(tag), body, re.I)
        if cut:
            body = body[: cut.start()]
    lines: list[str] = []
    for line in body.splitlines():
        line = line.strip()[:200]
        if line and line not in lines:
            lines.append(line)
    return "\n".join(lines[:4])


def check_parsers(case: ReplyCase) -> None:
    from budgetmem.eval.judge import JudgeParseError, parse_judgement
    from budgetmem.pipeline.behaviours import _plan_text
    from budgetmem.pipeline.parsers import ParseError, parse_scores, parse_string_list, parse_text
    from budgetmem.pipeline.prompts import extract_answer
    from budgetmem.router.escalate import is_abstention

    text = case.text
    t0 = time.perf_counter()
    try:
        scores = parse_scores(text, case.n)
        assert len(scores) == case.n and all(isinstance(s, float) and 0 <= s <= 10 for s in scores), scores
    except ParseError as exc:
        assert exc.raw == text and exc.reason
    try:
        items = parse_string_list(text, case.max_items)
        assert len(items) <= max(0, case.max_items) and len(set(items)) == len(items), items
        assert all(isinstance(i, str) and i and i == " ".join(i.split()) for i in items), items
    except ParseError as exc:
        assert exc.raw == text and exc.reason
    try:
        body = parse_text(text)
        assert isinstance(body, str) and body and body == body.strip()
    except ParseError as exc:
        assert exc.raw == text and exc.reason
    try:
        score, why = parse_judgement(text)
        assert score in (0.0, 0.5, 1.0) and isinstance(why, str)
    except JudgeParseError:
        pass
    answer = extract_answer(text, case.style)  # type: ignore[arg-type]
    assert isinstance(answer, str) and answer == answer.strip()
    assert isinstance(is_abstention(answer), bool)
    assert _plan_text(text) == _reference_plan(text), "the plan differs from the reference"
    # Replies are at most a few thousand tokens: anything near linear parses them in well
    # under a second, even on a loaded machine; a regex that backtracks does not.
    took = time.perf_counter() - t0
    assert took < PARSE_SECONDS, f"parsing {len(text)} characters took {took:.1f} s"


# =========================================================================== registry
PROPERTIES: list[Property] = [
    Property("loaders", loader_cases(), check_loader,
             "every reader loads a file into well-typed histories or raises a one-line InputError"),
    Property("chunker", chunk_cases(), check_chunker,
             "joined chunks give back the session exactly, within the token limit, every token counted once"),
    Property("dates", date_cases, check_dates, "the date resolver and the retrieval date filter never raise"),
    Property("parsers", reply_cases, check_parsers,
             "model-output parsers return the promised shape or a ParseError, nothing else"),
]  # fmt: skip


# =========================================================================== running
@dataclass
class Run:
    """What one property run found: cases tried, the slowest one, the first failure."""

    name: str
    cases: int = 0
    seconds: float = 0.0
    slowest_s: float = 0.0
    failure: str | None = None


def run_property(prop: Property, max_examples: int, seed: int | None = None, *, shrink: bool = True) -> Run:
    """Run ``prop`` on ``max_examples`` generated cases: derandomized when ``seed`` is None
    (the test suite), else seeded. A failure is shrunk by hypothesis (unless ``shrink`` is
    False) and reported as the exception and the smallest case that raised it; nothing is
    written to disk."""
    import time

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seed_with

    out = Run(prop.name)
    failing: list[str] = []

    def checked(case: Any) -> None:
        t0 = time.perf_counter()
        out.cases += 1
        try:
            prop.check(case)
        except Exception as exc:
            failing.append(f"{type(exc).__name__}: {str(exc)[:300]} on {case!r:.600}")
            raise
        finally:
            out.slowest_s = max(out.slowest_s, time.perf_counter() - t0)

    test = settings(
        max_examples=max_examples, derandomize=seed is None, database=None, deadline=None, print_blob=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )(given(prop.strategy)(checked))  # fmt: skip
    if seed is not None:
        test = seed_with(seed)(test)
    t0 = time.perf_counter()
    try:
        test()
    except Exception as exc:  # noqa: BLE001 - a broken property is the finding, reported not raised
        out.failure = failing[-1] if failing else f"{type(exc).__name__}: {str(exc)[:300]}"
    out.seconds = time.perf_counter() - t0
    return out
