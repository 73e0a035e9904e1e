"""Parsers and GBNF grammars for the three output formats of the LLM tiers.

Routing paper Appendix C fixes the formats (C.5-C.9), all inside ``<answer>`` tags:

- scores:      filter, exactly one integer 0-10 per memory, in memory order;
- string list: entity / temporal / topic, a JSON array of short fact strings;
- text:        summary, non-empty plain text.

What is tolerated, and why:
- ``<thinking>...</thinking>`` blocks are ignored (the CoT tier writes one first) and the
  *last* non-empty ``<answer>`` block wins (a model may echo the format example first);
- a missing *closing* tag is tolerated: the behaviours stop generation at ``</answer>``
  (backends drop the stop string) and a reply can be cut by ``max_tokens``; the content
  still has to parse in full. A missing *opening* tag is a :class:`ParseError`: the contract
  says the answer is inside the tags, and guessing where loose text starts is not parsing;
- a Markdown code fence inside the tags, and surrounding whitespace or newlines.

Nothing is clipped or guessed: a score outside 0-10, a wrong count or a non-string item is
a :class:`ParseError`, and the caller makes one repair call (see behaviours.py).
"""

from __future__ import annotations

import ast
import json
import re

__all__ = [
    "ParseError",
    "answer_body",
    "strip_thinking",
    "parse_scores",
    "parse_string_list",
    "parse_text",
    "scores_grammar",
    "string_list_grammar",
    "text_grammar",
]


class ParseError(Exception):
    """A reply that does not follow its format. Keeps the text so the failure is visible."""

    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(reason)


_THINK_OPEN = re.compile(r"<thinking>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</thinking>", re.IGNORECASE)
_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_EMPTY = "the <answer> tags are empty"
_LANGUAGE = re.compile(r"[a-zA-Z]*")


def _unfence(inner: str) -> str | None:
    """The body of a Markdown code fence that is the whole of ``inner`` (already stripped),
    its language tag dropped; None if it is not one. Plain string work, not one regex: the
    regex this replaces backtracked cubically on a fence followed by a long run of
    whitespace (4,000 characters of "\\n " took a minute)."""
    if len(inner) < 6 or not (inner.startswith("```") and inner.endswith("```")):
        return None
    body = inner[3:-3]
    return body[_LANGUAGE.match(body).end() :].strip()  # type: ignore[union-attr]


def strip_thinking(text: str) -> str:
    """``text`` without its ``<thinking>...</thinking>`` blocks; an unclosed one is kept.

    The same result as ``re.sub(r"<thinking>.*?</thinking>", "", text, flags=I | S)`` in
    linear time: that regex tries every ``<thinking>`` against the rest of the text, so a
    small model looping on the tag (3,000 of them, no close) cost seconds per parser. Once
    one opening tag has no closing tag after it, no later one has either."""
    kept: list[str] = []
    pos = 0
    while (start := _THINK_OPEN.search(text, pos)) and (end := _THINK_CLOSE.search(text, start.end())):
        kept.append(text[pos : start.start()])
        pos = end.end()
    kept.append(text[pos:])
    return "".join(kept)


def answer_body(text: str) -> str:
    """The content of the last non-empty ``<answer>`` block, stripped, fences removed."""
    body = strip_thinking(text)
    opens = [m.end() for m in _OPEN.finditer(body)]
    if not opens:
        raise ParseError(text, "no <answer> tag in the reply")
    for start in reversed(opens):
        close = _CLOSE.search(body, start)
        inner = body[start : close.start() if close else len(body)].strip()
        fenced = _unfence(inner)
        if fenced is not None:
            inner = fenced
        if inner:
            return inner
    raise ParseError(text, _EMPTY)


_SCORE_TOKEN = re.compile(r"\d+(?:\.0+)?")


def parse_scores(text: str, n: int) -> list[float]:
    """Exactly ``n`` integer scores 0-10, as a JSON array or separated by commas / spaces."""
    if n == 0:  # the contract's reply for no memories is "[]"; an empty block says the same
        try:
            inner = answer_body(text)
        except ParseError as exc:
            if exc.reason == _EMPTY:
                return []
            raise
        if inner.replace(" ", "") == "[]":
            return []
        raise ParseError(text, f"expected no scores, got {inner[:40]!r}")
    inner = answer_body(text)
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    tokens = [t for t in re.split(r"[\s,;]+", inner) if t]
    scores: list[float] = []
    for tok in tokens:
        if not _SCORE_TOKEN.fullmatch(tok):
            raise ParseError(text, f"not an integer score: {tok[:20]!r}")
        value = float(tok)
        if value > 10:
            raise ParseError(text, f"score {tok} is outside 0-10")
        scores.append(value)
    if len(scores) != n:
        raise ParseError(text, f"expected {n} scores (one per memory), got {len(scores)}")
    return scores


def _load_array(inner: str, text: str) -> object:
    try:
        return json.loads(inner)
    except (ValueError, RecursionError):  # bad JSON, a 5,000-digit number, nesting too deep
        pass
    # Small models often write Python-style lists (single quotes, a trailing comma); that is
    # still an unambiguous array of strings, and literal_eval evaluates no code. It raises
    # TypeError on a set or dict with a list inside ("[{[1]}]": unhashable).
    if inner.startswith("["):
        try:
            return ast.literal_eval(inner)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    raise ParseError(text, "the answer is not a JSON array")


def parse_string_list(text: str, max_items: int) -> list[str]:
    """A JSON array of strings. ``[]`` is valid ("nothing found"). Items are stripped, empty
    ones and repeats dropped, and the list is cut to ``max_items`` (the model was asked for at
    most that many; the extra ones are its least preferred, so cutting beats a repair call)."""
    inner = answer_body(text)
    value = _load_array(inner, text)
    if not isinstance(value, list):
        raise ParseError(text, f"the answer is a JSON {type(value).__name__}, not an array")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ParseError(text, f"array item {item!r:.40} is not a string")
        item = " ".join(item.split())
        if item and item not in out:
            out.append(item)
    return out[: max(0, max_items)]


def parse_text(text: str) -> str:
    """Non-empty plain text inside the tags."""
    return answer_body(text)


# --------------------------------------------------------------------------- grammars
# Used only for the repair call on backends that support GBNF (llama.cpp): the grammar
# makes the reply parse by construction. Every repetition is bounded or guarded so a
# constrained model cannot loop on whitespace forever.


def scores_grammar(n: int) -> str:
    """Exactly ``n`` integers 0-10 in a JSON array inside the tags."""
    if n == 0:
        return 'root ::= "<answer>[]</answer>"\n'
    items = ' ", " '.join(["score"] * n)
    return f'root ::= "<answer>[" {items} "]</answer>"\nscore ::= "10" | [0-9]\n'


def string_list_grammar(max_items: int, max_chars: int = 160) -> str:
    """A JSON array of at most ``max_items`` non-empty strings of at most ``max_chars``."""
    if max_items <= 0:
        return 'root ::= "<answer>[]</answer>"\n'
    rest = f' (", " item){{0,{max_items - 1}}}' if max_items > 1 else ""
    return (
        f'root ::= "<answer>[" (item{rest})? "]</answer>"\n'
        f'item ::= "\\"" char{{1,{max_chars}}} "\\""\n'
        'char ::= [^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/nt]\n'
    )


def text_grammar(max_chars: int = 1500) -> str:
    """Non-empty text without '<' inside the tags (so the closing tag cannot be faked)."""
    return f'root ::= "<answer>" [^<\\x00-\\x20] [^<]{{0,{max_chars}}} "</answer>"\n'
