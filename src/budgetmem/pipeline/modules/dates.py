"""Calendar arithmetic for the temporal module: find time expressions, normalise them.

Routing paper Appendix A.4.1 (Temporal Module): LOW "identifies explicit time expressions
and constructs event-time anchors"; MID "normalize[s] them into a consistent form". This
file holds the pure parts of both: ``find_expressions`` (the explicit-cue detector of
LOW) and ``resolve`` (turning "last March" said on 8 May 2023 into "March 2023" for MID).
Nothing here touches spaCy or the encoder, so every rule is testable with hand-computed
dates.

Conventions (chosen once, documented here, tested in tests/test_dates.py):
- weeks run Monday to Sunday; "last week" is the Monday-to-Sunday week before the
  anchor's week, rendered "the week of <its Monday>";
- "last Tuesday" is the most recent Tuesday strictly before the anchor day, "next Tuesday"
  the first one strictly after it, "this Tuesday" the Tuesday of the anchor's week;
- a bare weekday ("on Sunday") is the most recent one on or before the anchor, or the
  first one on or after it when the sentence speaks of the future;
- a month or day-and-month without a year takes the year that puts it nearest the anchor
  (past wins ties), unless the tense says past or future;
- seasons are meteorological (northern hemisphere): winter is December to February;
- "N weeks ago" is approximate ("around ..."), "N days ago" exact, "N months ago" a month,
  "N years ago" a year.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from budgetmem.retrieval.dates import fold_lookalikes

__all__ = [
    "Tense",
    "Resolved",
    "Expression",
    "MONTH_NAMES",
    "format_day",
    "format_month",
    "add_months",
    "monday_of",
    "parse_session_date",
    "find_expressions",
    "resolve",
    "first_date_in",
]

Tense = Literal["past", "future"] | None

MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTHS: dict[str, int] = {name.lower(): i + 1 for i, name in enumerate(MONTH_NAMES)}
_MONTHS.update({name.lower()[:3]: i + 1 for i, name in enumerate(MONTH_NAMES)})
_MONTHS["sept"] = 9
_WEEKDAYS = {d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_ORDINAL_WORDS = {
    w: i + 1
    for i, w in enumerate(
        (
            "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
            "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty-first "
            "twenty-second twenty-third twenty-fourth twenty-fifth twenty-sixth twenty-seventh "
            "twenty-eighth twenty-ninth thirtieth thirty-first"
        ).split()
    )
}
_COUNT_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "couple of": 2, "a few": 3, "few": 3, "several": 3,
}  # fmt: skip
_VAGUE_COUNTS = {"a couple of", "couple of", "a few", "few", "several"}


@dataclass(frozen=True)
class Resolved:
    """A time expression pinned to the calendar."""

    label: str
    """Normalised rendering: "7 May 2023", "March 2023", "the week of 1 May 2023", "2022"."""
    start: date
    """First day the expression can denote (the sort key of a timeline)."""
    end: date
    """Last day it can denote."""
    exact: bool
    """True when it names one day for certain."""


@dataclass(frozen=True)
class Expression:
    """A time expression found in a text by ``find_expressions``."""

    start: int
    end: int
    text: str
    kind: str
    """Which rule found it: 'date', 'month', 'year', 'relative', 'weekday', 'ago', 'season', 'time'."""


# ---------------------------------------------------------------- small helpers
def format_day(d: date) -> str:
    return f"{d.day} {MONTH_NAMES[d.month - 1]} {d.year}"


def format_month(year: int, month: int) -> str:
    return f"{MONTH_NAMES[month - 1]} {year}"


def add_months(d: date, n: int) -> date:
    """``d`` moved by ``n`` calendar months, the day clamped to the target month's length."""
    index = d.year * 12 + (d.month - 1) + n
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, _month_length(year, month)))


