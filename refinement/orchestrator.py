"""The orchestrator: attempt → generate → score → store → decide, keeping the best.

    orch = Orchestrator(scorer, comfy, store, index)          # comfy: ComfyUIPool or ComfyUIClient
    result = await orch.generate(GenerationRequest(prompt="a red fox", quality_threshold=7.5), on_progress=cb)

* Models are never reloaded: the one :class:`quality.Scorer` given here scores every attempt (in a worker
  thread, so the event loop keeps following ComfyUI).
* Each attempt's plan comes from :func:`refinement.strategies.plan_attempt` (pure); the workflow is patched by
  node class and wiring (:func:`refinement.workflows.patch`), never by node id.
* Every attempt is recorded — exact parameters with the seed actually used, scores, timings, why it was
  rejected, or the error — and its image is stored as soon as it is scored, so nothing generated is lost even if
  the run is cancelled or the process dies. At the end the best image and the metadata sidecar are written and
  the index is updated. If the store is S3 and it is down, the storage layer spools to disk (see :mod:`storage`).
* Cancellation: cancelling the awaiting task cancels the ComfyUI job (the client deletes / interrupts its
  prompt); what was produced so far is still stored (shielded) before the cancellation propagates.
* Errors that no retry can fix (validation errors, missing nodes or model files, a parameter with no place in
  the workflow) end the run at once with status ``failed`` and the message; run-time errors (a node failing, a
  timeout, a server going away) fail that attempt only, and the next attempt tries again with a new plan.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from comfy_quality.boundary import recorded_reason
from quality.report import QualityBlock, QualityReport
from quality.specs import DIMENSIONS
from refinement.api import (
    AttemptSummary,
    DimensionScores,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    ProgressStage,
    ProgressUpdate,
)
from refinement.comfyui import (
    USE_CLIENT_DEFAULT,
    ComfyUIError,
    ComfyUIMissingModelsError,
    ComfyUIMissingNodesError,
    ComfyUIUnreachableError,
    ComfyUIValidationError,
    ComfyUIWorkflowShapeError,
    OutputImage,
    ProgressEvent,
    RunResult,
    RunTimeout,
)
from refinement.errors import RequestError
from refinement.params import GenerationParams, LoraSpec
from refinement.settings import RefinementSettings
from refinement.strategies import Family, Outcome, Plan, plan_attempt, reaches_threshold
from refinement.workflows import WorkflowError, describe, list_templates, load_workflow, patch, workflow_hash
from storage import (
    AttemptRecord,
    GenerationMetadata,
    GenerationParameters,
    InputInfo,
    QualityRecord,
    RefinementInfo,
    WorkflowInfo,
)
from storage import LoraSpec as StoredLora
from storage.metadata import describe_rejection
from storage.store import GenerationWriter, StoredObject

log = logging.getLogger(__name__)

FATAL_COMFY_ERRORS = (
    ComfyUIValidationError, ComfyUIMissingNodesError, ComfyUIMissingModelsError, ComfyUIWorkflowShapeError
)
DEFAULT_STEPS = 30
DEFAULT_CFG = 7.0


class Scorer(Protocol):
    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport: ...


class Comfy(Protocol):
    """Where jobs run: a :class:`~refinement.comfyui.ComfyUIPool` or a single
    :class:`~refinement.comfyui.ComfyUIClient`."""

    async def run(
        self,
        workflow: Mapping[str, Any],
        *,
        on_progress: Callable[[ProgressEvent], Any] | None = None,
        timeout: RunTimeout = USE_CLIENT_DEFAULT,
    ) -> RunResult: ...

    async def preflight(self, workflow: Mapping[str, Any]) -> None:
        """Check the workflow's node classes and model files against the server a job would go to now."""
        ...


class GenerationIndex(Protocol):
    """The index the stored generations are added to (:class:`storage.Index`)."""

    def add(self, metadata: GenerationMetadata) -> None: ...


@dataclass
class _Attempt:
    plan: Plan
    record: AttemptRecord
    image: bytes | None = None
    content_type: str | None = None
    report: QualityReport | None = None
    unreachable: str | None = None
    """Set when ComfyUI could not be reached (or went away) during this attempt: the reason."""


