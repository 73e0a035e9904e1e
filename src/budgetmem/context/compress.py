"""Semantic-memory compression with an LLM (selective-write paper §III-F3, Eq. 11).

    sum_i = Summarizer(c_i; target = 100 tokens)

Each live chunk outside the episodic window (§III-F1: the recent window stays verbatim) gets
a compressed version that keeps names, dates, numbers and facts, stored beside its raw text
with :meth:`Store.set_compressed`. The paper's summarizer is a LoRA-tuned model; here any
:class:`~budgetmem.llm.LLM` is prompted instead (our own prompt).

- Resumable: a chunk that already has a compressed version is skipped, and each one is
  committed as soon as it is made, so an interrupted run loses at most one call.
- Costs are never silent: each stored version's metadata records model, tokens, USD, price
  source and latency, and the report totals every call, rejected ones included.
- A reply that is empty, cut off at the token cap, or no shorter than the raw chunk (it would
  save nothing) is rejected: not stored, counted in the report, and tried again next run.
- A chunk already no longer than the target is left alone: compressing it cannot save room.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from budgetmem.context.packing import episodic_window
from budgetmem.chunk import Chunk
from budgetmem.llm import LLM
from budgetmem.settings import ContextSettings
from budgetmem.store import Store

__all__ = [
    "COMPRESS_PROMPT_VERSION",
    "CompressReport",
    "Rejection",
    "build_compress_prompt",
    "clean_reply",
    "compress_namespace",
]

COMPRESS_PROMPT_VERSION = "bm-compress-1"
"""Recorded in each compressed version's metadata: which prompt made it."""


def build_compress_prompt(chunk: Chunk, target_tokens: int) -> str:
    """Ask for a dense note of about ``target_tokens`` tokens that keeps every checkable fact."""
    words = max(5, round(target_tokens * 0.75))  # English runs at about 0.75 words per token
    when = f"The conversation took place on: {chunk.session_date}\n" if chunk.session_date else ""
    return (
        f"Condense the conversation excerpt below into a short note of about {target_tokens} tokens "
        f"(roughly {words} words). Someone will later answer questions from the note alone, so "
        "keep every name, date, time, number, place and stated fact, and who said or did what. "
        "Write dates as they are given or as absolute dates. Leave out greetings, filler and "
        "small talk. Write plain sentences; no title, no preamble, no comments.\n\n"
        f"{when}Excerpt:\n{chunk.text.strip()}\n\nNote:"
    )