def _month_length(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def monday_of(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _month_span(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, _month_length(year, month))


def _day(d: date, *, around: bool = False) -> Resolved:
    return Resolved(("around " if around else "") + format_day(d), d, d, not around)


def _month(year: int, month: int) -> Resolved:
    start, end = _month_span(year, month)
    return Resolved(format_month(year, month), start, end, False)


def _year(year: int) -> Resolved:
    return Resolved(str(year), date(year, 1, 1), date(year, 12, 31), False)


def _week(monday: date) -> Resolved:
    return Resolved(f"the week of {format_day(monday)}", monday, monday + timedelta(days=6), False)


def _weekend(saturday: date) -> Resolved:
    return Resolved(f"the weekend of {format_day(saturday)}", saturday, saturday + timedelta(days=1), False)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# ---------------------------------------------------------------- patterns
def _alt(*options: str) -> str:
    return "(?:" + "|".join(options) + ")"


_MONTH_FULL = _alt(*(m.lower() for m in MONTH_NAMES))
# Full names first; only an abbreviation may carry a dot (else "1 September." eats the full stop).
_MONTH_ANY = _alt(_MONTH_FULL, _alt("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept", "sep", "oct", "nov", "dec") + r"\.?")
# A bare month name must be capitalised ("we march", "I may") and "May" must not start a question.
_MONTH_BARE = "(?-i:" + "|".join(
    r"May(?!\s+(?:I|we|you|he|she|they|it)\b)" if m == "May" else m for m in MONTH_NAMES
) + ")"
_YEAR = r"(?:19|20)\d{2}"
_ORD = _alt(*sorted(_ORDINAL_WORDS, key=len, reverse=True))
_DAYNUM = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_WEEKDAY = _alt(*_WEEKDAYS)
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_COUNT = _alt(r"\d{1,3}", r"a\s+couple\s+of", r"couple\s+of", r"a\s+few", "few", "several", "an?", *_NUMBER_WORDS)
_UNIT = r"(?:day|week|month|year)s?"
_PART = r"(?:\s+(?:morning|afternoon|evening|night)(?P<part_plural>s)?)?"
_QUAL = r"(?:(?P<qual>early|mid|late|the\s+end\s+of|the\s+beginning\s+of|the\s+start\s+of)[\s-]+)?"

_P_ISO = r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
_WEEKDAY_PREFIX = rf"(?:{_WEEKDAY},?\s+)?"
_P_DMY = (
    rf"{_WEEKDAY_PREFIX}(?:the\s+)?(?P<d>{_DAYNUM}|{_ORD})\s+(?:of\s+)?(?P<mon>{_MONTH_ANY}),?(?:\s+(?P<y>{_YEAR}))?"
)
_P_MDY = rf"{_WEEKDAY_PREFIX}(?P<mon>{_MONTH_ANY})\s+(?:the\s+)?(?P<d>{_DAYNUM})(?![\d:])(?:,?\s+(?P<y>{_YEAR}))?"
_P_MY = rf"{_QUAL}(?P<mon>{_MONTH_ANY}),?\s+(?P<y>{_YEAR})"
_P_REL_MONTH = rf"{_QUAL}(?P<rel>last|this|next|past|coming)\s+(?P<mon>{_MONTH_ANY})"
_P_BARE_MONTH = rf"{_QUAL}(?P<mon>{_MONTH_BARE})"
# A four-digit number followed by a unit is an amount ("2000 dollars"), not a year.
_AMOUNT_UNIT = r"\s*" + _alt(
    "dollars", "euros", "pounds", "bucks", "people", "steps", "km", "miles", "kilometres", "kilometers",
    "metres", "meters", "words", "calories", "feet", "points", "pages", "followers",
) + r"\b"  # fmt: skip
_P_YEAR = rf"{_QUAL}(?<![\d,.$€£])(?P<y>{_YEAR})(?![\d%]|,\d|{_AMOUNT_UNIT})"
_P_DAYWORD = "(?P<w>" + "|".join(
    (
        r"the\s+day\s+before\s+yesterday", r"the\s+day\s+after\s+tomorrow", "yesterday", "today", "tonight",
        "tomorrow", r"last\s+night", r"this\s+(?:morning|afternoon|evening)", r"the\s+other\s+day",
    )
) + ")"  # fmt: skip
_P_REL_UNIT = rf"{_QUAL}(?P<rel>last|this|next|past|coming)\s+(?P<unit>week(?:end)?|month|year)"
_P_WEEKDAY = rf"(?:(?P<rel>last|this|next|past|coming|every)\s+)?(?P<wd>{_WEEKDAY})(?P<plural>s)?{_PART}"
_P_AGO = rf"(?P<n>{_COUNT})\s+(?P<unit>{_UNIT})\s+(?P<dir>ago|from\s+now)"
_P_IN = rf"in\s+(?P<n>{_COUNT})\s+(?P<unit>{_UNIT})(?!\s+ago)"
_P_SEASON = rf"(?:(?P<rel>last|this|next|past|coming)\s+)?(?P<season>spring|summer|autumn|fall|winter)(?:\s+(?P<y>{_YEAR}))?"
_P_TIME = r"(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2}|noon|midnight)"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# ---------------------------------------------------------------- resolvers
Resolver = Callable[[re.Match[str], date, Tense], "Resolved | None"]


def _pick_year(candidates: list[tuple[date, int]], anchor: date, tense: Tense) -> int:
    """The year among ``candidates`` ((representative day, year)) that the tense or nearness picks."""
    if tense == "past":
        past = [c for c in candidates if c[0] <= anchor]
        if past:
            return max(past)[1]
    if tense == "future":
        future = [c for c in candidates if c[0] >= anchor]
        if future:
            return min(future)[1]
    # Nearest to the anchor; on a tie the earlier one (chat mostly reports what happened).
    return min(candidates, key=lambda c: (abs((c[0] - anchor).days), c[0]))[1]


def _qualify(res: Resolved, match: re.Match[str]) -> Resolved:
    """Prefix "early" / "late" / "the end of" to a month or year label."""
    qual = match.groupdict().get("qual")
    if not qual:
        return res
    return Resolved(f"{' '.join(qual.lower().split())} {res.label}", res.start, res.end, False)


def _day_of(text: str) -> int:
    t = text.lower()
    return _ORDINAL_WORDS[t] if t in _ORDINAL_WORDS else int(re.sub(r"\D", "", t))


def _r_iso(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    d = _safe_date(int(m["y"]), int(m["m"]), int(m["d"]))
    return _day(d) if d else None


def _r_day_month(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    month = _MONTHS[m["mon"].lower().rstrip(".")]
    day = _day_of(m["d"])
    if m["y"]:
        d = _safe_date(int(m["y"]), month, day)
        return _day(d) if d else None
    options = [(d, d.year) for y in (anchor.year - 1, anchor.year, anchor.year + 1) if (d := _safe_date(y, month, day))]
    if not options:
        return None
    year = _pick_year(options, anchor, tense)
    return _day(date(year, month, day))


def _r_month_year(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    return _qualify(_month(int(m["y"]), _MONTHS[m["mon"].lower().rstrip(".")]), m)


def _r_rel_month(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    month = _MONTHS[m["mon"].lower().rstrip(".")]
    rel = m["rel"].lower()
    if rel in ("last", "past"):  # the latest such month strictly before the anchor's month
        year = anchor.year if month < anchor.month else anchor.year - 1
    elif rel == "this":
        year = anchor.year
    else:  # next / coming: the first such month strictly after the anchor's month
        year = anchor.year if month > anchor.month else anchor.year + 1
    return _qualify(_month(year, month), m)


def _r_bare_month(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    month = _MONTHS[m["mon"].lower().rstrip(".")]
    here = date(anchor.year, anchor.month, 1)
    options = [(date(y, month, 1), y) for y in (anchor.year - 1, anchor.year, anchor.year + 1)]
    return _qualify(_month(_pick_year(options, here, tense), month), m)


def _r_year(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    return _qualify(_year(int(m["y"])), m)


def _r_dayword(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    w = " ".join(m["w"].lower().split())
    offsets = {
        "the day before yesterday": -2,
        "yesterday": -1,
        "last night": -1,
        "today": 0,
        "tonight": 0,
        "this morning": 0,
        "this afternoon": 0,
        "this evening": 0,
        "tomorrow": 1,
        "the day after tomorrow": 2,
    }
    if w == "the other day":  # a few days back, not a fixed day
        return Resolved(
            f"a few days before {format_day(anchor)}", anchor - timedelta(days=7), anchor - timedelta(days=1), False
        )
    return _day(anchor + timedelta(days=offsets[w]))


def _r_rel_unit(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    rel = m["rel"].lower()
    step = {"last": -1, "past": -1, "this": 0, "coming": 1, "next": 1}[rel]
    unit = m["unit"].lower()
    if unit == "week":
        return _week(monday_of(anchor) + timedelta(weeks=step))
    if unit == "weekend":
        if step < 0:  # the weekend of the week before the anchor's week
            return _weekend(monday_of(anchor) - timedelta(days=2))
        if step == 0:
            return _weekend(monday_of(anchor) + timedelta(days=5))
        return _weekend(_weekday_after(anchor, 5))
    if unit == "month":
        d = add_months(anchor, step)
        return _qualify(_month(d.year, d.month), m)
    return _qualify(_year(anchor.year + step), m)


def _weekday_after(anchor: date, weekday: int) -> date:
    """The first ``weekday`` strictly after ``anchor``."""
    return anchor + timedelta(days=(weekday - anchor.weekday() - 1) % 7 + 1)


def _weekday_before(anchor: date, weekday: int) -> date:
    """The last ``weekday`` strictly before ``anchor``."""
    return anchor - timedelta(days=(anchor.weekday() - weekday - 1) % 7 + 1)


def _r_weekday(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    rel = (m["rel"] or "").lower()
    if rel == "every" or m["plural"] or m["part_plural"]:
        return None  # a habit ("on Thursdays"), not a date
    wd = _WEEKDAYS[m["wd"].lower()]
    if rel in ("last", "past"):
        return _day(_weekday_before(anchor, wd))
    if rel in ("next", "coming"):
        return _day(_weekday_after(anchor, wd))
    if rel == "this":
        return _day(monday_of(anchor) + timedelta(days=wd))
    if tense == "future":
        return _day(_weekday_after(anchor - timedelta(days=1), wd))  # on or after the anchor
    return _day(_weekday_before(anchor + timedelta(days=1), wd))  # on or before the anchor


def _count(text: str) -> tuple[int, bool]:
    t = " ".join(text.lower().split())
    if t.isdigit():
        return int(t), False
    return _COUNT_WORDS[t], t in _VAGUE_COUNTS


def _shift(anchor: date, n: int, unit: str) -> tuple[date, str]:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        return anchor + timedelta(days=n), unit
    if unit == "week":
        return anchor + timedelta(weeks=n), unit
    if unit == "month":
        return add_months(anchor, n), unit
    return _safe_date(anchor.year + n, anchor.month, min(anchor.day, 28)) or anchor, unit


def _r_offset(n_text: str, unit: str, sign: int, anchor: date) -> Resolved:
    n, vague = _count(n_text)
    target, unit = _shift(anchor, sign * n, unit)
    if unit == "day":
        return _day(target, around=vague)
    if unit == "week":
        return _day(target, around=True)
    if unit == "month":
        return _month(target.year, target.month)
    return _year(target.year)


def _r_ago(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    sign = -1 if m["dir"].lower() == "ago" else 1
    return _r_offset(m["n"], m["unit"], sign, anchor)


def _r_in(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    return _r_offset(m["n"], m["unit"], 1, anchor)


def _season(name: str, start_year: int) -> Resolved:
    month = _SEASON_START[name]
    start = date(start_year, month, 1)
    end_month = add_months(start, 2)
    end = date(end_month.year, end_month.month, _month_length(end_month.year, end_month.month))
    label = f"winter {start_year}-{start_year + 1}" if month == 12 else f"{name} {start_year}"
    return Resolved(label, start, end, False)


def _r_season(m: re.Match[str], anchor: date, tense: Tense) -> Resolved | None:
    name = m["season"].lower()
    if name == "fall":
        name = "autumn"
    if m["y"]:
        return _season(name, int(m["y"]))
    occurrences = [_season(name, y) for y in range(anchor.year - 2, anchor.year + 2)]
    rel = (m["rel"] or "").lower()
    if rel in ("last", "past"):  # the latest one already over
        return max((s for s in occurrences if s.end < anchor), key=lambda s: s.start)
    if rel in ("next", "coming"):  # the first one not yet begun
        return min((s for s in occurrences if s.start > anchor), key=lambda s: s.start)
    if rel == "this":
        current = [s for s in occurrences if s.start <= anchor <= s.end]
        if current:
            return current[0]
        return min((s for s in occurrences if s.start.year == anchor.year), key=lambda s: s.start)
    if tense == "future":
        return min((s for s in occurrences if s.end >= anchor), key=lambda s: s.start)
    return max((s for s in occurrences if s.start <= anchor), key=lambda s: s.start)


# Order matters for ``resolve``: the first full match wins. For ``find_expressions`` the
# longest match wins, so "8 May 2023" is one expression, not "May" plus "2023".
_RULES: tuple[tuple[str, re.Pattern[str], Resolver | None], ...] = (
    ("date", _compile(_P_ISO), _r_iso),
    ("date", _compile(_P_DMY), _r_day_month),
    ("date", _compile(_P_MDY), _r_day_month),
    ("month", _compile(_P_MY), _r_month_year),
    ("relative", _compile(_P_REL_MONTH), _r_rel_month),
    ("relative", _compile(_P_REL_UNIT), _r_rel_unit),
    ("relative", _compile(_P_DAYWORD), _r_dayword),
    ("ago", _compile(_P_AGO), _r_ago),
    ("ago", _compile(_P_IN), _r_in),
    ("weekday", _compile(_P_WEEKDAY), _r_weekday),
    ("season", _compile(_P_SEASON), _r_season),
    ("month", _compile(_P_BARE_MONTH), _r_bare_month),
    ("year", _compile(_P_YEAR), _r_year),
    ("time", _compile(_P_TIME), None),
)
_LEADING_WORDS = re.compile(r"^(?:on|in|at|during|since|by|until|till|from|around|about)\s+", re.IGNORECASE)


# ---------------------------------------------------------------- public API
def find_expressions(text: str) -> list[Expression]:
    """Explicit time expressions in ``text``, left to right, never overlapping."""
    found: list[Expression] = []
    folded = fold_lookalikes(text)  # the rules' tables are keyed by ASCII words; indices stay
    for kind, pattern, _ in _RULES:
        for m in pattern.finditer(folded):
            if m.end() == m.start() or not _on_word_boundary(text, m.start(), m.end()):
                continue
            found.append(Expression(m.start(), m.end(), text[m.start() : m.end()].strip(), kind))
    # Longest first, then leftmost; keep a span only where it overlaps nothing kept.
    kept: list[Expression] = []
    for e in sorted(found, key=lambda e: (-(e.end - e.start), e.start)):
        if all(e.end <= k.start or e.start >= k.end for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: e.start)


def _on_word_boundary(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def resolve(expression: str, anchor: date, tense: Tense = None) -> Resolved | None:
    """``expression`` as a calendar date or span, seen from a conversation held on ``anchor``.

    ``tense`` breaks the tie where the words alone do not say which year or which
    Sunday is meant ("on Sunday", "in June"). None when the expression is no date
    (a duration, a habit, a clock time, "recently"), or when the date it names falls
    outside the years 1-9999 that Python's calendar holds ("last week" said on 1 January
    of year 1: a session stamp can be any string, so the anchor can be that early).
    """
    text = " ".join(fold_lookalikes(expression).strip().rstrip(".,;:!?").split())
    # "in two weeks" is a rule of its own; "in June" is "June" after a preposition.
    for candidate in dict.fromkeys((text, _LEADING_WORDS.sub("", text))):
        for _, pattern, resolver in _RULES:
            m = pattern.fullmatch(candidate)
            if m is not None:
                try:
                    return resolver(m, anchor, tense) if resolver else None
                except (ValueError, OverflowError):  # date() / timedelta past year 1 or 9999
                    return None
    return None


_FULL_DATE_RULES = (_RULES[0], _RULES[1], _RULES[2])


def parse_session_date(text: str | None) -> date | None:
    """The day of a session stamp: LoCoMo "1:56 pm on 8 May, 2023", LongMemEval
    "2023/05/20 (Sat) 09:00", ISO "2023-05-20T09:00"; None when no full date is found."""
    if not text:
        return None
    text = fold_lookalikes(text)
    for _, pattern, resolver in _FULL_DATE_RULES:
        for m in pattern.finditer(text):
            if m.groupdict().get("y") and resolver is not None:
                res = resolver(m, date(2000, 1, 1), None)
                if res is not None:
                    return res.start
    return None


def first_date_in(text: str) -> date | None:
    """The start of the first expression in ``text`` that names a calendar date by itself
    (a day, month or year with its year: "7 May 2023", "March 2023", "the week of 1 May
    2023", "2022"), so a timeline can sort facts whose dates are already normalised."""
    for e in find_expressions(text):
        if e.kind not in ("date", "month", "year", "season"):
            continue
        res = resolve(e.text, date(2000, 1, 1))
        if res is not None and _has_year(e.text):
            return res.start
    return None


def _has_year(text: str) -> bool:
    return re.search(rf"(?<!\d){_YEAR}(?!\d)", text) is not None or re.search(r"\d{4}[-/]", text) is not None
