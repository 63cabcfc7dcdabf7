"""The MCP tools: thin functions that validate, delegate and report progress; their errors are translated in one
place, :mod:`mcp_server.boundary`.

Descriptions are written for the LLM that calls them: what each tool is for, which strategy to choose, what
the grades mean, what to do when a job is still running.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from mcp_server.generation_args import build_request, check_request, takes_request_fields
from mcp_server.jobs_api import REQUEST_ID_PATTERN
from mcp_server.lifespan import AppState
from mcp_server.models import GenerationList, GenerationOutput, RecentQuery, ScoreResult
from mcp_server.outputs import generation_output, job_summary, preview_for, score_result, tool_result
from mcp_server.urls import locator_of
from quality.composite import Grade
from refinement.api import ProgressUpdate

log = logging.getLogger(__name__)

GRADES_TEXT = "{grades}"
"""Where a description explains the grades, rendered from the server's configuration by
:func:`mcp_server.grade_texts.describe`."""
THRESHOLD_TEXT = "{threshold}"
"""Where generate_quality's description explains its default threshold (rendered the same way)."""

SCORE_IMAGE_DESCRIPTION = (
    "Score an image's quality on four dimensions, each 0–10: technical (artifacts, noise, blur: BRISQUE, NIQE), "
    "aesthetic (composition, colour: LAION aesthetic, NIMA), prompt adherence (CLIP similarity to `prompt`; "
    "only when a prompt is given) and detail (TOPIQ, edge density), combined into a composite 0–10 and a grade. "
    + GRADES_TEXT
    + "Use it to check an image before showing or using it, or to compare candidates (higher composite wins). "
    "By default the technical and detail scores are calibrated on human ratings of AI-generated images, so a "
    "grade says roughly where people would rank the image (`calibration` in the result says so). "
    "The result says which metrics ran; when model weights are missing on the server a dimension is "
    "'unavailable' and the grade is marked partial (computed over what was scored), never guessed."
)

GENERATE_DESCRIPTION = (
    "Generate an image with ComfyUI and make sure it is good: every attempt is scored like score_image; when the "
    "composite is below quality_threshold the server retries with retry_strategy, up to max_attempts, and "
    "returns the best image as a URL (with a small preview), its grade and scores, and every attempt's exact "
    "parameters. "
    + GRADES_TEXT
    + THRESHOLD_TEXT
    + "Strategies: 'progressive' (default, good general choice: more steps and cfg each attempt), 'seed_search' "
    "(same settings, new seeds: when the composition or content is off), 'prompt_enhance' (adds quality terms "
    "to the prompt: when aesthetic or detail is weak), 'adaptive' (changes whatever the weakest dimension of the "
    "last attempt calls for), 'best_of_n' (renders best_of_n seeds per attempt and keeps the best: most "
    "reliable, costs the most GPU time).\n"
    "Workflow: omit it for the server's default, or give a template name (flux-dev, sdxl, sd15), or your own "
    "API-format ComfyUI workflow as a JSON object (JSON text works too); its prompt, seed, steps, size and "
    "sampler are found by node class and patched. Invalid arguments (an unknown template, a broken workflow, a "
    "malformed LoRA or sampler name, over 64 megapixels per batch) are refused at once, before any job starts.\n"
    "Long jobs: the call waits at most wait_seconds (default 20). If the job is not finished by then, the result "
    "has status 'running' and a job_id: call generation_status(job_id) to wait again (each call waits up to "
    "wait_seconds) and cancel_generation(job_id) to stop it. Cancelling this call while it waits also cancels "
    "the generation."
)

STATUS_DESCRIPTION = (
    "Status and result of a generation job started by generate_quality: waits up to wait_seconds for it to "
    "finish (0: answer at once), reporting progress meanwhile. A finished job returns the same result as "
    "generate_quality. Cancelling this call only stops waiting; the job keeps running."
)

CANCEL_DESCRIPTION = (
    "Cancel a generation job started by generate_quality (stops its ComfyUI render). Returns the job's final "
    "state; cancelling a finished job changes nothing."
)

