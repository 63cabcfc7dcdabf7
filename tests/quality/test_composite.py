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


def test_nothing_scored_is_not_graded_with_zero_coverage():
    result = combine(dict.fromkeys(ALL), CompositeConfig())
    assert result.grade is None and result.grade_status == "insufficient"
    assert result.coverage == 0.0 and result.partial
    assert result.grade_reasons == ["no dimension could be scored"]


def test_a_sliver_of_evidence_gets_no_grade():
    """The incident: edge density alone (detail, 20 % of the weight) at 10.0 was graded A."""
    result = combine({"technical": None, "aesthetic": None, "prompt_adherence": None, "detail": 10.0},
                     CompositeConfig())  # fmt: skip
    assert result.composite_score == 10.0
    assert result.grade is None and result.grade_status == "insufficient"
    assert result.grade_reasons == ["technical not scored", "coverage 20% < 50% of the applicable weight"]


def test_technical_is_required_even_with_enough_coverage():
    result = combine(dict(ALL, technical=None), CompositeConfig())
    assert result.coverage == pytest.approx(0.70)
    assert result.grade is None and result.grade_reasons == ["technical not scored"]


def test_technical_plus_detail_at_exactly_half_the_weight_is_graded():
    result = combine(dict(ALL, aesthetic=None, prompt_adherence=None), CompositeConfig())
    assert result.coverage == pytest.approx(0.5)
    assert result.grade_status == "graded" and result.grade is not None and result.grade_reasons == []


def test_coverage_minimum_is_configurable():
    scores = dict(ALL, aesthetic=None, prompt_adherence=None)  # 50 % of the weight, technical scored
    strict = combine(scores, CompositeConfig(min_graded_coverage=0.6))
    assert strict.grade is None and strict.grade_reasons == ["coverage 50% < 60% of the applicable weight"]
    lenient = combine({"technical": 6.0, "aesthetic": None, "prompt_adherence": None, "detail": None},
                      CompositeConfig(min_graded_coverage=0.25))  # fmt: skip
    assert lenient.grade == "C" and lenient.coverage == pytest.approx(0.3)


def test_coverage_counts_only_applicable_weight():
    """No prompt: technical + detail are 0.5 / 0.75 = 67 % of what applies, so graded."""
    scores = {"technical": 7.0, "aesthetic": None, "prompt_adherence": None, "detail": 7.0}
    result = combine(scores, CompositeConfig(), not_applicable=frozenset({"prompt_adherence"}))
    assert result.coverage == pytest.approx(0.6667, abs=1e-4) and result.grade == "B"


def test_zero_weight_technical_is_not_required():
    cfg = CompositeConfig(weights={"technical": 0, "aesthetic": 1, "prompt_adherence": 0, "detail": 1})
    result = combine(dict(ALL, technical=None), cfg)
    assert result.grade_status == "graded" and result.grade == "C"


def test_coverage_minimum_out_of_range_is_rejected():
    with pytest.raises(ValidationError):
        CompositeConfig(min_graded_coverage=1.5)


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