@dataclass(frozen=True)
class _Batch:
    """The reports of one job's images, in batch order (``None``: that image could not be scored)."""

    reports: list[QualityReport | None]

    def best(self) -> tuple[int, QualityReport] | None:
        """Position and report of the image to keep (``None`` when none was scored): a graded image beats an
        ungraded one whatever their composites (an ungraded composite is not a grade), then the highest
        composite, the earliest on ties."""
        scored = [(i, report) for i, report in enumerate(self.reports) if report is not None]
        if not scored:
            return None
        return max(scored, key=lambda item: (item[1].grade is not None, item[1].composite_score, -item[0]))

    def composites(self) -> list[float | None]:
        return [round(r.composite_score, 4) if r is not None else None for r in self.reports]


def _record_run_error(attempt: _Attempt, exc: ComfyUIError, threshold: float) -> None:
    """A run-time ComfyUI error fails the attempt: what happened, and whether the server was lost."""
    attempt.record.error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ComfyUIUnreachableError):
        attempt.unreachable = str(exc)
    attempt.record.rejected_reason = describe_rejection(None, threshold)
    log.warning("attempt %d failed: %s", attempt.record.attempt, exc)


def _keep(
    attempt: _Attempt,
    batch: _Batch,
    kept: int,
    report: QualityReport,
    images: Sequence[OutputImage],
    threshold: float,
) -> None:
    """Record the kept image of the batch (its scores, its place in the batch) and why it falls short, if so."""
    record = attempt.record
    attempt.report, attempt.image, attempt.content_type = report, images[kept].data, images[kept].content_type
    record.error = None
    record.quality = QualityRecord.from_report(report)
    if len(images) > 1:
        record.parameters.batch_index = kept
        record.batch_scores = batch.composites()
    if not reaches_threshold(report.composite_score, report.grade is not None, threshold):
        record.rejected_reason = describe_rejection(record.quality, threshold)


def _grade_text(report: QualityReport) -> str:
    return f"{report.composite_score:.2f} ({report.grade})" if report.grade is not None else report.grade_text()


