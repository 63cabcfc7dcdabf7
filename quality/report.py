"""Pydantic models of a quality report.

:class:`QualityBlock` is exactly the ``quality`` block of the generation metadata schema::

    "quality": {
      "composite_score": 7.8, "grade": "B",
      "technical":        {"score": 8.2, "brisque": 22.1, "niqe": 3.4},
      "aesthetic":        {"score": 7.5, "laion_aesthetic": 6.1, "nima_mean": 5.4},
      "prompt_adherence": {"score": 8.0, "clip_score": 0.31},
      "detail":           {"score": 7.0, "topiq": 0.62, "edge_density": 0.12}
    }

``grade`` is ``null`` when the evidence is too thin for a letter (``grade_status: "insufficient"``, with
``grade_reasons``; see :mod:`quality.grading`). A value is ``null`` when its metric did not run;
:class:`QualityReport` adds why (``metrics``, ``coverage``), the device, the metric/weights versions and the
timings. This module imports nothing heavy (no torch), so storage and the MCP layer can use it freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from quality.composite import Grade
from quality.grade_text import DEFAULT as DEFAULT_GRADING
from quality.grade_text import grade_bounds
from quality.grading import GradeStatus, not_graded_text
from quality.specs import DIMENSION_SPECS, Dimension, DimensionSpec, metrics_of

MetricStatus = Literal["ok", "unavailable", "not_applicable", "error"]
DimensionStatus = Literal["scored", "unavailable", "not_applicable"]


class DimensionScores(BaseModel):
    """A dimension's block: its 0–10 ``score`` and the raw value of each of its metrics. One subclass per
    dimension (``TechnicalScores``…) is built from the metric registry (:mod:`quality.specs`): a metric's field
    appears in its dimension's block, and so in the metadata JSON Schema, by its spec row alone."""

    score: float | None = None

    if TYPE_CHECKING:  # the metric fields are built at import time: to a type checker each is a float or None

        def __getattr__(self, name: str) -> float | None: ...


def _score_block(dim: DimensionSpec) -> type[DimensionScores]:
    fields: dict[str, Any] = {"score": (float | None, Field(None, description=dim.description))}
    for spec in metrics_of(dim.name):
        fields[spec.name] = (float | None, Field(None, description=spec.report_description))
    block: type[DimensionScores] = create_model(dim.block_name, __base__=DimensionScores, __module__=__name__,
                                                **fields)  # fmt: skip
    return block


#: dimension → the model of its block in the report (and the metadata's ``quality`` block)
SCORE_BLOCKS: dict[Dimension, type[DimensionScores]] = {d: _score_block(spec) for d, spec in DIMENSION_SPECS.items()}

if TYPE_CHECKING:
    TechnicalScores: TypeAlias = DimensionScores
    AestheticScores: TypeAlias = DimensionScores
    PromptAdherenceScores: TypeAlias = DimensionScores
    DetailScores: TypeAlias = DimensionScores
else:
    TechnicalScores = SCORE_BLOCKS["technical"]
    AestheticScores = SCORE_BLOCKS["aesthetic"]
    PromptAdherenceScores = SCORE_BLOCKS["prompt_adherence"]
    DetailScores = SCORE_BLOCKS["detail"]


class QualityBlock(BaseModel):
    """The ``quality`` block of the metadata schema."""

    composite_score: float = Field(
        description="0–10, weighted over the dimensions that were scored. When grade_status is 'insufficient' it "
        "is NOT a grade (too little was scored): never compare it with a threshold"
    )
    grade: Grade | None = Field(
        description=f"{grade_bounds()} (configurable); null: not graded (see grade_reasons)"
    )
    grade_status: GradeStatus = Field(
        "graded",
        description="'graded', or 'insufficient': the technical dimension was not scored or less than the minimum "
        f"share (default {DEFAULT_GRADING.min_graded_coverage * 100:g} %) of the applicable weight was, so there is "
        "no letter grade",
    )
    grade_reasons: list[str] = Field(
        default_factory=list, description="why there is no grade, e.g. 'technical not scored', 'coverage 20% < 50%'"
    )
    technical: TechnicalScores = Field(default_factory=TechnicalScores)
    aesthetic: AestheticScores = Field(default_factory=AestheticScores)
    prompt_adherence: PromptAdherenceScores = Field(default_factory=PromptAdherenceScores)
    detail: DetailScores = Field(default_factory=DetailScores)

    @model_validator(mode="after")
    def _consistent_status(self) -> QualityBlock:
        if self.grade is None and self.grade_status == "graded":
            self.grade_status = "insufficient"
        elif self.grade is not None and self.grade_status != "graded":
            raise ValueError(f"grade {self.grade!r} with grade_status {self.grade_status!r}: a grade is 'graded'")
        return self

    @property
    def graded(self) -> bool:
        return self.grade is not None

    def grade_text(self) -> str:
        """``"B (7.12)"`` or ``"not graded: technical not scored; coverage 20% < 50% (composite 10.00 is not a
        grade)"``: how every surface names the verdict."""
        if self.grade is not None:
            return f"{self.grade} ({self.composite_score:.2f})"
        return f"{not_graded_text(self.grade_reasons)} (composite {self.composite_score:.2f} is not a grade)"


