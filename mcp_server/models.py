"""The tools' output models: their JSON schemas are the tools' output schemas, so every field is documented for
an LLM reader. Score blocks reuse :mod:`quality.report` (the metadata schema's ``quality`` block) and attempts
reuse :mod:`refinement.api`, so the server adds no second vocabulary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from quality.composite import Grade
from quality.grade_text import DEFAULT as DEFAULT_GRADING
from quality.grade_text import grade_scale
from quality.grading import GradeStatus
from quality.report import CalibrationInfo, Coverage, ImageInfo, MetricStatus, QualityBlock
from refinement.api import AttemptSummary, JobState, ProgressStage, Status


class MetricOutcome(BaseModel):
    status: MetricStatus = Field(description="ok, unavailable (weights absent), not_applicable (no prompt) or error")
    raw: float | None = Field(None, description="the metric's own value (see the README's normalisation table)")
    score: float | None = Field(None, description="0–10 after normalisation")
    reason: str | None = Field(None, description="why there is no value")


class ScoreTiming(BaseModel):
    fetch_seconds: float = Field(description="reading / downloading the image")
    queue_seconds: float = Field(description="waiting for a free scoring slot")
    score_seconds: float = Field(description="decoding and running the metrics")
    total_seconds: float
    per_backend: dict[str, float] = Field(default_factory=dict, description="seconds per metric family")


class ScoreResult(BaseModel):
    """score_image's result."""

    summary: str = Field(description="one line: grade (or 'not graded' and why), composite and each dimension")
    composite_score: float | None = Field(
        description="0–10, weighted over the dimensions that were scored; null when the image is not graded"
    )
    grade: Grade | None = Field(
        description=f"{grade_scale()}/unusable (default thresholds; the tool description gives this server's); "
        "null: NOT GRADED (see grade_reasons)"
    )
    grade_status: GradeStatus = Field(
        description="'graded', or 'insufficient': the technical dimension was not scored or less than the "
        f"minimum share (default {DEFAULT_GRADING.min_graded_coverage * 100:g} %) of the applicable weight was, so "
        "there is no grade"
    )
    grade_reasons: list[str] = Field(default_factory=list, description="why the image is not graded")
    ungraded_composite: float | None = Field(
        None, description="when not graded: the weighted mean over the little that was scored; NOT a grade, "
        "never compare it with a threshold"
    )
    partial: bool = Field(description="true when some applicable dimension could not be scored (see coverage)")
    quality: QualityBlock = Field(description="dimension scores (0–10) with the raw metric values")
    coverage: Coverage = Field(description="which metrics ran, which were unavailable and why")
    metrics: dict[str, MetricOutcome] = Field(description="every metric by name")
    flat: bool = Field(False, description="the image is one flat colour: a failed generation, graded F")
    notes: list[str] = Field(default_factory=list)
    prompt: str | None = Field(None, description="the prompt used for prompt adherence (none: not applicable)")
    image: ImageInfo
    device: str = Field(description="where the models ran (cpu, cuda…)")
    calibration: CalibrationInfo | None = Field(
        None,
        description="whether the technical/detail scores come from the calibration model learned from human "
        "judgments of AI-generated images, which model, and its cross-validated agreement (None: turned off)",
    )
    timing: ScoreTiming


class ProgressInfo(BaseModel):
    stage: ProgressStage
    attempt: int = Field(description="current attempt (1-based; 0 before the first starts)")
    max_attempts: int
    progress: float = Field(description="overall progress, 0–1")
    message: str
    step: int | None = Field(None, description="sampler step within the current attempt")
    steps: int | None = None


class GenerationOutput(BaseModel):
    """generate_quality's, generation_status's and cancel_generation's result."""

    job_id: str = Field(description="handle for generation_status / cancel_generation")
    status: JobState = Field(
        description="queued / running: not finished, poll generation_status(job_id); success: the threshold was "
        "reached; best_effort: attempts used up, best image returned; failed: no image; cancelled"
    )
    done: bool = Field(description="true once the job reached a final state")
    message: str = Field(description="what happened and what to do next")
    generation_id: str | None = Field(None, description="id of the stored generation (once finished)")
    image_url: str | None = Field(
        None, description="URL of the best image (presigned or public); null while storage is pending_upload"
    )
    metadata_url: str | None = Field(None, description="URL of the generation's metadata JSON")
    storage: Literal["stored", "pending_upload"] | None = Field(
        None,
        description="stored: the URLs work now; pending_upload: the object store was down, the files wait on the "
        "server and are uploaded when it is back (URLs null until then)",
    )
    grade: Grade | None = Field(None, description="grade of the best image; null: failed or NOT GRADED")
    grade_status: GradeStatus | None = Field(
        None, description="'graded' or 'insufficient' (the best image is not graded, see grade_reasons)"
    )
    grade_reasons: list[str] = Field(default_factory=list, description="why the best image is not graded")
    composite_score: float | None = Field(None, description="0–10 composite of the best image; null: not graded")
    ungraded_composite: float | None = Field(
        None, description="when not graded: the composite over the little that was scored; NOT a grade"
    )
    selection: str | None = Field(None, description="why the kept attempt was chosen, when grading decided it")
    partial: bool = Field(False, description="the grade does not cover every dimension (some weights absent)")
    quality: QualityBlock | None = Field(None, description="scores of the best image (when return_scores)")
    attempts_used: int = 0
    max_attempts: int
    best_attempt: int | None = None
    attempts: list[AttemptSummary] = Field(
        default_factory=list, description="every attempt's exact parameters and scores (when return_scores)"
    )
    progress: ProgressInfo | None = Field(None, description="latest progress of a job still running")
    error: str | None = None
    elapsed_seconds: float = Field(description="since the job was submitted")
    preview_attached: bool = Field(False, description="a small JPEG preview is attached as image content")


class GenerationSummary(BaseModel):
    """One generation as the index (or this server's job table) knows it."""

    generation_id: str | None = Field(None, description="stored generation id (none while still running)")
    job_id: str | None = Field(None, description="this server's job id, when the job is still in memory")
    created_at: datetime
    prompt: str
    status: JobState
    grade: Grade | None = Field(None, description="null: failed, running, or not graded (see grade_status)")
    grade_status: GradeStatus | None = Field(None, description="'graded' or 'insufficient' (no grade); null: no score")
    composite_score: float | None = Field(None, description="null unless graded")
    attempts_used: int = 0
    workflow: str | None = None
    strategy: str | None = None
    image_url: str | None = Field(None, description="null while storage is pending_upload")
    storage: Literal["stored", "pending_upload"] | None = Field(
        None, description="pending_upload: the image waits on the server for the object store to come back"
    )


class RecentQuery(BaseModel):
    """What list_generations asks the index."""

    limit: int = Field(10, ge=1, le=100)
    grades: list[Grade] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)
    text: str | None = Field(None, max_length=500, description="words that must occur in the prompt")


class GenerationList(BaseModel):
    """list_generations' result."""

    active: list[GenerationSummary] = Field(description="jobs of this server still queued or running")
    recent: list[GenerationSummary] = Field(description="stored generations, newest first")
    index_available: bool = Field(description="false when the server has no generation index configured")
    note: str | None = None
