"""From one image's metric results to its :class:`~quality.report.QualityReport`, step by step.

The scorer gathers what it learns about an image in one :class:`ImageScoring` (the decoded image, the prompt,
each metric's result, timings, notes, the backends' reusable extras) and its calibration step answers with one
:class:`Calibrated`; :func:`assemble` then builds the report from the two, by concern:

* :func:`dimension_scores`: the weighted mean of each dimension's metrics (a calibrated score standing in for the
  metrics it replaces);
* :func:`verdict`: composite, grade or why there is none, coverage (:mod:`quality.composite`);
* :func:`dimension_statuses`, :func:`score_blocks`, :func:`coverage`: the report's parts;
* the notes a reader needs (NIQE upscaled, not graded, partial).

Nothing here loads a model or touches the scorer's state: each step is a function of its inputs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quality.composite import CompositeConfig, Grade, combine
from quality.grading import REQUIRED_DIMENSION, niqe_upscaled_size, not_graded_text
from quality.image_io import PreparedImage
from quality.report import (
    SCORE_BLOCKS,
    CalibrationInfo,
    Coverage,
    DimensionScores,
    DimensionStatus,
    MetricResult,
    QualityReport,
)
from quality.specs import DIMENSIONS, METRICS, PROMPT_DIMENSIONS, Dimension


@dataclass
class ImageScoring:
    """What the scorer has learnt about one image so far (filled by its steps, read by :func:`assemble`)."""

    prepared: PreparedImage
    prompt: str | None
    started: float
    """``time.perf_counter()`` when scoring began (the report's ``seconds``)."""
    flat: bool = False
    """One flat colour: a failed generation, graded F without running the metrics."""
    results: dict[str, MetricResult] = field(default_factory=dict)
    """Metric name → its result, for every metric of the table once the backends have run."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per backend (and ``calibration``)."""
    notes: list[str] = field(default_factory=list)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Backend name → intermediate results other steps may reuse (e.g. the NSS features)."""

    @property
    def not_applicable(self) -> frozenset[Dimension]:
        """Dimensions that do not apply to this image (prompt adherence without a prompt)."""
        return frozenset(PROMPT_DIMENSIONS if self.prompt is None else ())

    def ran(self, metric: str) -> bool:
        return metric in self.results and self.results[metric].status == "ok"


@dataclass(frozen=True)
class Calibrated:
    """The calibration step's answer: the dimension scores it produced, what they replace, and what the report
    says about it (``info`` is None when calibration is off)."""

    scores: Mapping[Dimension, float] = field(default_factory=dict)
    covers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Dimension → the metrics a calibrated score of it stands in for (the model's ``dimensions``)."""
    info: CalibrationInfo | None = None


@dataclass(frozen=True)
class Verdict:
    """The composite and the grade (or why there is none)."""

    composite_score: float
    grade: Grade | None
    coverage: float
    partial: bool
    reasons: list[str]
    effective_weights: dict[Dimension, float]


def dimension_scores(results: Mapping[str, MetricResult], calibrated: Calibrated) -> dict[Dimension, float | None]:
    """Weighted mean of each dimension's metric scores. A calibrated dimension score stands in for the
    metrics the model replaces (with their summed weight); other metrics of that dimension (e.g. TOPIQ in
    detail, when it runs) keep their spec-table scores and weights."""
    scores: dict[Dimension, float | None] = {}
    for dim in DIMENSIONS:
        replaced = set(calibrated.covers.get(dim, [])) if dim in calibrated.scores else set()
        ok = [
            (METRICS[r.name].weight, r.score)
            for r in results.values()
            if r.dimension == dim and r.status == "ok" and r.name not in replaced
        ]
        if replaced:
            ok.append((sum(METRICS[m].weight for m in replaced), calibrated.scores[dim]))
        total = sum(w for w, _ in ok)
        scores[dim] = round(sum(w * s for w, s in ok if s is not None) / total, 4) if total > 0 else None
    return scores


def verdict(state: ImageScoring, dims: Mapping[Dimension, float | None], cfg: CompositeConfig) -> Verdict:
    """Composite and grade over the scored dimensions; a flat image is a definite F without metrics."""
    if state.flat:
        return Verdict(composite_score=0.0, grade="F", coverage=0.0, partial=False, reasons=[], effective_weights={})
    composite = combine(dims, cfg, not_applicable=state.not_applicable)
    return Verdict(
        composite_score=composite.composite_score,
        grade=composite.grade,
        coverage=composite.coverage,
        partial=composite.partial,
        reasons=explain(composite.grade_reasons, state.results),
        effective_weights=composite.effective_weights,
    )


def dimension_statuses(
    dims: Mapping[Dimension, float | None], not_applicable: frozenset[Dimension]
) -> dict[Dimension, DimensionStatus]:
    return {
        dim: "not_applicable" if dim in not_applicable else "scored" if dims[dim] is not None else "unavailable"
        for dim in DIMENSIONS
    }


def score_blocks(
    dims: Mapping[Dimension, float | None], results: Mapping[str, MetricResult]
) -> dict[Dimension, DimensionScores]:
    """Each dimension's block: its score and its metrics' raw values (fields from the metric table)."""
    blocks: dict[Dimension, DimensionScores] = {}
    for dim, block_cls in SCORE_BLOCKS.items():
        fields: dict[str, Any] = {"score": dims[dim]}
        fields.update({name: r.raw for name, r in results.items() if r.dimension == dim})
        blocks[dim] = block_cls(**fields)
    return blocks


def coverage(
    found: Verdict, statuses: Mapping[Dimension, DimensionStatus], results: Mapping[str, MetricResult]
) -> Coverage:
    return Coverage(
        coverage=found.coverage,
        partial=found.partial,
        dimensions=dict(statuses),
        effective_weights=found.effective_weights,
        metrics_ran=[n for n, r in results.items() if r.status == "ok"],
        metrics_unavailable={n: r.reason or "" for n, r in results.items() if r.status in ("unavailable", "error")},
    )


def _verdict_notes(
    state: ImageScoring, found: Verdict, statuses: Mapping[Dimension, DimensionStatus]
) -> list[str]:
    """The notes about how the scores were obtained and why the grade is what it is."""
    notes: list[str] = []
    prepared = state.prepared
    upscaled = niqe_upscaled_size(prepared.width, prepared.height)
    if upscaled is not None and not state.flat and state.ran("niqe"):
        notes.append(
            f"NIQE was computed on a bicubic copy upscaled to {upscaled[0]}×{upscaled[1]} px (it compares "
            f"96-px blocks; the image is {prepared.width}×{prepared.height})"
        )
    if found.grade is None:
        notes.append(
            f"{not_graded_text(found.reasons)}; the composite {found.composite_score:.2f} covers "
            f"{found.coverage:.0%} of the applicable weight and is not a grade"
        )
    if found.partial:
        missing = [d for d, s in statuses.items() if s == "unavailable"]
        what = "partial grade" if found.grade is not None else "partial scores"
        notes.append(f"{what}: {', '.join(missing)} could not be scored (see metrics_unavailable)")
    return notes


def assemble(
    state: ImageScoring,
    calibrated: Calibrated,
    *,
    composite: CompositeConfig,
    device: str,
    versions: Mapping[str, str],
) -> QualityReport:
    """The report of one scored image."""
    dims = dimension_scores(state.results, calibrated)
    found = verdict(state, dims, composite)
    statuses = dimension_statuses(dims, state.not_applicable)
    state.notes.extend(_verdict_notes(state, found, statuses))
    info = calibrated.info
    return QualityReport(
        composite_score=found.composite_score,
        grade=found.grade,
        grade_status="graded" if found.grade is not None else "insufficient",
        grade_reasons=found.reasons,
        **score_blocks(dims, state.results),
        partial=found.partial,
        coverage=coverage(found, statuses, state.results),
        metrics=state.results,
        flat=state.flat,
        notes=state.notes,
        prompt=state.prompt,
        image=state.prepared.info,
        device=device,
        versions=dict(versions),
        calibration=info.model if info is not None and info.used else None,
        calibration_info=info,
        seconds=round(time.perf_counter() - state.started, 4),
        timings=state.timings,
    )


def explain(reasons: list[str], results: Mapping[str, MetricResult]) -> list[str]:
    """The composite's reasons for withholding a grade, with why the technical metrics gave no value."""
    out: list[str] = []
    for reason in reasons:
        if reason == f"{REQUIRED_DIMENSION} not scored":
            by_reason: dict[str, list[str]] = {}  # metrics computed together fail together: one reason each
            for r in results.values():
                if r.dimension == REQUIRED_DIMENSION and r.status != "ok":
                    by_reason.setdefault(_short(r.reason or r.status), []).append(r.name)
            if by_reason:
                reason += " (" + "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items()) + ")"
        out.append(reason)
    return out


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