_LABEL = re.compile(r"^\s*(?:short note|condensed note|note|summary)\s*:\s*", re.IGNORECASE)
_TAGS = re.compile(r"</?(?:answer|note|summary)>", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """The note without a leading label, stray tags or surrounding whitespace."""
    return _LABEL.sub("", _TAGS.sub("", text)).strip()


@dataclass(frozen=True)
class Rejection:
    chunk_id: int
    reason: str


@dataclass(frozen=True)
class CompressReport:
    namespace: str
    model: str
    target_tokens: int
    live_chunks: int
    episodic: int
    """Chunks in the episodic window, left verbatim."""
    already: int
    """Chunks that had a compressed version before this run (skipped: resumable)."""
    short: int
    """Chunks no longer than the target: nothing to save, left alone."""
    compressed: int
    """Compressed versions stored by this run."""
    rejected: tuple[Rejection, ...]
    remaining: int
    """Chunks still to do after this run (the limit stopped it, or their replies were rejected)."""
    calls: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    """Dollars of every call this run made, rejected replies included."""
    price_source: str
    raw_tokens: int
    """Tokens of the chunks compressed by this run, before..."""
    compressed_tokens: int
    """...and after (counted with the same counter)."""
    seconds: float
    counted_with: str = ""
    ids: tuple[int, ...] = field(default=())
    """Chunk ids compressed by this run."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "model": self.model, "target_tokens": self.target_tokens,
            "live_chunks": self.live_chunks, "episodic": self.episodic, "already": self.already, "short": self.short,
            "compressed": self.compressed, "rejected": [{"chunk_id": r.chunk_id, "reason": r.reason} for r in self.rejected],
            "remaining": self.remaining, "calls": self.calls, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "usd": self.usd, "price_source": self.price_source,
            "raw_tokens": self.raw_tokens, "compressed_tokens": self.compressed_tokens, "seconds": self.seconds,
            "counted_with": self.counted_with, "ids": list(self.ids),
        }  # fmt: skip


def _reject_reason(note: str, note_tokens: int, raw_tokens: int, finish_reason: str | None) -> str | None:
    if not note:
        return "empty reply"
    if finish_reason == "length":
        return "cut off at the token cap"
    if note_tokens >= raw_tokens:
        return f"not shorter than the raw chunk ({note_tokens} >= {raw_tokens} tokens)"
    return None


def compress_namespace(
    store: Store,
    namespace: str,
    llm: LLM,
    settings: ContextSettings,
    *,
    count: Callable[[str], int],
    counted_with: str = "",
    limit: int | None = None,
    progress: bool = False,
) -> CompressReport:
    """Compress the namespace's semantic chunks that have no compressed version yet.

    ``count`` measures raw and compressed texts alike (the namespace's encoder tokenizer is
    what the CLI uses); ``limit`` caps the LLM calls of this run."""
    started = time.perf_counter()
    store.require_namespace(namespace)
    target = settings.compress_tokens
    window = {int(c.id or 0) for c in episodic_window(store, namespace, settings.episodic_window)}
    chunks = store.chunks(namespace)
    semantic = [c for c in chunks if int(c.id or 0) not in window]
    already = sum(1 for c in semantic if c.compressed is not None)
    sizes = {int(c.id or 0): int(count(c.text)) for c in semantic if c.compressed is None}
    todo = [c for c in semantic if c.compressed is None and sizes[int(c.id or 0)] > target]
    short = len(sizes) - len(todo)
    batch = todo if limit is None else todo[: max(0, limit)]

    rejected: list[Rejection] = []
    done: list[int] = []
    p_tok = c_tok = raw_sum = new_sum = 0
    usd = 0.0
    source = llm.price.source

    from tqdm import tqdm

    bar = tqdm(batch, desc=f"compress {namespace}", unit="chunk", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for chunk in bar:
        cid = int(chunk.id or 0)
        out = llm.complete(build_compress_prompt(chunk, target), max_tokens=2 * target, temperature=0.0)
        p_tok += out.prompt_tokens
        c_tok += out.completion_tokens
        usd += out.usd
        source = out.price.source
        note = clean_reply(out.text)
        n_note = int(count(note)) if note else 0
        reason = _reject_reason(note, n_note, sizes[cid], out.finish_reason)
        if reason is not None:
            rejected.append(Rejection(cid, reason))
        else:
            meta = {
                "model": out.model, "prompt_version": COMPRESS_PROMPT_VERSION, "target_tokens": target,
                "raw_tokens": sizes[cid], "counted_with": counted_with, "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens, "usd": out.usd, "price_source": out.price.source,
                "latency_s": out.latency_s, "created_at": time.time(),
            }  # fmt: skip
            store.set_compressed(namespace, cid, note, n_note, meta)  # committed now: resumable
            done.append(cid)
            raw_sum += sizes[cid]
            new_sum += n_note
        bar.set_postfix_str(f"stored {len(done)} rejected {len(rejected)} ${usd:.5f}", refresh=False)
    bar.close()

    return CompressReport(
        namespace=namespace, model=llm.name, target_tokens=target, live_chunks=len(chunks), episodic=len(window),
        already=already, short=short, compressed=len(done), rejected=tuple(rejected), remaining=len(todo) - len(done),
        calls=len(batch), prompt_tokens=p_tok, completion_tokens=c_tok, usd=usd, price_source=source,
        raw_tokens=raw_sum, compressed_tokens=new_sum, seconds=time.perf_counter() - started,
        counted_with=counted_with, ids=tuple(done),
    )  # fmt: skip
