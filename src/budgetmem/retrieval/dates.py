"""Date-aware retrieval: a question that names a month or a year prefers chunks from
sessions dated then.

LoCoMo questions such as "What did Melanie paint in May 2023?" name the time of their
evidence, and the chunk text rarely repeats it: only the session's date holds it. On the
LoCoMo dev conversations 107 of 883 scored questions name a month or a year; boosting the
chunks whose session date matches raised evidence recall@5 over all questions from 0.779
(weighted fusion alone) to 0.796 (docs/BENCHMARKS.md, retrieval section).

Months count only when capitalised ("May", not the verb "may"); years are 1900-2099.
Session dates are read in the forms the ingesters store: LoCoMo's "1:56 pm on 8 May, 2023",
LongMemEval's "2023/05/20 (Sat) 02:21", and ISO "2023-05-20".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["DateFilter", "query_dates", "session_month_year", "fold_lookalikes"]

# The only non-ASCII letters that Python's case-insensitive regexes match to ASCII ones
# (dotted capital I, dotless i, long s, Kelvin sign). str.lower() keeps them, so a month
# that re.I found as "ſep" was then missing from every table keyed by ASCII names.
_LOOKALIKES = str.maketrans("\u0130\u0131\u017f\u212a", "iisk")


def fold_lookalikes(text: str) -> str:
    """``text`` with those four letters made ASCII; the length and every index stay the same."""
    return text.translate(_LOOKALIKES)

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")  # fmt: skip
_MONTH_NAME = re.compile(r"\b(" + "|".join(m.capitalize() for m in _MONTHS) + r")\b")
_MONTH_ANY = re.compile(r"\b(" + "|".join(_MONTHS) + r"|" + "|".join(m[:3] for m in _MONTHS) + r")\b", re.I)
_YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")
_NUMERIC = re.compile(r"\b((?:19|20)\d\d)[-/.](\d{1,2})[-/.]\d{1,2}\b")


@dataclass(frozen=True)
class DateFilter:
    months: frozenset[int]
    years: frozenset[int]

    def __bool__(self) -> bool:
        return bool(self.months or self.years)

    def matches(self, session_date: str | None) -> bool:
        """True if the session date agrees with every kind of constraint the query names."""
        if not session_date:
            return False
        month, year = session_month_year(session_date)
        if self.months and month not in self.months:
            return False
        if self.years and year not in self.years:
            return False
        return True


def query_dates(query: str) -> DateFilter:
    months = frozenset(_MONTHS.index(m.lower()) + 1 for m in _MONTH_NAME.findall(query))
    years = frozenset(int(y) for y in _YEAR.findall(query))
    return DateFilter(months, years)


@lru_cache(maxsize=4096)  # a namespace has few distinct session dates; a dated query checks ~100 chunks
def session_month_year(text: str) -> tuple[int | None, int | None]:
    text = fold_lookalikes(text)
    m = _NUMERIC.search(text)
    if m:
        return int(m.group(2)), int(m.group(1))
    name = _MONTH_ANY.search(text)
    year = _YEAR.search(text)
    month = None
    if name:
        word = name.group(1).lower()
        month = next(i + 1 for i, full in enumerate(_MONTHS) if full.startswith(word[:3]))
    return month, int(year.group(1)) if year else None