class Orchestrator:
    """Runs generation requests; one instance serves many concurrent requests."""

    def __init__(
        self,
        scorer: Scorer,
        comfy: Comfy,
        store: GenerationWriter,
        index: GenerationIndex | None = None,
        settings: RefinementSettings | None = None,
        *,
        server_url: str | None = None,
    ) -> None:
        self.scorer = scorer
        self.comfy = comfy
        self.store = store
        self.index = index
        self.settings = settings or RefinementSettings()
        self.server_url = server_url or (self.settings.comfyui_urls[0] if self.settings.comfyui_urls else None)
        self._preflighted: set[str] = set()

    # -- the loop -------------------------------------------------------------------------------------------
    async def generate(
        self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None
    ) -> GenerationResult:
        started = time.perf_counter()
        metadata = GenerationMetadata(
            input=InputInfo(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                source=request.source,
                quality_threshold=request.quality_threshold,
                max_attempts=request.max_attempts,
                strategy=request.retry_strategy,
            ),
            refinement=RefinementInfo(status="failed"),
        )
        progress = _Progress(on_progress, request.max_attempts)
        attempts: list[_Attempt] = []
        fatal: str | None = None
        try:
            workflow, workflow_name = self._load_workflow(request)
            base = self._base_plan(request, workflow)
            metadata.workflow = WorkflowInfo(name=workflow_name, server_url=self.server_url)
            history: list[Outcome] = []
            for number in range(1, request.max_attempts + 1):
                plan = plan_attempt(request.retry_strategy, number, base, history)
                submitted = self._patched(workflow, request, plan)
                if number == 1:
                    metadata.workflow.sha256 = workflow_hash(submitted)
                    try:
                        await self._preflight(submitted)
                    except FATAL_COMFY_ERRORS:
                        raise
                    except ComfyUIError as exc:
                        raise RequestError(f"ComfyUI is not available: {exc}") from exc
                attempt = await self._attempt(number, plan, submitted, request, metadata, progress)
                attempts.append(attempt)
                dims = _dims(attempt.report)
                report = attempt.report
                graded = report is not None and report.grade is not None
                history.append(Outcome(plan, report.composite_score if report else None, dims, graded))
                if reaches_threshold(report.composite_score if report else None, graded, request.quality_threshold):
                    break
        except (RequestError, WorkflowError) as exc:
            fatal = str(exc)
        except FATAL_COMFY_ERRORS as exc:
            fatal = f"ComfyUI refused the workflow: {exc}"
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(metadata, attempts, request, None, progress))
            raise
        return await self._finish(metadata, attempts, request, fatal, progress, started=started)

    async def _attempt(
        self,
        number: int,
        plan: Plan,
        workflow: dict[str, Any],
        request: GenerationRequest,
        metadata: GenerationMetadata,
        progress: _Progress,
    ) -> _Attempt:
        """One attempt: generate, score the batch, keep its best image, store it; every outcome is recorded."""
        record = AttemptRecord(attempt=number, parameters=_parameters(plan, request), changes=list(plan.changes))
        attempt = _Attempt(plan=plan, record=record)
        label = f"attempt {number}/{request.max_attempts}"
        await progress.update("generating", number, 0.0, f"{label}: generating")
        run = await self._generate(attempt, workflow, request, progress)
        if run is None:
            return attempt
        images = run.saved_images or run.images
        if not images:
            record.error = "the workflow produced no image (no SaveImage / PreviewImage output)"
            return attempt
        await progress.update("scoring", number, 0.85, f"{label}: scoring")
        batch = await self._score(attempt, images, request.prompt)
        best = batch.best()
        if best is None:
            return attempt
        kept, report = best
        _keep(attempt, batch, kept, report, images, request.quality_threshold)
        if self.settings.store_attempt_images:
            await progress.update("storing", number, 0.95, f"{label}: storing")
            await self._store_image(attempt, images[kept], metadata)
        await progress.update("attempt_done", number, 1.0, f"{label}: {_grade_text(report)}")
        return attempt

    async def _generate(
        self, attempt: _Attempt, workflow: dict[str, Any], request: GenerationRequest, progress: _Progress
    ) -> RunResult | None:
        """Run the job on ComfyUI; a run-time error fails this attempt only (recorded, ``None`` returned)."""
        number, record = attempt.record.attempt, attempt.record
        t0 = time.perf_counter()
        try:
            run = await self.comfy.run(
                workflow,
                on_progress=progress.comfy_callback(number, request.max_attempts),
                timeout=self.settings.attempt_timeout_seconds,
            )
        except FATAL_COMFY_ERRORS:
            raise
        except ComfyUIError as exc:
            record.timings.generate_seconds = round(time.perf_counter() - t0, 4)
            _record_run_error(attempt, exc, request.quality_threshold)
            await progress.update("attempt_done", number, 1.0, f"attempt {number} failed: {exc}")
            return None
        record.timings.generate_seconds = round(time.perf_counter() - t0, 4)
        record.prompt_id = run.prompt_id
        return run

    async def _score(self, attempt: _Attempt, images: Sequence[OutputImage], prompt: str) -> _Batch:
        """Score every image of the job (in a worker thread); an image that cannot be scored is recorded."""
        number, record = attempt.record.attempt, attempt.record
        t1 = time.perf_counter()
        reports: list[QualityReport | None] = []
        for i, img in enumerate(images):
            try:
                report = await asyncio.to_thread(
                    self.scorer.score, img.data, prompt, source_name=f"attempt {number} image {i}"
                )
            except Exception as exc:  # an unreadable output must not sink the run; a bug is logged with its traceback
                record.error = f"scoring failed: {recorded_reason(f'scoring attempt {number}', exc, log)}"
                reports.append(None)
                continue
            reports.append(report)
        record.timings.score_seconds = round(time.perf_counter() - t1, 4)
        return _Batch(reports)

    async def _store_image(self, attempt: _Attempt, image: OutputImage, metadata: GenerationMetadata) -> None:
        """Store the kept image of the attempt now, so that it survives a cancelled or crashed run."""
        t2 = time.perf_counter()
        stored = await self.store.put_attempt_image(
            metadata.generation_id, metadata.timestamp, attempt.record.attempt, image.data,
            content_type=image.content_type,
        )  # fmt: skip
        attempt.record.timings.store_seconds = round(time.perf_counter() - t2, 4)
        attempt.record.image_key, attempt.record.image_url = stored.key, stored.url

    async def _finish(
        self,
        metadata: GenerationMetadata,
        attempts: Sequence[_Attempt],
        request: GenerationRequest,
        fatal: str | None,
        progress: _Progress,
        *,
        started: float | None = None,
    ) -> GenerationResult:
        if not attempts:  # nothing was made (ComfyUI unreachable, workflow refused, cancelled): store nothing
            await progress.update("done", request.max_attempts, 1.0, "done: failed")
            return GenerationResult(
                generation_id=metadata.generation_id, status="failed", error=fatal or "no attempt was made",
                seconds=round(time.perf_counter() - started, 3) if started else 0.0,
            )  # fmt: skip
        records = [a.record for a in attempts]
        metadata.refinement = RefinementInfo.from_attempts(
            records, strategy=request.retry_strategy, threshold=request.quality_threshold,
            max_attempts=request.max_attempts,
        )  # fmt: skip
        best = next((a for a in attempts if a.record.attempt == metadata.refinement.best_attempt), None)
        if best is not None and best.report is not None:
            metadata.parameters = best.record.parameters
            metadata.quality = QualityRecord.from_report(best.report)
            best.record.rejected_reason = None
        if fatal:
            metadata.refinement.error = fatal
        stored = await self.store.put_generation(
            best.image if best else None, metadata, content_type=best.content_type if best else None
        )
        if self.index is not None:
            try:
                self.index.add(stored.metadata)
            except Exception:
                log.exception("indexing generation %s failed (the files are stored)", metadata.generation_id)
        await progress.update("done", request.max_attempts, 1.0, f"done: {metadata.refinement.status}")
        metadata_url = self.store.url_for(stored.metadata_key) if stored.status == "stored" else None
        return _result(stored, metadata_url, attempts, best, fatal, time.perf_counter() - started if started else 0.0)

    # -- helpers ------------------------------------------------------------------------------------------
    def _load_workflow(self, request: GenerationRequest) -> tuple[dict[str, Any], str]:
        source = request.workflow or self.settings.default_workflow
        try:
            workflow = load_workflow(source)
        except WorkflowError as exc:
            raise RequestError(f"workflow {source[:80]!r}: {exc}") from exc
        name = source if source in list_templates() else "custom"
        return workflow, name

    def _base_plan(self, request: GenerationRequest, workflow: dict[str, Any]) -> Plan:
        found = describe(workflow)
        family: Family = "flux" if found.guidance_nodes else "sd"
        if request.guidance is not None and not found.guidance_nodes:
            raise RequestError("guidance was given but the workflow has no FluxGuidance node; use cfg instead")
        batch = request.best_of_n if request.retry_strategy == "best_of_n" else 1
        return Plan(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            seed=request.seed if request.seed is not None else secrets.randbelow(2**32),
            steps=request.steps or found.params.steps or DEFAULT_STEPS,
            cfg=request.cfg if request.cfg is not None else (found.params.cfg or DEFAULT_CFG),
            guidance=request.guidance if request.guidance is not None else found.params.guidance,
            batch_size=batch,
            family=family,
        )

    def _patched(self, workflow: dict[str, Any], request: GenerationRequest, plan: Plan) -> dict[str, Any]:
        fields = _plan_fields(plan, request)
        if plan.batch_size == 1 and request.retry_strategy != "best_of_n":
            fields["batch_size"] = None  # leave the workflow's own batch size alone
        try:
            loras = [LoraSpec(**lora.model_dump()) for lora in request.loras] or None
            params = GenerationParams(**fields, loras=loras)
        except ValidationError as exc:  # a request the caller did not check: fail the run clearly, no traceback
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            raise RequestError(f"invalid generation parameters: {problems[:500]}") from exc
        try:
            return patch(workflow, params)
        except WorkflowError as exc:
            raise RequestError(str(exc)) from exc

    async def _preflight(self, workflow: dict[str, Any]) -> None:
        if self.settings.preflight:
            await self.comfy.preflight(workflow)