LIST_DESCRIPTION = (
    "List this server's generation jobs still running and the most recent stored generations (newest first) "
    "with their grade, composite score and image URL; filter by grade, status or prompt words."
)


def _state(ctx: Context[AppState]) -> AppState:
    return ctx.request_context.lifespan_context


class ProgressReporter:
    """Forwards orchestrator progress to the calling client as MCP progress notifications (0–100, strictly
    increasing as the protocol requires; a stage message that does not advance the figure is nudged by 0.01)."""

    def __init__(self, ctx: Context[AppState]) -> None:
        self._ctx = ctx
        self._last = -1.0

    async def send(self, value: float, message: str, total: float = 100.0) -> None:
        if value <= self._last:
            value = self._last + 0.01
        if value > total:
            return
        self._last = value
        try:
            await self._ctx.report_progress(round(value, 2), total, message)
        except Exception as exc:  # the client went away: progress is best effort
            log.debug("progress notification not sent: %s", exc)

    async def update(self, update: ProgressUpdate) -> None:
        text = update.message
        if update.attempt > 0:
            text = f"attempt {update.attempt}/{update.max_attempts}: {text}"
        if update.step is not None and update.steps:
            text += f" (step {update.step}/{update.steps})"
        await self.send(update.progress * 100.0, text)


# -- score_image ---------------------------------------------------------------------------------------------
async def score_image(
    image: Annotated[
        str,
        Field(
            min_length=1,
            description="the image: a local path (under the server's allowed folders), an http(s) URL (allowed "
            "hosts only), an s3://bucket/key or MinIO URL, base64 data, or a data:image/...;base64,... URL",
        ),
    ],
    ctx: Context[AppState],
    prompt: Annotated[
        str | None,
        Field(max_length=4000, description="what the image should show; enables the prompt adherence dimension"),
    ] = None,
) -> ScoreResult:
    state = _state(ctx)
    progress = ProgressReporter(ctx)
    started = anyio.current_time()
    async with state.score_gate.slot() as queued:
        await progress.send(0, "reading the image", total=3)
        t0 = anyio.current_time()
        loaded = await state.sources.load(image)
        fetched = anyio.current_time() - t0
        if not state.scorer.ready:
            await progress.send(0.5, "waiting for the scoring models to load", total=3)
        scorer = await state.scorer.get(state.settings.max_wait_seconds - (anyio.current_time() - started))
        await progress.send(1, "scoring", total=3)
        t1 = anyio.current_time()
        # a QualityError becomes a ScoringError, anything else is logged and answered briefly (mcp_server.boundary)
        report = await anyio.to_thread.run_sync(
            functools.partial(scorer.score, loaded.data, prompt, source_name=loaded.name)
        )
        scored = anyio.current_time() - t1
    await progress.send(3, f"scored: grade {report.grade}" if report.grade else "scored: not graded", total=3)
    return score_result(report, fetch=fetched, queue=queued, score=scored, total=anyio.current_time() - started)


# -- generation ----------------------------------------------------------------------------------------------
WaitSeconds = Annotated[
    float | None,
    Field(
        ge=0,
        le=3600,
        description="longest time this call waits before returning the job id (default 20 s; "
        "the server caps it below common client timeouts)",
    ),
]
ReturnScores = Annotated[
    bool, Field(description="include the best image's scores and every attempt's parameters and scores")
]
IncludePreview = Annotated[bool, Field(description="attach a small (≤ 100 KB) JPEG preview of the best image")]


def _wait_for(state: AppState, wait_seconds: float | None) -> float:
    wanted = state.settings.default_wait_seconds if wait_seconds is None else wait_seconds
    return min(wanted, state.settings.max_wait_seconds)


async def _respond(state: AppState, job_id: str, return_scores: bool, include_preview: bool) -> CallToolResult:
    job = await state.jobs.job(job_id)
    locator = locator_of(state.store)
    output = await anyio.to_thread.run_sync(
        lambda: generation_output(job, return_scores=return_scores, locator=locator)
    )
    preview = None
    if include_preview and state.settings.preview and job.is_done and output.image_url:
        preview = await preview_for(output.image_url, state.store, state.settings, state.sources.file_max_bytes)
    return tool_result(output, preview)


