"""Filter module, implementation LOW and MID: re-score the retrieved candidates, keep the best.

Routing paper Appendix A.4.1 (Filter Module): LOW "relies on sparse lexical/pattern
matching with lightweight heuristic scoring"; MID "introduces representation-based
relevance (e.g., embedding- and BERT-style similarity)". Both keep the same contract: a
ranked top-k subset (k from settings.filter_keep and filter_tokens) with the module's own scores in [0, 1].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules.text import cosine_to_unit, embed, idf_table, terms
from budgetmem.pipeline.types import FilterResult, ModuleInput, ScoredChunk, kept_order

__all__ = ["FilterModule", "lexical_scores"]

_TF_HALF = 0.5
"""Term-frequency saturation: a query term met once earns 1 / 1.5 of its weight, twice 2 / 2.5.
Repeats count, but a chunk cannot win by repeating one word (the BM25 intuition)."""


def lexical_scores(query: str, texts: Sequence[str]) -> list[float]:
    """TF-IDF-weighted query coverage of each text, in [0, 1].

    Each distinct query stem weighs its idf, computed over the candidate set plus the
    query (so a word in every candidate counts little); a text earns that weight scaled
    by a saturating function of how often the stem occurs in it. The sum is divided by
    the total query weight, so 1 means every query term occurs (often) in the text.
    """
    q_terms = Counter(terms(query))
    if not q_terms or not texts:
        return [0.0] * len(texts)
    doc_terms = [Counter(terms(t)) for t in texts]
    idf = idf_table([*doc_terms, q_terms])
    weights = {t: idf[t] * q_terms[t] for t in q_terms}
    total = sum(weights.values())
    scores = []
    for tf in doc_terms:
        gained = sum(w * tf[t] / (tf[t] + _TF_HALF) for t, w in weights.items() if tf[t])
        scores.append(gained / total)
    return scores


def _keep(candidates: Sequence[ScoredChunk], scores: Sequence[float], ctx: RunContext) -> FilterResult:
    """The kept candidates (``kept_order``), with this module's scores."""
    order = kept_order(candidates, scores, ctx.settings)
    return FilterResult(tuple(ScoredChunk(candidates[i].chunk, float(scores[i])) for i in order))


class FilterModule:
    name = "filter"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> FilterResult:
        """LOW: lexical TF-IDF overlap between the query and each candidate."""
        scores = lexical_scores(inp.query, [c.chunk.text for c in inp.chunks])
        return _keep(inp.chunks, scores, ctx)

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> FilterResult:
        """MID: cosine between the query embedding and each candidate's embedding."""
        if not inp.chunks:
            return FilterResult(())
        q, mat = embed(ctx, inp.query, [c.chunk.text for c in inp.chunks])
        scores = cosine_to_unit(mat @ q)
        return _keep(inp.chunks, [float(s) for s in np.asarray(scores)], ctx)
