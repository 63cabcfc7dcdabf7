"""Generation jobs: run the orchestrator in the background, let calls wait on a job for a bounded time.

A tool call never blocks on an unbounded wait (MCP hosts time out near 30–60 s): ``generate_quality`` submits a
:class:`Job`, waits at most ``wait_seconds`` while forwarding the job's progress to its caller, and returns the
result, or the job id when the job is still running. ``generation_status`` waits on an existing job the same way;
``cancel_generation`` cancels it, which cancels the orchestrator's task (and so its ComfyUI job).

Jobs run in a task group owned by the :class:`JobManager` (entered once per process, in the lifespan), limited
by a :class:`~mcp_server.limits.Gate`: ``generation_concurrency`` at once, ``generation_queue`` waiting, more are
refused as busy. Finished jobs stay queryable for ``retention_seconds`` (at most ``max_kept`` of them).

This is the in-process :class:`~mcp_server.jobs_api.JobBackend` (the ``*_job`` methods); the distributed one is
:mod:`mcp_server.jobs_redis`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from comfy_quality.boundary import log_unexpected
from comfy_quality.errors import ComfyQualityError
from mcp_server.errors import InvalidInputError, NotConfiguredError, UnknownJobError
from mcp_server.excerpt import excerpt
from mcp_server.limits import Gate
from mcp_server.netguard import redact_text
from refinement.api import FINAL_STATES, GenerationRequest, GenerationResult, Generator, JobState, ProgressUpdate

log = logging.getLogger(__name__)

ProgressForward = Callable[[ProgressUpdate], Awaitable[None]]


@dataclass(eq=False)
class Job:
    id: str
    request: GenerationRequest
    created_at: datetime
    submitted: float
    state: JobState = "queued"
    started: float | None = None
    finished: float | None = None
    result: GenerationResult | None = None
    error: str | None = None
    last: ProgressUpdate | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    listeners: set[MemoryObjectSendStream[ProgressUpdate]] = field(default_factory=set)
    scope: anyio.CancelScope | None = None
    cancel_requested: bool = False
    request_id: str | None = None

    @property
    def is_done(self) -> bool:
        return self.state in FINAL_STATES

    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.submitted


class JobManager:
    name = "in-process"

    def __init__(
        self,
        generator: Generator | None,
        gate: Gate,
        *,
        retention_seconds: float = 3600.0,
        max_kept: int = 200,
    ) -> None:
        self.generator = generator
        self.gate = gate
        self.retention_seconds = retention_seconds
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._by_request: dict[str, str] = {}
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> JobManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()  # shutting down: running generations are cancelled
        await self._tg.__aexit__(exc_type, exc, tb)
        self._tg = None

    # -- the JobBackend interface (async, shared with the distributed backend) ----------------------------
    async def submit_job(self, request: GenerationRequest, *, request_id: str | None = None) -> Job:
        if request_id is not None:
            self._purge()
            known = self._jobs.get(self._by_request.get(request_id, ""))
            if known is not None:
                if known.request != request:
                    raise InvalidInputError(
                        f"request_id {request_id!r} was already used for a different generation request "
                        f"(job {known.id}); use a new request_id for a new request"
                    )
                return known
        job = self.submit(request)
        if request_id is not None:
            job.request_id = request_id
            self._by_request[request_id] = job.id
        return job

    async def job(self, job_id: str) -> Job:
        return self.get(job_id)

    async def wait_job(self, job_id: str, timeout: float, forward: ProgressForward | None = None) -> None:
        await self.wait(self.get(job_id), timeout, forward)

    async def cancel_job(self, job_id: str, *, grace: float = 5.0) -> Job:
        job = self.cancel(job_id)
        with anyio.move_on_after(grace):  # let the orchestrator stop its ComfyUI job before answering
            await job.done.wait()
        return job

    async def active_jobs(self) -> list[Job]:
        return self.active()

    # -- submit / query -----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> Job:
        if self.generator is None:
            raise NotConfiguredError(
                "generation is not available: this server was started without an image generator "
                "(ComfyUI orchestrator); score_image still works"
            )
        if self._tg is None:
            raise RuntimeError("JobManager used outside its async context")
        self._purge()
        self.gate.admit()
        job = Job(
            id=uuid.uuid4().hex[:16],
            request=request,
            created_at=datetime.now(UTC),
            submitted=time.monotonic(),
        )
        ahead = self.gate.running + self.gate.waiting - 1
        job.last = ProgressUpdate(
            stage="queued",
            attempt=0,
            max_attempts=request.max_attempts,
            progress=0.0,
            message="queued" + (f" behind {ahead} other generation(s)" if ahead > 0 else ""),
        )
        self._jobs[job.id] = job
        self._tg.start_soon(self._run, job, name=f"generation job {job.id}")
        return job

    def get(self, job_id: str) -> Job:
        self._purge()
        job = self._jobs.get(job_id.strip())
        if job is None:
            raise UnknownJobError(
                f"no job {excerpt(job_id)}: job ids come from generate_quality and are kept for "
                f"{self.retention_seconds / 60:g} minutes after the job ends; list_generations shows stored ones"
            )
        return job

    def active(self) -> list[Job]:
        return [j for j in self._jobs.values() if not j.is_done]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if not job.is_done:
            job.cancel_requested = True
            if job.scope is not None:
                job.scope.cancel()
        return job

    # -- waiting ------------------------------------------------------------------------------------------
    async def wait(self, job: Job, timeout: float, forward: ProgressForward | None = None) -> None:
        """Return when ``job`` is done or ``timeout`` seconds passed, forwarding its progress meanwhile.

        Cancelling the waiting task stops the wait only; the caller decides whether to cancel the job."""
        if job.is_done:
            return
        send, receive = anyio.create_memory_object_stream[ProgressUpdate](max_buffer_size=64)
        job.listeners.add(send)
        try:
            with anyio.move_on_after(timeout):
                async with receive:
                    if forward is not None and job.last is not None:
                        await forward(job.last)
                    async for update in receive:  # ends when the job finishes and closes the stream
                        if forward is not None:
                            await forward(update)
        finally:
            job.listeners.discard(send)
            send.close()

    # -- running ------------------------------------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        assert self.generator is not None
        try:
            with anyio.CancelScope() as scope:
                job.scope = scope
                if job.cancel_requested:
                    scope.cancel()
                async with self.gate.admitted():
                    job.state = "running"
                    job.started = time.monotonic()

                    async def on_progress(update: ProgressUpdate) -> None:
                        self._publish(job, update)

                    result = await self.generator.generate(job.request, on_progress=on_progress)
                job.result = result
                job.state = result.status
                job.error = result.error
            if scope.cancelled_caught or job.cancel_requested:
                job.state = "cancelled"
                job.error = "cancelled on request"
        except anyio.get_cancelled_exc_class():
            job.state = "cancelled"
            job.error = "cancelled: the server is shutting down"
            raise
        except ComfyQualityError as exc:  # a library error: its message is the reason
            log.warning("generation job %s failed: %s", job.id, exc)
            job.state = "failed"
            job.error = "generation failed: " + redact_text(str(exc) or type(exc).__name__)
        except Exception as exc:  # a plugged-in generator's own error, or a bug: logged with its traceback too
            log_unexpected(f"generation job {job.id}", exc, log)
            job.state = "failed"
            job.error = "generation failed: " + redact_text(str(exc) or type(exc).__name__)
        finally:
            if job.state not in FINAL_STATES:  # defensive: never leave a job 'running' forever
                job.state = "failed"
            job.finished = time.monotonic()
            for listener in list(job.listeners):
                listener.close()
            job.listeners.clear()
            job.done.set()

    def _publish(self, job: Job, update: ProgressUpdate) -> None:
        job.last = update
        for listener in list(job.listeners):
            try:
                listener.send_nowait(update)
            except anyio.WouldBlock:
                pass  # a slow listener misses an intermediate update; the next one supersedes it
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                job.listeners.discard(listener)

    def _purge(self) -> None:
        now = time.monotonic()
        finished = sorted(
            (j for j in self._jobs.values() if j.is_done and j.finished is not None),
            key=lambda j: j.finished or 0.0,
        )
        for job in finished:
            if now - (job.finished or now) > self.retention_seconds:
                del self._jobs[job.id]
        finished = [j for j in finished if j.id in self._jobs]
        for job in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[job.id]
        for request_id, job_id in list(self._by_request.items()):
            if job_id not in self._jobs:
                del self._by_request[request_id]