class MetricResult(BaseModel):
    name: str
    dimension: Dimension
    status: MetricStatus
    raw: float | None = None
    score: float | None = Field(None, description="0–10 after normalisation")
    reason: str | None = Field(None, description="why the metric did not produce a value")
    out_of_range: bool = Field(False, description="raw value outside the metric's plausible range")
    seconds: float | None = None
    version: str | None = Field(None, description="implementation and weights identity")


class Coverage(BaseModel):
    coverage: float = Field(description="share of the configured composite weight that was scored (0–1)")
    partial: bool = Field(description="a dimension that applies could not be scored: the grade is partial")
    dimensions: dict[Dimension, DimensionStatus]
    effective_weights: dict[Dimension, float] = Field(
        description="weights actually used in the composite (renormalised over scored dimensions)"
    )
    metrics_ran: list[str]
    metrics_unavailable: dict[str, str] = Field(default_factory=dict, description="metric name → reason it did not run")


class CalibrationInfo(BaseModel):
    """How the technical and detail scores were obtained (see :mod:`quality.calibration`)."""

    enabled: bool = Field(description="calibration requested by the settings (COMFY_QUALITY_CALIBRATION)")
    used: bool = Field(False, description="at least one dimension score comes from the calibration model")
    dimensions: dict[str, Literal["calibrated", "spec_table"]] = Field(
        default_factory=dict, description="per calibrated dimension: which mapping produced its score"
    )
    reason: str | None = Field(None, description="why the spec-table mapping was used instead, if it was")
    model: str | None = Field(None, description="identity: name, file hash, cross-validated SROCC")
    model_sha256: str | None = None
    features: int | None = Field(None, description="number of handcrafted features (plus the patch codebooks)")
    features_sha256: str | None = Field(None, description="hash of the ordered feature-name list")
    features_version: str | None = None
    seed: int | None = None
    dataset_labels_sha256: str | None = None
    dataset_images_sha256: str | None = None
    cross_validation: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="SROCC vs human scores of models that never saw the images scored"
    )
    predicted_mos: dict[str, float] = Field(default_factory=dict, description="per dimension, on the fit set's scale")
    seconds: float | None = None


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str | None = None
    mode: str | None = None
    frames: int = 1
    bytes: int | None = None
    sha256: str | None = None
    source: str | None = None
    scored_width: int | None = Field(
        None, description="width the metrics saw when the scoring pixel budget reduced the image, else None"
    )
    scored_height: int | None = Field(None, description="height the metrics saw when reduced, else None")


class QualityReport(QualityBlock):
    model_config = ConfigDict(populate_by_name=True)

    partial: bool = Field(description="true when the grade does not cover every applicable dimension")
    coverage: Coverage
    metrics: dict[str, MetricResult]
    flat: bool = Field(False, description="the image is (nearly) one flat colour: a failed generation")
    notes: list[str] = Field(default_factory=list)
    prompt: str | None = None
    image: ImageInfo
    device: str
    versions: dict[str, str] = Field(default_factory=dict)
    calibration: str | None = Field(None, description="identity of the calibration model used, if any")
    calibration_info: CalibrationInfo | None = Field(None, description="calibration details (None: not enabled)")
    seconds: float = Field(description="wall time to score this image")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per backend")

    def quality_block(self) -> QualityBlock:
        return QualityBlock.model_validate(self.model_dump(include=set(QualityBlock.model_fields)))

    def dimension_score(self, dimension: Dimension) -> float | None:
        block: DimensionScores = getattr(self, dimension)
        return block.score
