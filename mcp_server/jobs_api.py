"""The job backend the generation tools use: where a job runs is not the tools' business.

Two implementations:

* :class:`mcp_server.jobs.JobManager` — in-process (the embedded default): jobs run in this server's own task
  group; nothing to install or start.
* :class:`mcp_server.jobs_redis.RedisJobBackend` — distributed (``COMFY_QUALITY_JOBS_URL=redis://...``): jobs
  are queued in Redis (docket) and run by ``comfy-quality-worker`` processes; any replica answers for any job.

A job as the tools read it (:class:`JobInfo`) has the same attributes in both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from mcp_server.models import JobState
from refinement.api import GenerationRequest, GenerationResult, ProgressUpdate

ProgressForward = Callable[[ProgressUpdate], Awaitable[None]]

#: what a client request id may look like (it names a Redis key in the distributed backend)
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class JobInfo(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def request(self) -> GenerationRequest: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def state(self) -> JobState: ...
    @property
    def result(self) -> GenerationResult | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def last(self) -> ProgressUpdate | None: ...
    @property
    def is_done(self) -> bool: ...

    def elapsed(self) -> float: ...


class JobBackend(Protocol):
    name: str
    """``in-process`` or ``redis``."""

    async def submit_job(self, request: GenerationRequest, *, request_id: str | None = None) -> JobInfo:
        """Accept a job (or, for a ``request_id`` already used with the same request, return that job).
        Raises a tool error when it cannot be accepted (busy, not configured, queue unavailable)."""
        ...

    async def job(self, job_id: str) -> JobInfo:
        """The job's current state; :class:`~mcp_server.errors.UnknownJobError` when there is none."""
        ...

    async def wait_job(self, job_id: str, timeout: float, forward: ProgressForward | None = None) -> None:
        """Return when the job is done or ``timeout`` passed, forwarding its progress meanwhile. Cancelling the
        waiting task stops the wait only."""
        ...

    async def cancel_job(self, job_id: str, *, grace: float = 5.0) -> JobInfo:
        """Ask the job to stop (its ComfyUI render is interrupted, what was made is stored) and wait up to
        ``grace`` seconds for its final state."""
        ...

    async def active_jobs(self) -> list[JobInfo]:
        """Jobs still queued or running (in the distributed backend: of every replica)."""
        ...
