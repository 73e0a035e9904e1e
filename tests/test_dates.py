"""Calendar arithmetic of the temporal module (pipeline/modules/dates.py).

Every expected date below was computed by hand and its weekday checked with Python's
calendar: 8 May 2023 is a Monday, 8 May 2024 a Wednesday, 15 January 2024 a Monday,
18 March 2024 a Monday, 2024 is a leap year.
"""

from __future__ import annotations

from datetime import date

import pytest

from budgetmem.pipeline.modules.dates import (
    add_months,
    find_expressions,
    first_date_in,
    format_day,
    monday_of,
    parse_session_date,
    resolve,
)

MON_8_MAY_2023 = date(2023, 5, 8)
WED_8_MAY_2024 = date(2024, 5, 8)


def label(expr: str, anchor: date, tense: str | None = None) -> str | None:
    res = resolve(expr, anchor, tense)  # type: ignore[arg-type]
    return None if res is None else res.label


def test_weekdays_of_the_anchors_are_what_the_cases_assume() -> None:
    assert MON_8_MAY_2023.strftime("%A") == "Monday"
    assert WED_8_MAY_2024.strftime("%A") == "Wednesday"
    assert date(2024, 1, 15).strftime("%A") == "Monday"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("yesterday", "7 May 2023"),
        ("today", "8 May 2023"),
        ("tomorrow", "9 May 2023"),
        ("last night", "7 May 2023"),
        ("the day before yesterday", "6 May 2023"),
        ("last March", "March 2023"),
        ("last May", "May 2022"),  # the anchor's own month is not "last"
        ("last June", "June 2022"),
        ("next June", "June 2023"),
        ("next March", "March 2024"),
        ("last week", "the week of 1 May 2023"),
        ("this week", "the week of 8 May 2023"),
        ("next week", "the week of 15 May 2023"),
        ("last weekend", "the weekend of 6 May 2023"),
        ("last month", "April 2023"),
        ("next month", "June 2023"),
        ("last year", "2022"),
        ("next year", "2024"),
        ("two weeks ago", "around 24 April 2023"),
        ("a couple of weeks ago", "around 24 April 2023"),
        ("three days ago", "5 May 2023"),
        ("a few days ago", "around 5 May 2023"),
        ("6 months ago", "November 2022"),
        ("two years ago", "2021"),
        ("in two weeks", "around 22 May 2023"),
        ("last Tuesday", "2 May 2023"),
        ("last summer", "summer 2022"),
        ("last winter", "winter 2022-2023"),
        ("this summer", "summer 2023"),
        ("8 May 2023", "8 May 2023"),
        ("8 May, 2023", "8 May 2023"),
        ("May 8, 2023", "8 May 2023"),
        ("2023-05-08", "8 May 2023"),
        ("Sunday, 21 May 2023", "21 May 2023"),
        ("May 2022", "May 2022"),
        ("in 2019", "2019"),
        ("early June", "early June 2023"),
        ("the other day", "a few days before 8 May 2023"),
    ],
)
def test_resolve_from_monday_8_may_2023(expr: str, expected: str) -> None:
    assert label(expr, MON_8_MAY_2023) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("last Tuesday", "7 May 2024"),  # yesterday was a Tuesday
        ("last Wednesday", "1 May 2024"),  # a week ago, not today
        ("last Friday", "3 May 2024"),
        ("next Friday", "10 May 2024"),
        ("this Friday", "10 May 2024"),
        ("next Wednesday", "15 May 2024"),
        ("next weekend", "the weekend of 11 May 2024"),
    ],
)
def test_resolve_weekdays_from_wednesday_8_may_2024(expr: str, expected: str) -> None:
    assert label(expr, WED_8_MAY_2024) == expected


def test_year_boundaries() -> None:
    jan15 = date(2024, 1, 15)
    assert label("last month", jan15) == "December 2023"
    assert label("last year", jan15) == "2023"
    assert label("last week", jan15) == "the week of 8 January 2024"
    assert label("last December", jan15) == "December 2023"
    assert label("yesterday", date(2024, 1, 1)) == "31 December 2023"
    assert label("tomorrow", date(2023, 12, 31)) == "1 January 2024"
    assert label("next month", date(2023, 12, 5)) == "January 2024"
    assert label("last week", date(2024, 1, 3)) == "the week of 25 December 2023"
    # winter straddles the new year: on 15 January 2024 the current winter is not "last"
    assert label("last winter", jan15) == "winter 2022-2023"
    assert label("last winter", date(2024, 3, 18)) == "winter 2023-2024"


def test_leap_year_and_month_ends() -> None:
    assert label("three days ago", date(2024, 3, 2)) == "28 February 2024"
    assert label("the day before yesterday", date(2024, 3, 1)) == "28 February 2024"
    assert label("yesterday", date(2024, 3, 1)) == "29 February 2024"
    assert label("a month ago", date(2023, 3, 31)) == "February 2023"
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2023, 12, 15), 1) == date(2024, 1, 15)
    assert add_months(date(2023, 1, 15), -13) == date(2021, 12, 15)
    assert monday_of(date(2024, 3, 17)) == date(2024, 3, 11)


