"""The generation metadata document: one JSON file next to every stored image.

Top-level keys, exactly as in the design: ``schema_version``, ``timestamp``, ``generation_id``,
``input``, ``workflow``, ``parameters``, ``quality``, ``refinement``, ``storage``.
``python -m storage schema`` prints the JSON Schema (checked in as ``storage/metadata.schema.json``).

Compatibility rules
- **Lossless**: ``GenerationMetadata.from_json(m.to_json()) == m`` for every document.
- **Declared, strict on write**: every field this version writes is declared here (and so in the JSON Schema),
  and the models forbid any other (``extra="forbid"``): building a document with an unknown field, or setting
  one on a model, raises, so nothing undeclared reaches a stored document.
- **Lenient on read**: :meth:`GenerationMetadata.from_json` / :meth:`~GenerationMetadata.from_dict` read what
  the store holds. A document written by a newer version loads: the fields this version does not know are
  ignored (logged with their paths) and are not written back if the document is saved again. The nested score
  blocks of :mod:`quality.report` ignore unknown fields too.
- **Backward compatible**: :func:`migrate` upgrades older documents before validation. Version 0 is the
  original design's document, which had no ``schema_version`` (``workflow`` a bare name,
  ``refinement.attempts`` a count, ``storage.size``).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quality.report import Coverage, Dimension, Grade, QualityBlock, QualityReport
from quality.specs import DIMENSIONS
from storage.errors import MetadataError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Bumped when a field changes meaning or is removed; adding optional fields does not need a bump."""

GENERATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
DIMENSION_NAMES: tuple[Dimension, ...] = DIMENSIONS

