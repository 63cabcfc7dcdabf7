import pytest
from pydantic import ValidationError

from quality.composite import CompositeConfig, combine

ALL = {"technical": 8.0, "aesthetic": 6.0, "prompt_adherence": 7.0, "detail": 5.0}


def test_design_formula_and_weights():
    result = combine(ALL, CompositeConfig())
    assert result.composite_score == pytest.approx(0.30 * 8 + 0.25 * 6 + 0.25 * 7 + 0.20 * 5)
    assert result.coverage == 1.0 and not result.partial
    assert result.scored == ["technical", "aesthetic", "prompt_adherence", "detail"]


@pytest.mark.parametrize(
    ("score", "grade"),
    [(10.0, "A"), (8.0, "A"), (7.9999, "B"), (6.5, "B"), (6.49, "C"), (5.0, "C"), (4.99, "D"), (3.0, "D"),
     (2.99, "F"), (0.0, "F")],
)  # fmt: skip
def test_grade_boundaries_are_inclusive_lower_bounds(score, grade):
    assert CompositeConfig().grade(score) == grade


def test_missing_dimension_renormalises_and_is_partial():
    scores = dict(ALL, aesthetic=None)
    result = combine(scores, CompositeConfig())
    expected = (0.30 * 8 + 0.25 * 7 + 0.20 * 5) / 0.75
    assert result.composite_score == pytest.approx(expected, abs=1e-4)
    assert result.partial
    assert result.coverage == pytest.approx(0.75)
    assert sum(result.effective_weights.values()) == pytest.approx(1.0)
    assert "aesthetic" not in result.effective_weights


def test_not_applicable_dimension_is_excluded_without_partial():
    scores = dict(ALL, prompt_adherence=None)
    result = combine(scores, CompositeConfig(), not_applicable=frozenset({"prompt_adherence"}))
    assert not result.partial
    assert result.coverage == 1.0
    assert result.composite_score == pytest.approx((0.30 * 8 + 0.25 * 6 + 0.20 * 5) / 0.75, abs=1e-4)


def test_nothing_scored_is_F_with_zero_coverage():
    result = combine(dict.fromkeys(ALL), CompositeConfig())
    assert result.grade == "F" and result.coverage == 0.0 and result.partial


def test_custom_weights_and_grades():
    cfg = CompositeConfig(
        weights={"technical": 1, "aesthetic": 0, "prompt_adherence": 0, "detail": 0},
        grades={"A": 9, "B": 7, "C": 5, "D": 1},
    )
    result = combine(ALL, cfg)
    assert result.composite_score == 8.0 and result.grade == "B"
    assert not result.partial  # a zero-weight dimension is not "missing"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": {"technical": 1.0}},
        {"weights": {"technical": -1, "aesthetic": 1, "prompt_adherence": 1, "detail": 1}},
        {"grades": {"A": 5, "B": 6.5, "C": 5, "D": 3}},
        {"grades": {"A": 8, "B": 6.5, "C": 5}},
    ],
)
def test_invalid_config_is_rejected_with_a_reason(kwargs):
    with pytest.raises(ValidationError):
        CompositeConfig(**kwargs)
