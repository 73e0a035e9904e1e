"""Text helpers shared by the non-LLM module tiers: terms, TF-IDF, turns, parses, embeddings.

Routing paper Appendix A.4.1: LOW tiers use "cheap symbolic pipelines (rules, regex,
lightweight NLP such as spaCy)", MID tiers "a compact learned specialist (typically
BERT-style encoders)". Both need the same plumbing (tokenising, splitting chat chunks
into turns, one spaCy parse per turn, one batched encoder call), kept here once.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from budgetmem.chunk import Chunk

if TYPE_CHECKING:
    from budgetmem.pipeline.context import RunContext

__all__ = [
    "STOP_WORDS",
    "ENTITY_LABELS",
    "FIRST_PERSON",
    "tokens",
    "stem",
    "terms",
    "idf_table",
    "overlap",
    "Line",
    "Sentence",
    "split_lines",
    "sentences",
    "third_person",
    "embed",
    "cosine_to_unit",
    "session_label",
    "clip_words",
    "unique",
]


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS as SPACY_STOP

    # Chat filler carries no topic or relevance signal; spaCy's list lacks it.
    chat = {
        "yeah", "yes", "oh", "hey", "hi", "wow", "lol", "ok", "okay", "thanks", "thank", "gonna",
        "wanna", "really", "just", "like", "got", "get", "good", "great", "cool", "awesome", "sure",
        "know", "think", "lot", "bit", "don", "didn", "doesn", "isn", "wasn", "aren", "couldn",
        "wouldn", "shouldn", "ca", "wo", "im", "ve", "ll", "thing", "things", "stuff", "way",
    }  # fmt: skip
    return frozenset({w.lower() for w in SPACY_STOP} | chat)


STOP_WORDS: frozenset[str] = _stop_words()

ENTITY_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LANGUAGE"}
)
"""spaCy NER labels that name an entity the entity module reports (dates go to temporal)."""

FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself"})

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_stemmers = threading.local()  # PyStemmer objects must not be shared between threads


def _stemmer() -> Any:
    s = getattr(_stemmers, "english", None)
    if s is None:
        import Stemmer

        s = _stemmers.english = Stemmer.Stemmer("english")
    return s


def tokens(text: str) -> list[str]:
    """Lower-cased content words: stop words, one-letter words and clitics removed."""
    out = []
    for raw in _WORD.findall(text.lower()):
        word = re.split(r"['’]", raw, maxsplit=1)[0]  # "caroline's" -> "caroline", "didn't" -> "didn"
        if len(word) > 1 and word not in STOP_WORDS:
            out.append(word)
    return out


def stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def terms(text: str) -> list[str]:
    """Stems of the content words of ``text``, in order (repeats kept: they are the tf)."""
    return [str(s) for s in _stemmer().stemWords(tokens(text))]


def idf_table(docs: Sequence[Collection[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency, log((1 + N) / (1 + df)) + 1, over ``docs``."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    n = len(docs)
    return {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}


def overlap(query_terms: Collection[str], text: str) -> int:
    """How many distinct query stems occur in ``text``."""
    return len(set(query_terms) & set(terms(text)))


def unique(items: Iterable[str]) -> list[str]:
    """Items in order, each once (compared with case and spacing normalised)."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = " ".join(item.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def clip_words(text: str, n: int) -> str:
    words = text.split()
    return text.strip() if len(words) <= n else " ".join(words[:n]) + " ..."


# ---------------------------------------------------------------- chunks -> turns
@dataclass(frozen=True)
class Line:
    """One turn of a chat chunk (or one paragraph of a document chunk)."""

    chunk_index: int
    speaker: str | None
    text: str


def split_lines(chunk: Chunk, chunk_index: int = 0) -> list[Line]:
    """The turns of a chunk. Chat chunks hold ``speaker: text`` lines (chunker.py); a line
    without a known speaker prefix continues the previous turn (multi-line messages)."""
    if chunk.kind == "document":
        return [Line(chunk_index, None, p.strip()) for p in chunk.text.split("\n") if p.strip()]
    prefixes = [(f"{s}: ", s) for s in sorted(chunk.speakers, key=len, reverse=True)]
    turns: list[tuple[str | None, list[str]]] = []
    for raw in chunk.text.split("\n"):
        speaker = next((s for p, s in prefixes if raw.startswith(p)), None)
        if speaker is not None:
            turns.append((speaker, [raw[len(speaker) + 2 :]]))
        elif turns:
            turns[-1][1].append(raw)
        elif raw.strip():
            # A chunk that starts mid-turn: the speaker is known only if the chunk has one.
            turns.append((chunk.speakers[0] if len(chunk.speakers) == 1 else None, [raw]))
    return [Line(chunk_index, s, "\n".join(parts).strip()) for s, parts in turns if "".join(parts).strip()]


