"""The grade texts follow the configured thresholds and coverage (quality.grade_text)."""

from __future__ import annotations

from quality.composite import CompositeConfig
from quality.grade_text import coverage_share, grade_bounds, grade_scale
from quality.report import QualityBlock

CUSTOM = CompositeConfig(grades={"A": 9.0, "B": 7.5, "C": 5.5, "D": 2.0}, min_graded_coverage=0.6)


def test_default_texts_read_as_before() -> None:
    assert grade_bounds() == "A ≥ 8.0, B ≥ 6.5, C ≥ 5.0, D ≥ 3.0, else F"
    assert grade_scale() == "A ≥ 8 excellent, B ≥ 6.5 good, C ≥ 5 acceptable, D ≥ 3 poor, F failed"
    assert coverage_share() == "half"
    assert QualityBlock.model_fields["grade"].description is not None
    assert QualityBlock.model_fields["grade"].description.startswith(grade_bounds())


def test_texts_follow_a_configured_scale() -> None:
    assert grade_bounds(CUSTOM) == "A ≥ 9.0, B ≥ 7.5, C ≥ 5.5, D ≥ 2.0, else F"
    assert grade_scale(CUSTOM) == "A ≥ 9 excellent, B ≥ 7.5 good, C ≥ 5.5 acceptable, D ≥ 2 poor, F failed"
    assert coverage_share(CUSTOM) == "60 %"
