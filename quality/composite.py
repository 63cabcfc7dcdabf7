"""Composite score and grade: the user-facing contract.

composite = 0.30·technical + 0.25·aesthetic + 0.25·prompt_adherence + 0.20·detail, grades A ≥ 8.0, B ≥ 6.5,
C ≥ 5.0, D ≥ 3.0, else F. Weights and thresholds are configurable (:class:`CompositeConfig`).

When a dimension cannot be scored (its metrics' weights are absent) or does not apply (prompt adherence without
a prompt), the composite is computed over the dimensions that were scored, with their weights renormalised to sum
to 1, and the result says so: ``coverage`` is the share of the configured weight that was actually scored, and
``partial`` is true whenever a dimension that *applies* could not be scored. A dimension that does not apply
(no prompt) is excluded without making the grade partial.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, model_validator

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
    grade: Grade
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
            composite_score=0.0, grade="F", coverage=0.0, partial=True, scored=[], effective_weights={}
        )
    eff = {d: config.weights[d] / total_scored for d in scored}
    composite = round(sum(eff[d] * float(dimension_scores[d] or 0.0) for d in scored), 4)
    coverage = total_scored / total_applicable if total_applicable > 0 else 0.0
    return CompositeResult(
        composite_score=composite,
        grade=config.grade(composite),
        coverage=round(coverage, 4),
        partial=len(scored) < len([d for d in applicable if config.weights[d] > 0]),
        scored=scored,
        effective_weights={d: round(w, 6) for d, w in eff.items()},
    )
