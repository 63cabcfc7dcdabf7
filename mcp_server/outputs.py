"""Build the tools' results from scorer reports and jobs: structured content, a JSON text block for hosts that
read text only, a resource link to the image and at most a small preview; never a full image inline."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from mcp_server.jobs_api import JobInfo as Job
from mcp_server.models import GenerationOutput, GenerationSummary, MetricOutcome, ProgressInfo, ScoreResult, ScoreTiming
from mcp_server.preview import make_preview
from mcp_server.protocols import ObjectStore
from mcp_server.settings import McpSettings
from mcp_server.urls import PENDING_MESSAGE, UrlLocator, resolve_result
from quality.grading import MIN_SIDE, NIQE_NATIVE_SIDE
from quality.report import QualityReport
from quality.specs import DIMENSION_SPECS, DIMENSIONS

log = logging.getLogger(__name__)

DIMENSION_LABELS: Mapping[str, str] = {d: spec.label for d, spec in DIMENSION_SPECS.items()}


def summary_line(report: QualityReport) -> str:
    parts = []
    for dim in DIMENSIONS:
        status = report.coverage.dimensions.get(dim)
        score = report.dimension_score(dim)
        label = DIMENSION_LABELS[dim]
        if score is not None:
            parts.append(f"{label} {score:.1f}")
        elif status == "not_applicable":
            parts.append(f"{label} n/a (no prompt)")
        else:
            parts.append(f"{label} unavailable")
    if report.grade is None:
        line = (
            f"NOT GRADED ({'; '.join(report.grade_reasons)}); composite {report.composite_score:.2f} over "
            f"{report.coverage.coverage:.0%} of the weight is not a grade: " + ", ".join(parts)
        )
    else:
        line = f"grade {report.grade} ({report.composite_score:.2f}/10): " + ", ".join(parts)
    if report.partial and report.grade is not None:
        line += f"; partial grade: {report.coverage.coverage:.0%} of the weight scored"
    if report.flat:
        line += "; the image is one flat colour (a failed generation)"
    return line


def score_result(report: QualityReport, *, fetch: float, queue: float, score: float, total: float) -> ScoreResult:
    return ScoreResult(
        summary=summary_line(report),
        composite_score=report.composite_score if report.grade is not None else None,
        grade=report.grade,
        grade_status=report.grade_status,
        grade_reasons=report.grade_reasons,
        ungraded_composite=report.composite_score if report.grade is None else None,
        partial=report.partial,
        quality=report.quality_block(),
        coverage=report.coverage,
        metrics={
            name: MetricOutcome(status=m.status, raw=m.raw, score=m.score, reason=m.reason)
            for name, m in report.metrics.items()
        },
        flat=report.flat,
        notes=report.notes,
        prompt=report.prompt,
        image=report.image,
        device=report.device,
        calibration=report.calibration_info,
        timing=ScoreTiming(
            fetch_seconds=round(fetch, 4),
            queue_seconds=round(queue, 4),
            score_seconds=round(score, 4),
            total_seconds=round(total, 4),
            per_backend=report.timings,
        ),
    )


def _message(job: Job) -> str:
    request, result = job.request, job.result
    threshold = request.quality_threshold
    match job.state:
        case "queued" | "running":
            what = job.last.message if job.last is not None else job.state
            return (
                f"still {job.state} ({what}); call generation_status(job_id={job.id!r}) to wait for the result, "
                "or cancel_generation to stop it"
            )
        case "success":
            assert result is not None
            return (
                f"success: grade {result.grade} ({result.composite_score}) reached the threshold {threshold} "
                f"in {result.attempts_used} attempt(s); the image is at image_url"
            )
        case "best_effort" if result is not None and result.grade is None:
            return (
                f"best effort, NOT GRADED: no attempt of {result.attempts_used} could be graded "
                f"({'; '.join(result.grade_reasons)}); the kept image's composite is not a grade and never counts "
                f"as reaching the threshold. Check the image size (at least {MIN_SIDE} px, NIQE needs "
                f"{NIQE_NATIVE_SIDE} px at full strength) and that the technical metrics (BRISQUE, NIQE) are enabled"
            )
        case "best_effort":
            assert result is not None
            return (
                f"best effort: no attempt reached {threshold} in {result.attempts_used} attempt(s); the best is "
                f"grade {result.grade} ({result.composite_score}). To do better: more max_attempts, another "
                "retry_strategy (adaptive, best_of_n), a more specific prompt, or a lower quality_threshold"
            )
        case "cancelled":
            return "cancelled; nothing more will be generated for this job"
        case _:
            return f"failed: {job.error or 'no image could be produced'}"


def generation_output(job: Job, *, return_scores: bool, locator: UrlLocator | None = None) -> GenerationOutput:
    """The job's answer; URLs resolved now through ``locator`` (:mod:`mcp_server.urls`). Blocking (the locator
    may read the spool's manifests): call it in a worker thread."""
    result = job.result
    progress = None
    if not job.is_done and job.last is not None:
        progress = ProgressInfo(**job.last.model_dump())
    out = GenerationOutput(
        job_id=job.id,
        status=job.state,
        done=job.is_done,
        message=_message(job),
        max_attempts=job.request.max_attempts,
        progress=progress,
        error=job.error,
        elapsed_seconds=round(job.elapsed(), 3),
    )
    if result is not None:
        out.generation_id = result.generation_id
        out.image_url, out.metadata_url, attempts, out.storage = resolve_result(result, locator)
        if out.storage == "pending_upload":
            out.message = f"{out.message}. Note: {PENDING_MESSAGE}"
        out.grade = result.grade
        out.grade_status = result.grade_status
        out.grade_reasons = list(result.grade_reasons)
        out.selection = result.selection
        graded = result.grade is not None
        out.composite_score = result.composite_score if graded else None
        out.ungraded_composite = None if graded else result.composite_score
        out.partial = result.partial
        out.attempts_used = result.attempts_used
        out.best_attempt = result.best_attempt
        if return_scores:
            out.quality = result.quality
            out.attempts = attempts
    return out


