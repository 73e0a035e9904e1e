"""Cut sessions into chunks of at most ``max_tokens`` encoder tokens.

Rules (routing paper §5.2 uses fixed-length chunks of 256 tokens for chats):
- a chunk never crosses a session boundary;
- whole turns are packed greedily; a turn longer than a chunk is split at token
  boundaries (preferring word starts), never truncated;
- joining the texts of a session's chunks gives back the session's rendered text exactly
  (each chat turn rendered as ``speaker: text`` plus a newline; documents verbatim).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from budgetmem.chunk import Chunk
from budgetmem.ingest.history import History, Session, Turn

__all__ = ["Chunk", "TokenCounter", "chunk_history", "chunk_session", "render_session"]


class TokenCounter(Protocol):
    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, without special tokens."""
        ...


def _render(turn: Turn, kind: str) -> str:
    return turn.text if kind == "document" else turn.render() + "\n"


def render_session(session: Session) -> str:
    return "".join(_render(t, session.kind) for t in session.turns)


@dataclass
class _Piece:
    turn: int
    start: int
    end: int
    text: str
    n_tokens: int


def _split(line: str, offsets: list[tuple[int, int]], max_tokens: int) -> list[tuple[int, int, int]]:
    """Split points of a too-long line: (char start, char end, tokens) per piece."""
    pieces: list[tuple[int, int, int]] = []
    first = 0  # index of the first token of the current piece
    while len(offsets) - first > max_tokens:
        cut = first + max_tokens  # token that would open the next piece
        # Prefer a cut at a word start so no word is torn in two; fall back to the hard cut.
        for k in range(cut, first + max_tokens // 2, -1):
            s = offsets[k][0]
            if s > 0 and line[s - 1].isspace():
                cut = k
                break
        start = 0 if not pieces else pieces[-1][1]
        pieces.append((start, offsets[cut][0], cut - first))
        first = cut
    start = 0 if not pieces else pieces[-1][1]
    pieces.append((start, len(line), len(offsets) - first))
    return pieces


def chunk_session(
    session: Session, counter: TokenCounter, max_tokens: int, *, source: str, history: str
) -> list[Chunk]:
    pieces: list[_Piece] = []
    for i, turn in enumerate(session.turns):
        line = _render(turn, session.kind)
        offsets = counter.offsets(line)
        if len(offsets) <= max_tokens:
            pieces.append(_Piece(i, 0, len(line), line, len(offsets)))
        else:
            pieces.extend(_Piece(i, s, e, line[s:e], n) for s, e, n in _split(line, offsets, max_tokens))

    groups: list[list[_Piece]] = []
    used = 0
    for p in pieces:
        if groups and used + p.n_tokens <= max_tokens:
            groups[-1].append(p)
            used += p.n_tokens
        else:
            groups.append([p])
            used = p.n_tokens

    chunks = []
    for position, group in enumerate(groups):
        turns = [session.turns[p.turn] for p in group]
        chunks.append(
            Chunk(
                text="".join(p.text for p in group),
                n_tokens=sum(p.n_tokens for p in group),
                source=source,
                history=history,
                session_id=session.session_id,
                session_date=session.date_time,
                position=position,
                dia_ids=_unique(t.dia_id for t in turns),
                speakers=_unique(t.speaker for t in turns),
                kind=session.kind,
                meta={"turns": [[p.turn, p.start, p.end] for p in group], **_turn_extras(turns)},
            )
        )
    return chunks


def chunk_history(history: History, counter: TokenCounter, max_tokens: int) -> list[Chunk]:
    return [
        c
        for s in history.sessions
        for c in chunk_session(s, counter, max_tokens, source=history.source, history=history.name)
    ]


def _unique(values: Sequence[str | None] | Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _turn_extras(turns: list[Turn]) -> dict[str, Any]:
    answer_ids = [t.dia_id for t in turns if t.extra.get("has_answer")]
    return {"has_answer_dia_ids": answer_ids} if answer_ids else {}
