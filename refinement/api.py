"""The orchestrator's public contract: what a caller (MCP tool, CLI) sends and gets back.

These models are the boundary between :mod:`refinement` and its callers; the MCP server exposes them almost
as is (they become the tools' input/output schemas), so every field is documented for an LLM reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from quality.composite import Grade
from quality.grading import GradeStatus
from quality.report import QualityBlock

Strategy = Literal["progressive", "seed_search", "prompt_enhance", "adaptive", "best_of_n"]
Status = Literal["success", "best_effort", "failed"]
#: a generation job's state, in process or in the distributed queue: waiting, running, or final (a
#: :data:`Status`, or cancelled)
JobState = Literal["queued", "running", "success", "best_effort", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"success", "best_effort", "failed", "cancelled"})
STRATEGIES: tuple[Strategy, ...] = ("progressive", "seed_search", "prompt_enhance", "adaptive", "best_of_n")


class LoraRequest(BaseModel):
    name: str = Field(description="LoRA file name as ComfyUI lists it, e.g. 'detail-tweaker.safetensors'")
    strength_model: float = Field(1.0, ge=-5, le=5)
    strength_clip: float = Field(1.0, ge=-5, le=5)


class GenerationRequest(BaseModel):
    """One generation job's parameters: the single source of the ``generate_quality`` tool's arguments
    (:func:`mcp_server.generation_args.takes_request_fields`) and of ``python -m refinement generate``'s options
    (:func:`refinement.cli.build_parser`). A field or bound added here appears in both with no second edit; its
    ``description`` is what an LLM client and ``--help`` show."""

    prompt: str = Field(min_length=1, max_length=4000, description="what the image should show")
    negative_prompt: str | None = Field(None, max_length=4000, description="what to avoid")
    workflow: str | None = Field(
        None,
        description="template name (flux-dev, sdxl, sd15), a path to an API-format workflow JSON, or the JSON "
        "itself; default: the server's configured template",
    )
    quality_threshold: float = Field(
        7.0, ge=0, le=10, description="stop as soon as an attempt's composite reaches this (0–10)"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="most renders to try")
    retry_strategy: Strategy = Field(
        "progressive",
        description="how to change the next attempt: progressive (more steps and cfg), seed_search (new seeds), "
        "prompt_enhance (quality terms added to the prompt), adaptive (whatever the weakest dimension calls for), "
        "best_of_n (best_of_n seeds per attempt, the best kept)",
    )
    seed: int | None = Field(None, ge=0, lt=2**63, description="first attempt's seed; random if omitted")
    steps: int | None = Field(None, ge=1, le=200, description="sampler steps of the first attempt")
    cfg: float | None = Field(None, ge=0, le=30, description="classifier-free guidance scale")
    guidance: float | None = Field(None, ge=0, le=30, description="Flux guidance (Flux workflows)")
    sampler: str | None = Field(None, max_length=100, description="ComfyUI sampler name, e.g. euler")
    scheduler: str | None = Field(None, max_length=100, description="ComfyUI scheduler, e.g. karras")
    width: int | None = Field(None, ge=64, le=4096, description="image width in pixels")
    height: int | None = Field(None, ge=64, le=4096, description="image height in pixels")
    loras: list[LoraRequest] = Field(default_factory=list, max_length=8, description="LoRAs to apply")
    best_of_n: int = Field(4, ge=2, le=16, description="images per attempt for best_of_n")
    source: Literal["mcp", "cli", "api"] = Field(
        "api", description="who asked: set by the entry point (MCP server, CLI), never by its caller"
    )


#: :class:`GenerationRequest` fields an entry point sets itself; the others are its callers' parameters
CALLER_SET_FIELDS: frozenset[str] = frozenset({"source"})


class DimensionScores(BaseModel):
    technical: float | None = None
    aesthetic: float | None = None
    prompt_adherence: float | None = None
    detail: float | None = None


class AttemptSummary(BaseModel):
    attempt: int = Field(description="1-based attempt number")
    parameters: dict[str, Any] = Field(description="exact parameters of this attempt, the seed actually used included")
    composite_score: float | None = Field(
        None, description="0–10; not a grade when grade_status is 'insufficient' (see grade_reasons)"
    )
    grade: Grade | None = Field(None, description="letter grade; null when the attempt failed or was not graded")
    grade_status: GradeStatus | None = Field(None, description="'graded' or 'insufficient'; null: no score")
    grade_reasons: list[str] = Field(default_factory=list, description="why the attempt was not graded")
    dimensions: DimensionScores = Field(default_factory=DimensionScores)
    accepted: bool = False
    rejected_reason: str | None = Field(None, description="why this attempt was not accepted")
    error: str | None = Field(None, description="set when the attempt failed (ComfyUI or scoring error)")
    image_url: str | None = None
    image_key: str | None = Field(None, description="store key of the attempt's image (when attempt images are kept)")
    seconds: dict[str, float] = Field(default_factory=dict, description="generate / score / store timings")


class GenerationResult(BaseModel):
    generation_id: str
    status: Status = Field(
        description="success: threshold reached; best_effort: attempts used up, best image returned; "
        "failed: no image could be produced"
    )
    image_url: str | None = Field(None, description="URL of the best image (presigned or public, as configured)")
    metadata_url: str | None = None
    image_key: str | None = Field(None, description="store key of the best image (resolve URLs from it at read time)")
    metadata_key: str | None = Field(None, description="store key of the metadata document")
    storage_status: Literal["stored", "spooled"] | None = Field(
        None, description="spooled: the store was down, the files wait in the server's spool for upload"
    )
    grade: Grade | None = Field(None, description="letter grade of the best image; null: failed or not graded")
    grade_status: GradeStatus | None = Field(
        None, description="'graded', or 'insufficient': too little was scored for a grade (see grade_reasons)"
    )
    grade_reasons: list[str] = Field(default_factory=list, description="why the best image was not graded")
    selection: str | None = Field(None, description="why the kept attempt was chosen, when it was not obvious")
    composite_score: float | None = Field(
        None, description="0–10; not a grade when grade_status is 'insufficient' (never compared with the threshold)"
    )
    quality: QualityBlock | None = Field(None, description="scores of the best image")
    partial: bool = Field(False, description="the grade does not cover every dimension (weights unavailable)")
    attempts_used: int = 0
    best_attempt: int | None = None
    attempts: list[AttemptSummary] = Field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


ProgressStage = Literal["queued", "generating", "sampling", "scoring", "storing", "attempt_done", "done"]


class ProgressUpdate(BaseModel):
    stage: ProgressStage
    attempt: int
    max_attempts: int
    progress: float = Field(description="overall progress, 0–1")
    message: str
    step: int | None = None
    steps: int | None = None


ProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]


class Generator(Protocol):
    """What the MCP server and the CLI need from the orchestrator."""

    async def generate(
        self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None
    ) -> GenerationResult:
        """Run attempts until the threshold or max_attempts; cancelling the awaiting task stops the ComfyUI job."""
        ...