Source = Literal["mcp", "cli", "api"]
RefinementStatus = Literal["success", "best_effort", "failed"]
StorageStatus = Literal["stored", "spooled"]
Backend = Literal["local", "s3"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def new_generation_id() -> str:
    """A fresh generation id (a UUID4 string; any id matching ``GENERATION_ID_PATTERN`` is accepted)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class InputInfo(_Model):
    """What was asked for, and by whom."""

    prompt: str = Field(description="the prompt as the user or agent wrote it (before any enhancement)")
    negative_prompt: str | None = Field(None, description="the negative prompt as given, if any")
    source: Source = Field("api", description="entry point: 'mcp' (an agent via MCP), 'cli' or 'api'")
    client: str | None = Field(None, description="MCP client / agent name when known (e.g. 'claude-code')")
    quality_threshold: float | None = Field(None, description="requested composite threshold (0–10)")
    max_attempts: int | None = Field(None, ge=1, description="requested maximum number of attempts")
    strategy: str | None = Field(None, description="requested retry strategy (e.g. 'progressive')")


class WorkflowInfo(_Model):
    """Which ComfyUI workflow produced the image."""

    name: str = Field(
        "custom", description="template name (e.g. 'flux-dev') or 'custom' for a user's workflow"
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the API-format JSON actually submitted"
    )
    server_url: str | None = Field(None, description="URL of the ComfyUI server that ran it")
    comfyui_version: str | None = Field(
        None, description="ComfyUI version reported by /system_stats, if known"
    )


class LoraSpec(_Model):
    """One LoRA applied to the generation."""

    name: str = Field(description="LoRA file name as ComfyUI knows it")
    strength_model: float = Field(1.0, description="strength applied to the diffusion model")
    strength_clip: float | None = Field(None, description="strength applied to the text encoder, if separate")


class GenerationParameters(_Model):
    """The exact parameters of one generation (``null`` when the workflow has no such input)."""

    seed: int | None = Field(None, description="the seed actually used (never 'random')")
    steps: int | None = Field(None, ge=1, description="sampling steps")
    cfg: float | None = Field(None, description="classifier-free guidance scale")
    guidance: float | None = Field(None, description="Flux guidance (FluxGuidance node), if any")
    sampler: str | None = Field(None, description="sampler name (e.g. 'euler')")
    scheduler: str | None = Field(None, description="scheduler name (e.g. 'normal', 'karras')")
    width: int | None = Field(None, ge=1, description="latent width in pixels")
    height: int | None = Field(None, ge=1, description="latent height in pixels")
    batch_size: int | None = Field(None, ge=1, description="images per job")
    batch_index: int | None = Field(
        None, ge=0, description="which image of the job's batch was kept (0-based); null when the job made one"
    )
    denoise: float | None = Field(None, ge=0, le=1, description="denoise strength (1.0 = from noise)")
    loras: list[LoraSpec] = Field(default_factory=list, description="LoRAs applied, in order")
    prompt: str | None = Field(None, description="the prompt actually submitted (after enhancement)")
    negative_prompt: str | None = Field(None, description="the negative prompt actually submitted")


class QualityRecord(QualityBlock):
    """The design's ``quality`` block plus what makes a score reproducible and honest."""

    model_config = ConfigDict(extra="forbid")

    partial: bool = Field(False, description="the grade does not cover every applicable dimension")
    coverage: Coverage | None = Field(None, description="which dimensions and metrics were actually scored")
    device: str | None = Field(None, description="device the metrics ran on (e.g. 'cpu', 'cuda:0')")
    versions: dict[str, str] = Field(default_factory=dict, description="metric name → implementation version")
    calibration: str | None = Field(None, description="identity of the calibration model used, if any")
    seconds: float | None = Field(None, ge=0, description="wall time spent scoring this image")

    @classmethod
    def from_report(cls, report: QualityReport) -> QualityRecord:
        """The record of a scorer's report (drops per-metric detail and timings, keeps everything above)."""
        keys = set(cls.model_fields)
        return cls.model_validate(report.model_dump(include=keys))

    def dimension_scores(self) -> dict[Dimension, float | None]:
        return {d: getattr(self, d).score for d in DIMENSION_NAMES}

    def weakest(self) -> tuple[Dimension, float] | None:
        """The scored dimension with the lowest score, or ``None`` when none was scored."""
        scored = [(d, s) for d, s in self.dimension_scores().items() if s is not None]
        return min(scored, key=lambda item: item[1]) if scored else None


def describe_rejection(quality: QualityRecord | None, threshold: float | None) -> str:
    """Why an attempt was not accepted: the one wording of ``rejected_reason`` (the orchestrator writes it into
    every attempt it stores), e.g. ``"composite 6.10 < threshold 7.00; weakest: detail 4.20"``. Two decimals, so
    a composite just under the threshold never reads as equal to it. ``quality`` None: the attempt made no
    scored image. An ungraded composite is never compared with the threshold."""
    if quality is None:
        return "no score: the attempt produced no image"
    composite = quality.composite_score
    if quality.grade is None:
        text = f"not graded ({'; '.join(quality.grade_reasons) or 'insufficient evidence'}): composite {composite:.2f} "
        text += "is not a grade"
        return text if threshold is None else f"{text} and cannot reach the threshold {threshold:.2f}"
    if threshold is None:
        text = f"composite {composite:.2f} (no threshold)"
    else:
        text = f"composite {composite:.2f} {'<' if composite < threshold else '≥'} threshold {threshold:.2f}"
    weakest = quality.weakest()
    if weakest is not None:
        text += f"; weakest: {weakest[0]} {weakest[1]:.2f}"
    return text + "; partial grade" if quality.partial else text


class AttemptTimings(_Model):
    """Seconds spent on each step of one attempt."""

    generate_seconds: float | None = Field(None, ge=0, description="ComfyUI queue + execution + download")
    score_seconds: float | None = Field(None, ge=0, description="quality scoring")
    store_seconds: float | None = Field(None, ge=0, description="writing the attempt's image, if stored")


class AttemptRecord(_Model):
    """One attempt of a refinement run, accepted or not."""

    attempt: int = Field(ge=1, description="attempt number, starting at 1")
    parameters: GenerationParameters = Field(description="the exact parameters of this attempt")
    changes: list[str] = Field(
        default_factory=list,
        description="what the retry strategy changed for this attempt and why, one line per parameter "
        "(e.g. 'steps 30 → 50: progressive schedule'); empty for the first attempt",
    )
    quality: QualityRecord | None = Field(None, description="scores of this attempt; null when it failed")
    prompt_id: str | None = Field(None, description="ComfyUI prompt id of the job")
    timings: AttemptTimings = Field(default_factory=AttemptTimings, description="where the time went")
    image_key: str | None = Field(None, description="store key of this attempt's image, if it was stored")
    image_url: str | None = Field(None, description="URL of this attempt's image at store time")
    rejected_reason: str | None = Field(
        None, description="why it was not accepted, e.g. 'composite 6.10 < threshold 7.00; weakest: detail 4.20'"
    )
    error: str | None = Field(None, description="what went wrong when the attempt produced no scored image")
    batch_scores: list[float | None] = Field(
        default_factory=list,
        description="composite of each image of the job's batch, in batch order (null: that image could not be "
        "scored); empty when the job made one image. parameters.batch_index names the one kept",
    )

    @property
    def composite_score(self) -> float | None:
        return self.quality.composite_score if self.quality is not None else None

    @property
    def grade(self) -> Grade | None:
        return self.quality.grade if self.quality is not None else None


class RefinementInfo(_Model):
    """The story of the refinement loop."""

    strategy: str | None = Field(None, description="retry strategy used (e.g. 'progressive', 'adaptive')")
    threshold: float | None = Field(None, description="composite score an attempt had to reach")
    max_attempts: int | None = Field(None, ge=1, description="attempt budget")
    attempts_used: int = Field(0, ge=0, description="attempts actually made")
    status: RefinementStatus = Field(
        description="'success': the best reached the threshold; 'best_effort': it did not, the best is kept; "
        "'failed': no attempt produced a scored image"
    )
    best_attempt: int | None = Field(None, ge=1, description="number of the attempt that was kept")
    selection: str | None = Field(
        None,
        description="why the kept attempt was chosen when grading decided it: a graded attempt is preferred "
        "over an ungraded one, and an ungraded best never counts as reaching the threshold",
    )
    previous_scores: list[float] = Field(
        default_factory=list,
        description="composite of every scored attempt before the best one, in order (the design's field)",
    )
    attempts: list[AttemptRecord] = Field(default_factory=list, description="every attempt, in order")
    error: str | None = Field(
        None,
        description="why the run stopped before its attempt budget was spent (a request no retry can fix, e.g. "
        "a workflow ComfyUI refused); null otherwise",
    )

    @classmethod
    def from_attempts(
        cls,
        attempts: list[AttemptRecord],
        *,
        strategy: str | None,
        threshold: float | None,
        max_attempts: int | None,
    ) -> RefinementInfo:
        """Derive best attempt, status and ``previous_scores`` from the attempts: a graded attempt beats an
        ungraded one, then the highest composite wins, the earliest on ties. Only a graded best can be a
        ``success``; ``selection`` says when grading decided the choice."""
        scored = [(a.attempt, a.quality.composite_score) for a in attempts if a.quality is not None]
        graded = {a.attempt for a in attempts if a.quality is not None and a.quality.grade is not None}
        best = max(scored, key=lambda item: (item[0] in graded, item[1], -item[0])) if scored else None
        status: RefinementStatus
        selection: str | None = None
        if best is None:
            status = "failed"
        elif best[0] not in graded:
            status = "best_effort"
            selection = (
                f"no attempt could be graded; attempt {best[0]} has the highest ungraded composite ({best[1]:.2f}), "
                "which is not a grade and does not count as reaching the threshold"
            )
        elif threshold is None or best[1] >= threshold:
            status = "success"
        else:
            status = "best_effort"
        if best is not None and best[0] in graded:
            passed_over = [(n, c) for n, c in scored if n not in graded and c > best[1]]
            if passed_over:
                numbers = ", ".join(f"{n} ({c:.2f})" for n, c in passed_over)
                selection = (
                    f"attempt {best[0]} (graded) was kept over higher but ungraded composite(s) of attempt(s) "
                    f"{numbers}: an ungraded composite is not a grade"
                )
        previous = [score for number, score in scored if best is not None and number < best[0]]
        return cls(
            strategy=strategy,
            threshold=threshold,
            max_attempts=max_attempts,
            attempts_used=len(attempts),
            status=status,
            best_attempt=best[0] if best else None,
            selection=selection,
            previous_scores=previous,
            attempts=attempts,
        )

    def first_composite(self) -> float | None:
        """Composite of the first scored attempt (the baseline the refinement gain is measured from)."""
        for attempt in self.attempts:
            if attempt.quality is not None:
                return attempt.quality.composite_score
        return self.previous_scores[0] if self.previous_scores else None


class StorageInfo(_Model):
    """Where the image and this document are stored (filled in by the store)."""

    backend: Backend = Field(description="'local' (a folder) or 's3' (MinIO / S3)")
    status: StorageStatus = Field(
        "stored", description="'spooled': the S3 store was down, the files wait in the local spool for upload"
    )
    bucket: str | None = Field(None, description="S3 bucket (null for the local store)")
    key: str | None = Field(None, description="store key of the image (null when the run produced none)")
    metadata_key: str | None = Field(None, description="store key of this metadata document")
    uri: str | None = Field(None, description="stable address: s3://bucket/key or file:///path")
    url: str | None = Field(None, description="URL to fetch the image (public, presigned, file:// or spool)")
    url_expires_at: datetime | None = Field(None, description="expiry of a presigned url, if it is one")
    size_bytes: int | None = Field(None, ge=0, description="image size in bytes")
    format: str | None = Field(None, description="image format, e.g. 'png', 'jpeg', 'webp'")
    width: int | None = Field(None, ge=1, description="image width in pixels")
    height: int | None = Field(None, ge=1, description="image height in pixels")
    content_type: str | None = Field(None, description="MIME type, e.g. 'image/png'")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the image bytes")


class GenerationMetadata(_Model):
    """The metadata document of one generation (one best image and the story of how it was obtained)."""

    schema_version: int = Field(SCHEMA_VERSION, ge=0, description="version of this document's schema")
    timestamp: datetime = Field(
        default_factory=utc_now,
        description="UTC ISO-8601 time the run started (its date names the storage folder)",
    )
    generation_id: str = Field(
        default_factory=new_generation_id, pattern=GENERATION_ID_PATTERN, description="unique id of the run"
    )
    input: InputInfo = Field(description="what was asked for, and by whom")
    workflow: WorkflowInfo = Field(default_factory=WorkflowInfo, description="the ComfyUI workflow used")
    parameters: GenerationParameters = Field(
        default_factory=GenerationParameters, description="exact parameters of the stored (best) image"
    )
    quality: QualityRecord | None = Field(None, description="scores of the stored image; null when failed")
    refinement: RefinementInfo = Field(description="every attempt, the kept one and why")
    storage: StorageInfo | None = Field(None, description="filled in by the store when the image is written")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def to_json(self, *, indent: int | None = 2) -> bytes:
        return self.model_dump_json(indent=indent).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "metadata") -> GenerationMetadata:
        """Parse a document (any known schema version), raising :class:`MetadataError` with the reason."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MetadataError(
                f"{source} is not valid JSON ({exc}); the file is corrupt or not metadata"
            ) from exc
        return cls.from_dict(raw, source=source)

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "metadata") -> GenerationMetadata:
        """Read a stored document (any known schema version; see "Lenient on read" in the module docs)."""
        if not isinstance(raw, dict):
            raise MetadataError(f"{source} must be a JSON object, got {type(raw).__name__}")
        doc = migrate(raw)
        ignored: list[str] = []
        while True:
            try:
                md = cls.model_validate(doc)
                break
            except ValidationError as exc:
                unknown = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
                if unknown and _drop_fields(doc, unknown):
                    ignored += [".".join(str(p) for p in loc) for loc in unknown]
                    continue  # validate again without them: what remains is reported, or the document loads
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5]
                )
                raise MetadataError(f"{source} does not follow the metadata schema: {problems}") from exc
        if ignored:
            shown = ", ".join(ignored[:8]) + (f" and {len(ignored) - 8} more" if len(ignored) > 8 else "")
            log.info("%s: ignoring field(s) this version does not know: %s", source, shown)
        return md


def _drop_fields(doc: dict[str, Any], locations: list[tuple[int | str, ...]]) -> bool:
    """Remove the fields at ``locations`` (validation error locations) from ``doc``; whether any was removed.
    A location part naming no key of the document (a union member's tag) is skipped."""
    removed = False
    for loc in locations:
        node: Any = doc
        for part in loc[:-1]:
            in_dict = isinstance(node, dict) and part in node
            if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
                node = node[part]
        if isinstance(node, dict) and loc and loc[-1] in node:
            del node[loc[-1]]
            removed = True
    return removed


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a document of any older schema version to :data:`SCHEMA_VERSION` (a copy; input untouched)."""
    doc = json.loads(json.dumps(raw))
    version = doc.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise MetadataError(f"schema_version must be a non-negative integer, got {version!r}")
    if version == 0:
        doc = _migrate_v0(doc)
    elif version > SCHEMA_VERSION:
        log.info("metadata schema_version %s is newer than %s: reading known fields", version, SCHEMA_VERSION)
    return doc


def _migrate_v0(doc: dict[str, Any]) -> dict[str, Any]:
    """The original design's document: no version, bare workflow name, attempt count, ``storage.size``."""
    if isinstance(doc.get("input"), str):
        doc["input"] = {"prompt": doc["input"]}
    if isinstance(doc.get("workflow"), str):
        doc["workflow"] = {"name": doc["workflow"]}
    refinement = doc.setdefault("refinement", {})
    if isinstance(refinement.get("attempts"), int):
        refinement.setdefault("attempts_used", refinement.pop("attempts"))
    if "status" not in refinement:
        composite = (doc.get("quality") or {}).get("composite_score")
        threshold = refinement.get("threshold", (doc.get("input") or {}).get("quality_threshold"))
        if composite is None:
            refinement["status"] = "failed"
        else:
            refinement["status"] = "success" if threshold is None or composite >= threshold else "best_effort"
    storage = doc.get("storage")
    if isinstance(storage, dict):
        if "size" in storage:
            storage.setdefault("size_bytes", storage.pop("size"))
        if "backend" not in storage:
            url = str(storage.get("url") or "")
            storage["backend"] = "local" if url.startswith("file:") or not url else "s3"
    doc["schema_version"] = SCHEMA_VERSION
    return doc


def metadata_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`GenerationMetadata`."""
    schema = GenerationMetadata.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