# ---------------------------------------------------------------- spaCy, parsed once
_DOC_CACHE: OrderedDict[str, Any] = OrderedDict()
_DOC_CACHE_SIZE = 4096
_PARSE_LOCK = threading.Lock()


def _parse_all(nlp: Any, texts: Sequence[str]) -> list[Any]:
    """spaCy docs of ``texts``. The three extractors parse the same filtered chunks and may
    run concurrently, so parses are cached by text and made under one lock."""
    with _PARSE_LOCK:
        missing = list(dict.fromkeys(t for t in texts if t not in _DOC_CACHE))
        for text, doc in zip(missing, nlp.pipe(missing, batch_size=64), strict=True):
            _DOC_CACHE[text] = doc
        docs = []
        for t in texts:
            _DOC_CACHE.move_to_end(t)
            docs.append(_DOC_CACHE[t])
        while len(_DOC_CACHE) > _DOC_CACHE_SIZE:
            _DOC_CACHE.popitem(last=False)
        return docs


@dataclass(frozen=True)
class Sentence:
    """One parsed sentence of a turn, with where it was said."""

    chunk_index: int
    line_index: int
    """Order of its turn among all turns of the input (a stable tie-break)."""
    speaker: str | None
    span: Any
    """The spaCy Span of the sentence."""
    session_id: str
    session_date: str | None

    @property
    def text(self) -> str:
        return str(self.span.text).strip()


def sentences(ctx: RunContext, chunks: Sequence[Chunk]) -> list[Sentence]:
    """Every sentence of every turn of ``chunks``, parsed by spaCy, in reading order."""
    lines = [line for i, c in enumerate(chunks) for line in split_lines(c, i)]
    if not lines:
        return []  # nothing to parse: do not load spaCy for it
    docs = _parse_all(ctx.nlp, [line.text for line in lines])
    out = []
    for k, (line, doc) in enumerate(zip(lines, docs, strict=True)):
        chunk = chunks[line.chunk_index]
        for sent in _whole_sentences(doc):
            if sent.text.strip():
                out.append(Sentence(line.chunk_index, k, line.speaker, sent, chunk.session_id, chunk.session_date))
    return out


def _whole_sentences(doc: Any) -> Iterator[Any]:
    """spaCy's sentences, except that one leaving a bracket open runs on into the next.

    The parser ends sentences inside parentheses full of colons and abbreviations: "Gerald R.
    Ford International Airport (IATA: GRR, ICAO: KGRR, FAA LID: GRR) is a commercial airport
    ..." came out as "... Airport (IATA:" and "KGRR, FAA LID: GRR) is a commercial airport",
    so the sentence that says where the airport is no longer named it (HotpotQA dev)."""
    start = None
    for sent in doc.sents:
        span = sent if start is None else doc[start : sent.end]
        if span.text.count("(") > span.text.count(")") and sent.end < len(doc):
            start = span.start
            continue
        start = None
        yield span


def third_person(tokens_: Iterable[Any], speaker: str | None) -> str:
    """Render spaCy tokens with first-person pronouns replaced by the speaker's name, so a
    fact read out of context still says who it is about ("I went" -> "Caroline went")."""
    parts: list[str] = []
    after_i = False
    for tok in tokens_:
        low = tok.lower_.replace("’", "'")
        text = tok.text
        if speaker and low in FIRST_PERSON:
            text = f"{speaker}'s" if low in ("my", "mine") else speaker
        elif after_i and low in ("'m", "am"):
            text = " is"  # a clitic has no space before it; its replacement needs one
        elif after_i and (low == "'ve" or (low == "have" and tok.tag_ == "VBP")):
            text = " has"
        parts.append(text + tok.whitespace_)
        after_i = bool(speaker) and low == "i"
    return re.sub(r"\s+", " ", "".join(parts)).strip()


# ---------------------------------------------------------------- encoder
def embed(ctx: RunContext, query: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Query vector and text matrix from ONE batched encoder call (unit rows, so a dot
    product is a cosine)."""
    vecs = ctx.encoder.encode([query, *texts])
    return vecs[0], vecs[1:]


def cosine_to_unit(cos: np.ndarray) -> np.ndarray:
    """Map cosine similarity from [-1, 1] onto [0, 1], keeping the order."""
    return np.clip((cos.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)


_SESSION_NUMBER = re.compile(r"^session_(\d+)$")


def session_label(session_id: str) -> str:
    """'3' for LoCoMo's 'session_3'; other ids (LongMemEval's) as they are."""
    m = _SESSION_NUMBER.match(session_id)
    return m.group(1) if m else session_id
