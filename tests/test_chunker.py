"""Chunking: exact reproduction, session boundaries, token limits, long-turn splitting."""

from __future__ import annotations

from budgetmem.ingest import History, Session, Turn, chunk_history, chunk_session, load_histories, render_session


def _session(texts: list[str], sid: str = "s1", kind: str = "chat") -> Session:
    speaker = "A" if kind == "chat" else None
    return Session(sid, "1 May 2023", tuple(Turn(t, speaker, f"{sid}:{i}") for i, t in enumerate(texts)), kind)


def test_greedy_packing_by_hand(words):
    # Rendered turns "A: w w\n" count speaker prefix as a token: 3, 4 and 5 tokens.
    s = _session(["w w", "w w w", "w w w w"])
    chunks = chunk_session(s, words, 8, source="t", history="h")
    assert [c.n_tokens for c in chunks] == [7, 5]
    assert [c.dia_ids for c in chunks] == [("s1:0", "s1:1"), ("s1:2",)]
    assert [c.position for c in chunks] == [0, 1]
    assert chunks[0].text == "A: w w\nA: w w w\n"


def test_long_turn_is_split_not_truncated(words):
    long_text = " ".join(f"word{i}" for i in range(25))
    s = _session(["short one", long_text, "tail"])
    chunks = chunk_session(s, words, 10, source="t", history="h")
    assert all(c.n_tokens <= 10 for c in chunks)
    assert "".join(c.text for c in chunks) == render_session(s)
    covering = [c for c in chunks if "s1:1" in c.dia_ids]
    assert len(covering) == 3  # 26 tokens ("A:" + 25 words) need three pieces of <= 10
    rebuilt = "".join(
        part
        for c in chunks
        for (t, start, end), part in zip(c.meta["turns"], _split_by_meta(c))
        if t == 1
    )
    assert rebuilt == "A: " + long_text + "\n"


def _split_by_meta(chunk):
    out, pos = [], 0
    for _, start, end in chunk.meta["turns"]:
        out.append(chunk.text[pos : pos + (end - start)])
        pos += end - start
    return out


def test_chunks_never_cross_sessions(words):
    h = History("h", "t", "test", (_session(["a b", "c d"], "s1"), _session(["e f"], "s2")))
    chunks = chunk_history(h, words, 100)
    assert [(c.session_id, c.dia_ids) for c in chunks] == [("s1", ("s1:0", "s1:1")), ("s2", ("s2:0",))]


def test_documents_reproduce_the_file_exactly(tmp_path, words):
    text = "# Title\n\nFirst paragraph has words.\n\n\nSecond one\nspans lines.\n\n" + "x " * 40 + "\nend"
    path = tmp_path / "doc.md"
    path.write_text(text, encoding="utf-8")
    (history,) = load_histories(path)
    chunks = chunk_history(history, words, 12)
    assert "".join(c.text for c in chunks) == text
    assert all(c.n_tokens <= 12 for c in chunks)
    assert {c.kind for c in chunks} == {"document"}


def test_locomo_with_real_tokenizer(locomo_dev, minilm):
    """Every LoCoMo session round-trips exactly and no chunk exceeds 256 encoder tokens."""
    histories = load_histories(locomo_dev)
    for h in histories[:2]:
        chunks = chunk_history(h, minilm, 256)
        for s in h.sessions:
            mine = [c for c in chunks if c.session_id == s.session_id]
            assert "".join(c.text for c in mine) == render_session(s)
            assert [c.position for c in mine] == list(range(len(mine)))
        for c in chunks:
            assert c.n_tokens <= 256
            # recounting the stored text with the encoder's tokenizer stays within the limit
            assert minilm.count_tokens(c.text) <= 256 + 2
        assert {d for c in chunks for d in c.dia_ids} == {t.dia_id for s in h.sessions for t in s.turns}


def test_turn_longer_than_chunk_with_real_tokenizer(minilm):
    long_turn = "The ferry timetable changed again. " * 120  # ~720 tokens
    s = _session([long_turn])
    chunks = chunk_session(s, minilm, 256, source="t", history="h")
    n = minilm.count_tokens("A: " + long_turn + "\n")
    assert n > 700
    assert len(chunks) == -(-n // 256)  # word-start cuts cost nothing here: every word is one token
    assert "".join(c.text for c in chunks) == "A: " + long_turn + "\n"
    assert all(c.n_tokens <= 256 for c in chunks)