def job_summary(job: Job, locator: UrlLocator | None = None) -> GenerationSummary:
    result = job.result
    image_url, _, _, storage = resolve_result(result, locator) if result else (None, None, [], None)
    return GenerationSummary(
        generation_id=result.generation_id if result else None,
        job_id=job.id,
        created_at=job.created_at,
        prompt=job.request.prompt,
        status=job.state,
        grade=result.grade if result else None,
        grade_status=result.grade_status if result else None,
        composite_score=result.composite_score if result and result.grade is not None else None,
        attempts_used=result.attempts_used if result else 0,
        workflow=job.request.workflow,
        strategy=job.request.retry_strategy,
        image_url=image_url,
        storage=storage,
    )


async def preview_for(url: str, store: ObjectStore | None, settings: McpSettings, max_bytes: int) -> str | None:
    """A base64 JPEG preview of the stored image at ``url``, or None (no store, unreadable: never an error)."""
    if store is None or not store.handles(url):
        return None
    try:
        data = await store.read(url, max_bytes=max_bytes)
        return await anyio.to_thread.run_sync(
            lambda: make_preview(data, max_side=settings.preview_max_side, max_bytes=settings.preview_max_bytes)
        )
    except Exception as exc:  # a preview is a courtesy: its failure must not fail the call
        log.info("no preview for the generated image: %s: %s", type(exc).__name__, exc)
        return None


def tool_result(output: GenerationOutput, preview: str | None) -> CallToolResult:
    """Structured content + JSON text, a resource link to the image, and the preview if any."""
    output.preview_attached = preview is not None
    content: list[ContentBlock] = [TextContent(type="text", text=output.model_dump_json(indent=2))]
    if output.image_url:
        content.append(
            ResourceLink(
                type="resource_link",
                name=f"generation {output.generation_id or output.job_id}",
                uri=output.image_url,
                description=f"best image, grade {output.grade} ({output.composite_score})"
                if output.grade is not None else "best image, not graded",
                mime_type=_mime(output.image_url),
            )
        )
    if preview is not None:
        content.append(ImageContent(type="image", data=preview, mime_type="image/jpeg"))
    return CallToolResult(content=content, structured_content=output.model_dump(mode="json"))


def _mime(url: str) -> str | None:
    path = url.split("?", 1)[0].lower()
    for ext, mime in ((".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".webp", "image/webp")):
        if path.endswith(ext):
            return mime
    return None