def _dims(report: QualityReport | None) -> dict[str, float | None] | None:
    if report is None:
        return None
    return {d: report.dimension_score(d) for d in DIMENSIONS}


def _plan_fields(plan: Plan, request: GenerationRequest) -> dict[str, Any]:
    """The parameters of one attempt: what is patched into the workflow and recorded in the metadata."""
    return {
        "prompt": plan.prompt,
        "negative_prompt": plan.negative_prompt,
        "seed": plan.seed,
        "steps": plan.steps,
        "cfg": plan.cfg,
        "guidance": plan.guidance if plan.family == "flux" else None,
        "sampler": request.sampler,
        "scheduler": request.scheduler,
        "width": request.width,
        "height": request.height,
        "batch_size": plan.batch_size,
    }


def _parameters(plan: Plan, request: GenerationRequest) -> GenerationParameters:
    return GenerationParameters(
        **_plan_fields(plan, request), loras=[StoredLora(**lora.model_dump()) for lora in request.loras]
    )


def _result(
    stored: StoredObject,
    metadata_url: str | None,
    attempts: Sequence[_Attempt],
    best: _Attempt | None,
    fatal: str | None,
    seconds: float,
) -> GenerationResult:
    md: GenerationMetadata = stored.metadata
    summaries = []
    for a in attempts:
        r = a.report
        summaries.append(
            AttemptSummary(
                attempt=a.record.attempt,
                parameters=a.record.parameters.model_dump(exclude_none=True),
                composite_score=r.composite_score if r else None,
                grade=r.grade if r else None,
                grade_status=r.grade_status if r else None,
                grade_reasons=list(r.grade_reasons) if r else [],
                dimensions=DimensionScores(**(_dims(r) or {})),
                accepted=best is a and md.refinement.status == "success",
                rejected_reason=None if best is a else a.record.rejected_reason,
                error=a.record.error,
                image_url=a.record.image_url,
                image_key=a.record.image_key,
                seconds={
                    k.removesuffix("_seconds"): v for k, v in a.record.timings.model_dump().items() if v is not None
                },
            )
        )
    error = fatal
    lost = next((a for a in attempts if a.unreachable), None)
    if error is None and lost is not None and md.refinement.status != "success":
        kept = f"the best image (attempt {best.record.attempt}) is returned" if best else "no image was produced"
        error = (
            f"the ComfyUI server became unreachable during attempt {lost.record.attempt} "
            f"({str(lost.unreachable)[:300]}); {kept}. Check that ComfyUI is running, then retry"
        )
    if error is None and md.refinement.status == "failed":
        error = next((a.record.error for a in reversed(attempts) if a.record.error), "no attempt produced an image")
    return GenerationResult(
        generation_id=md.generation_id,
        status=md.refinement.status,
        image_url=stored.url if best else None,
        metadata_url=metadata_url,
        image_key=stored.key if best else None,
        metadata_key=stored.metadata_key,
        storage_status="spooled" if stored.status == "spooled" else "stored",
        grade=md.quality.grade if md.quality else None,
        grade_status=md.quality.grade_status if md.quality else None,
        grade_reasons=list(md.quality.grade_reasons) if md.quality else [],
        selection=md.refinement.selection,
        composite_score=md.quality.composite_score if md.quality else None,
        quality=QualityBlock.model_validate(md.quality.model_dump(include=set(QualityBlock.model_fields)))
        if md.quality
        else None,
        partial=bool(md.quality.partial) if md.quality else False,
        attempts_used=len(attempts),
        best_attempt=md.refinement.best_attempt,
        attempts=summaries,
        error=error,
        seconds=round(seconds, 3),
    )


