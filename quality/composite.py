"""Composite score and grade: the user-facing contract.

composite = 0.30·technical + 0.25·aesthetic + 0.25·prompt_adherence + 0.20·detail, grades A ≥ 8.0, B ≥ 6.5,
C ≥ 5.0, D ≥ 3.0, else F. Weights and thresholds are configurable (:class:`CompositeConfig`).

When a dimension cannot be scored (its metrics' weights are absent) or does not apply (prompt adherence without
a prompt), the composite is computed over the dimensions that were scored, with their weights renormalised to sum
to 1, and the result says so: ``coverage`` is the share of the configured weight that was actually scored, and
``partial`` is true whenever a dimension that *applies* could not be scored. A dimension that does not apply
(no prompt) is excluded without making the grade partial.

No grade from a sliver (see :mod:`quality.grading`): the letter is given only when the technical dimension was
scored and ``coverage >= min_graded_coverage`` (0.5 by default); otherwise ``grade`` is ``None``,
``grade_status`` is ``"insufficient"`` and ``grade_reasons`` says why. ``composite_score`` is still the weighted
mean of what was scored, but it is not a grade then.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from quality.grading import DEFAULT_MIN_GRADED_COVERAGE, REQUIRED_DIMENSION, GradeStatus
from quality.specs import DIMENSIONS, Dimension

Grade = Literal["A", "B", "C", "D", "F"]


def default_weights() -> dict[Dimension, float]:
    return {"technical": 0.30, "aesthetic": 0.25, "prompt_adherence": 0.25, "detail": 0.20}


def default_grades() -> dict[Grade, float]:
    return {"A": 8.0, "B": 6.5, "C": 5.0, "D": 3.0}


class CompositeConfig(BaseModel):
    weights: dict[Dimension, float] = Field(default_factory=default_weights)
    grades: dict[Grade, float] = Field(default_factory=default_grades)
    """Lower bound (inclusive) of each grade; anything below the D bound is F."""
    min_graded_coverage: float = Field(
        DEFAULT_MIN_GRADED_COVERAGE, ge=0.0, le=1.0,
        description="least share of the applicable weight that must be scored for a letter grade",
    )  # fmt: skip

    @model_validator(mode="after")
    def _check(self) -> CompositeConfig:
        missing = [d for d in DIMENSIONS if d not in self.weights]
        if missing:
            raise ValueError(f"composite weights missing dimension(s): {', '.join(missing)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("composite weights must be >= 0 and not all zero")
        bounds = [self.grades.get(g) for g in ("A", "B", "C", "D")]
        if any(b is None for b in bounds):
            raise ValueError("grade thresholds need A, B, C and D")
        if not all(a > b for a, b in itertools.pairwise(bounds)):  # type: ignore[operator]
            raise ValueError(f"grade thresholds must decrease strictly from A to D, got {self.grades}")
        return self

    def grade(self, composite: float) -> Grade:
        bounds: tuple[Grade, ...] = ("A", "B", "C", "D")
        for g in bounds:
            if composite >= self.grades[g]:
                return g
        return "F"


class CompositeResult(BaseModel):
    composite_score: float
    grade: Grade | None = Field(description="None when the evidence is insufficient for a grade")
    grade_status: GradeStatus = "graded"
    grade_reasons: list[str] = Field(default_factory=list, description="why there is no grade (empty when graded)")
    coverage: float = Field(description="share of the configured dimension weight that was scored (0–1)")
    partial: bool = Field(description="true when a dimension that applies could not be scored")
    scored: list[Dimension]
    effective_weights: dict[Dimension, float]


def combine(
    dimension_scores: Mapping[Dimension, float | None],
    config: CompositeConfig,
    *,
    not_applicable: frozenset[Dimension] = frozenset(),
) -> CompositeResult:
    """Weighted mean of the scored dimensions, weights renormalised over what was scored.

    ``dimension_scores[d] is None`` means "could not be scored"; dimensions in ``not_applicable`` are left out
    of both the composite and the coverage denominator.
    """
    applicable = [d for d in DIMENSIONS if d not in not_applicable]
    scored = [d for d in applicable if dimension_scores.get(d) is not None and config.weights[d] > 0]
    total_applicable = sum(config.weights[d] for d in applicable)
    total_scored = sum(config.weights[d] for d in scored)
    if total_scored <= 0:
        return CompositeResult(
            composite_score=0.0, grade=None, grade_status="insufficient",
            grade_reasons=["no dimension could be scored"], coverage=0.0, partial=True, scored=[],
            effective_weights={},
        )  # fmt: skip
    eff = {d: config.weights[d] / total_scored for d in scored}
    composite = round(sum(eff[d] * float(dimension_scores[d] or 0.0) for d in scored), 4)
    coverage = total_scored / total_applicable if total_applicable > 0 else 0.0
    reasons = insufficient_reasons(scored, coverage, config, not_applicable=not_applicable)
    return CompositeResult(
        composite_score=composite,
        grade=None if reasons else config.grade(composite),
        grade_status="insufficient" if reasons else "graded",
        grade_reasons=reasons,
        coverage=round(coverage, 4),
        partial=len(scored) < len([d for d in applicable if config.weights[d] > 0]),
        scored=scored,
        effective_weights={d: round(w, 6) for d, w in eff.items()},
    )


def insufficient_reasons(
    scored: list[Dimension], coverage: float, config: CompositeConfig, *,
    not_applicable: frozenset[Dimension] = frozenset(),
) -> list[str]:  # fmt: skip
    """Why a composite over ``scored`` (covering ``coverage`` of the applicable weight) earns no grade; empty
    when it does."""
    reasons: list[str] = []
    required: Dimension = REQUIRED_DIMENSION  # type: ignore[assignment]
    if required not in not_applicable and config.weights[required] > 0 and required not in scored:
        reasons.append(f"{required} not scored")
    minimum = config.min_graded_coverage
    if coverage + 1e-9 < minimum:
        reasons.append(f"coverage {coverage:.0%} < {minimum:.0%} of the applicable weight")
    return reasons
