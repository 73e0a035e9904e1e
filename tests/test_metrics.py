"""LoCoMo F1 against cases worked out by hand."""

import pytest

from budgetmem.eval.metrics import exact_match, locomo_f1, normalize_answer, token_f1


def test_normalisation():
    assert normalize_answer("The Lisbon, Portugal!") == "lisbon portugal"
    assert normalize_answer("Salt and pepper; an apple") == "salt pepper apple"


@pytest.mark.parametrize(
    ("pred", "gold", "f1"),
    [
        ("Zakwas", "Zakwas", 1.0),
        ("the bakery Zakwas", "Zakwas", 2 * (1 / 2) * 1 / (1 / 2 + 1)),  # tokens [bakeri, zakwa] vs [zakwa]
        ("7 May 2023", "8 May 2023", 2 * (2 / 3) * (2 / 3) / (4 / 3)),  # 2 of 3 tokens shared each way
        ("running", "runs", 1.0),  # both stem to "run"
        ("no", "yes", 0.0),
        ("", "Alfama", 0.0),
    ],
)
def test_token_f1_by_hand(pred, gold, f1):
    assert token_f1(pred, gold) == pytest.approx(f1)


def test_categories():
    # category 1: each gold part takes its best prediction part, averaged over gold parts
    assert locomo_f1("pottery, running", "running, pottery, painting", 1) == pytest.approx(2 / 3)
    # category 3: gold cut at the first ';'
    assert locomo_f1("Likely yes", "Likely yes; she loves the outdoors", 3) == 1.0
    # category 5: right only when the answer says it is not available
    assert locomo_f1("No information available", "ignored", 5) == 1.0
    assert locomo_f1("Blue", "ignored", 5) == 0.0
    # numbers as gold answers
    assert locomo_f1("2022", 2022, 2) == 1.0


def test_exact_match():
    assert exact_match("The Alfama.", "alfama") == 1.0
    assert exact_match("Alfama district", "Alfama") == 0.0