class _Progress:
    """Turns attempt stages and ComfyUI events into monotone 0–1 progress updates for the caller."""

    def __init__(self, callback: ProgressCallback | None, max_attempts: int) -> None:
        self.callback = callback
        self.max_attempts = max_attempts
        self.last = 0.0

    async def update(
        self, stage: ProgressStage, attempt: int, within: float, message: str,
        step: int | None = None, steps: int | None = None,
    ) -> None:  # fmt: skip
        if self.callback is None:
            return
        value = 1.0 if stage == "done" else ((attempt - 1) + max(0.0, min(1.0, within))) / self.max_attempts
        self.last = max(self.last, value)
        update = ProgressUpdate(stage=stage, attempt=attempt, max_attempts=self.max_attempts,
                                progress=round(self.last, 4), message=message, step=step, steps=steps)  # fmt: skip
        try:
            result = self.callback(update)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("progress callback failed (ignored)")

    def comfy_callback(self, attempt: int, max_attempts: int) -> Callable[[ProgressEvent], Awaitable[None]]:
        async def on_event(event: ProgressEvent) -> None:
            if event.stage == "sampling" and event.value is not None and event.max:
                frac = event.value / event.max
                await self.update("sampling", attempt, 0.8 * frac,
                                  f"attempt {attempt}/{max_attempts}: sampling step {event.value}/{event.max}",
                                  step=event.value, steps=event.max)  # fmt: skip
            elif event.stage == "queued":
                message = f"attempt {attempt}/{max_attempts}: queued (position {event.queue_position})"
                await self.update("queued", attempt, 0.0, message)

        return on_event