def test_missing_year_takes_the_nearest_unless_tense_says_otherwise() -> None:
    # the example conversation: said on 3 February 2024, "I move on the first of March"
    assert label("the first of March", date(2024, 2, 3)) == "1 March 2024"
    assert label("October 13th", date(2024, 9, 2)) == "13 October 2024"
    assert label("1 September", date(2024, 6, 9)) == "1 September 2024"
    assert label("December 25", date(2024, 1, 5)) == "25 December 2023"
    assert label("December 25", date(2024, 1, 5), "future") == "25 December 2024"
    assert label("March", date(2024, 2, 3)) == "March 2024"
    assert label("March", MON_8_MAY_2023) == "March 2023"
    assert label("in June", MON_8_MAY_2023, "past") == "June 2022"
    assert label("March", MON_8_MAY_2023, "future") == "March 2024"


def test_bare_weekday_uses_the_tense() -> None:
    monday = date(2024, 3, 18)
    assert label("on Sunday", monday) == "17 March 2024"
    assert label("Sunday", monday, "past") == "17 March 2024"
    assert label("Sunday", monday, "future") == "24 March 2024"
    assert label("Monday", monday) == "18 March 2024"  # the day itself


@pytest.mark.parametrize("expr", ["two weeks", "Thursdays", "every Friday", "Thursday evenings", "5 pm", "recently"])
def test_non_dates_resolve_to_none(expr: str) -> None:
    assert resolve(expr, MON_8_MAY_2023) is None


def test_resolved_spans() -> None:
    week = resolve("last week", MON_8_MAY_2023)
    assert week is not None and (week.start, week.end, week.exact) == (date(2023, 5, 1), date(2023, 5, 7), False)
    day = resolve("yesterday", MON_8_MAY_2023)
    assert day is not None and day.exact and day.start == day.end == date(2023, 5, 7)
    month = resolve("last month", date(2024, 3, 10))
    assert month is not None and (month.start, month.end) == (date(2024, 2, 1), date(2024, 2, 29))


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1:56 pm on 8 May, 2023", date(2023, 5, 8)),
        ("10:12 am on 3 February, 2024", date(2024, 2, 3)),
        ("2023/05/20 (Sat) 09:00", date(2023, 5, 20)),
        ("2023-05-20", date(2023, 5, 20)),
        ("2023-05-20T09:00:00", date(2023, 5, 20)),
        ("May 8, 2023", date(2023, 5, 8)),
        ("sometime in spring", None),
        ("31 February, 2023", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_session_date(stamp: str | None, expected: date | None) -> None:
    assert parse_session_date(stamp) == expected


def test_find_expressions() -> None:
    text = (
        "I went to a LGBTQ support group yesterday. Last March I met Mel, and on Sunday, 21 May 2023 "
        "we ran. I may go in May. In 2019 it cost 2000 dollars. Pottery on Thursday evenings, "
        "two weeks ago. May I ask? Opening day is 1 September."
    )
    found = [(e.text, e.kind) for e in find_expressions(text)]
    assert found == [
        ("yesterday", "relative"),
        ("Last March", "relative"),
        ("Sunday, 21 May 2023", "date"),
        ("May", "month"),
        ("2019", "year"),
        ("Thursday evenings", "weekday"),
        ("two weeks ago", "ago"),
        ("1 September", "date"),
    ]
    for e in find_expressions(text):
        assert text[e.start : e.end] == e.text


def test_first_date_in_reads_normalised_facts() -> None:
    assert first_date_in('Caroline went to the group: 7 May 2023 ("yesterday", said 8 May 2023)') == date(2023, 5, 7)
    assert first_date_in("Tomasz ran: the week of 1 May 2023") == date(2023, 5, 1)
    assert first_date_in("Mel painted: March 2023") == date(2023, 3, 1)
    assert first_date_in("in winter 2022-2023") == date(2022, 12, 1)
    assert first_date_in("on 1 September, no year here") is None
    assert format_day(date(2024, 1, 5)) == "5 January 2024"


@pytest.mark.parametrize("text", ["yeſterday", "firſt May 2023", "ſeptember 2023", "paſt week", "tueſday", "ſeven days ago",
                                  "ſpring", "Aprıl 2023", "AUGUſT 2023", "thIRTY-FİRST of May"])  # fmt: skip
def test_case_insensitive_lookalike_letters(text):
    # Found by fuzzing: re.IGNORECASE matches long s, dotless i, dotted capital I and the
    # Kelvin sign to ASCII letters, but str.lower() keeps them, so the table lookups after a
    # match raised KeyError / ValueError. They now read as their ASCII letters.
    assert resolve(text, MON_8_MAY_2023) == resolve(text.replace("ſ", "s").replace("ı", "i").replace("İ", "i"), MON_8_MAY_2023)
    assert [e.text for e in find_expressions(f"on {text}.")] == [text]


def test_retrieval_month_with_a_lookalike_letter():
    from budgetmem.retrieval.dates import session_month_year

    assert session_month_year("ſep 2023") == (9, 2023)  # was StopIteration


@pytest.mark.parametrize("anchor", [date(1, 1, 1), date(1, 1, 2), date(9999, 12, 31)])
@pytest.mark.parametrize("text", ["monday", "last week", "spring", "May", "next year", "999 weeks ago", "in 999 days",
                                  "last weekend", "this winter", "the day before yesterday"])  # fmt: skip
def test_anchors_at_the_ends_of_the_calendar(anchor, text):
    # Found by fuzzing: parse_session_date("0001-01-01") is a valid anchor, and resolving
    # from it (or from 9999-12-31) stepped outside date's range: ValueError / OverflowError.
    res = resolve(text, anchor)
    assert res is None or res.start <= res.end
    assert parse_session_date("0001-01-01") == date(1, 1, 1)