#: the ``workflow`` argument as the MCP boundary takes it (see :mod:`mcp_server.generation_args`); the request
#: gets the template name or checked JSON text it resolves to
WorkflowArgument = Annotated[
    str | dict[str, Any] | None,
    Field(
        description="a template name (flux-dev, sdxl, sd15); or an API-format ComfyUI workflow (as exported "
        "with 'Save (API Format)'), given as a JSON object {node_id: {class_type, inputs}} or as JSON text; "
        "or the name of a workflow file in the server's workflow folders (only when its operator configured "
        "some). Default: the server's template"
    ),
]


@takes_request_fields(overrides={"workflow": (WorkflowArgument, None)})
async def generate_quality(
    ctx: Context[AppState],
    return_scores: ReturnScores = True,
    include_preview: IncludePreview = True,
    wait_seconds: WaitSeconds = None,
    request_id: Annotated[
        str | None,
        Field(
            pattern=REQUEST_ID_PATTERN,
            description="your own id for this request (1–128 letters, digits, '_.:-'): sending the same "
            "request_id again returns the same job instead of starting another (safe retries)",
        ),
    ] = None,
    **request_fields: Any,
) -> Annotated[CallToolResult, GenerationOutput]:
    """The generation parameters arrive in ``request_fields``: one per :class:`GenerationRequest` field."""
    state = _state(ctx)
    resolved_workflow = await state.workflows.resolve(request_fields.pop("workflow", None))
    request = build_request(request_fields, workflow=resolved_workflow, source="mcp")
    check_request(request)
    job = await state.jobs.submit_job(request, request_id=request_id)
    progress = ProgressReporter(ctx)
    try:
        await state.jobs.wait_job(job.id, _wait_for(state, wait_seconds), progress.update)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):  # the caller cancelled this call: stop the generation it started
            await state.jobs.cancel_job(job.id, grace=0)
        raise
    return await _respond(state, job.id, return_scores, include_preview)


async def generation_status(
    job_id: Annotated[str, Field(min_length=1, max_length=64, description="job_id from generate_quality")],
    ctx: Context[AppState],
    wait_seconds: WaitSeconds = None,
    return_scores: ReturnScores = True,
    include_preview: IncludePreview = True,
) -> Annotated[CallToolResult, GenerationOutput]:
    state = _state(ctx)
    job = await state.jobs.job(job_id)
    await state.jobs.wait_job(job.id, _wait_for(state, wait_seconds), ProgressReporter(ctx).update)
    return await _respond(state, job.id, return_scores, include_preview)


async def cancel_generation(
    job_id: Annotated[str, Field(min_length=1, max_length=64, description="job_id from generate_quality")],
    ctx: Context[AppState],
) -> Annotated[CallToolResult, GenerationOutput]:
    state = _state(ctx)
    job = await state.jobs.cancel_job(job_id, grace=5)  # lets the job stop its ComfyUI render before answering
    return await _respond(state, job.id, return_scores=True, include_preview=False)


async def list_generations(
    ctx: Context[AppState],
    limit: Annotated[int, Field(ge=1, le=100, description="most stored generations to return")] = 10,
    grades: Annotated[list[Grade] | None, Field(description="only these grades, e.g. ['A', 'B']")] = None,
    statuses: Annotated[
        list[Literal["success", "best_effort", "failed"]] | None, Field(description="only these outcomes")
    ] = None,
    text: Annotated[str | None, Field(max_length=500, description="words that must occur in the prompt")] = None,
) -> GenerationList:
    state = _state(ctx)
    locator = locator_of(state.store)
    active = [job_summary(j, locator) for j in await state.jobs.active_jobs()]
    if state.index is None:
        return GenerationList(
            active=active,
            recent=[],
            index_available=False,
            note="this server has no generation index configured: only its running jobs are listed",
        )
    query = RecentQuery(limit=limit, grades=grades or [], statuses=statuses or [], text=text)
    recent = await state.index.recent(query)  # its StorageError becomes a ServiceError (mcp_server.boundary)
    return GenerationList(active=active, recent=recent[:limit], index_available=True)
