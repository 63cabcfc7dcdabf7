"""The distributed job backend: generation jobs queued in Redis (docket), run by ``comfy-quality-worker``.

Selected by ``COMFY_QUALITY_JOBS_URL=redis://host:6379/0``. Every replica reads the same job records
(:mod:`jobqueue.records`), so ``generation_status``, ``cancel_generation`` and ``list_generations`` answer for any
job whichever replica accepted it, and a restarted replica loses nothing (it holds no job state).

* submit: the record is written and the task queued under the job id (docket ignores a second add with the same
  key); a client ``request_id`` maps to one job (a repeated submission returns it). The seed is fixed here when
  the request has none, so a redelivered job replays the same attempts.
* wait: the replica subscribes to the job's events channel (progress from the worker is forwarded to the
  caller as MCP progress notifications), re-reading the record every few seconds in case a message was lost.
* cancel: a Lua script marks a queued job cancelled at once, or flags a running one; ``Docket.cancel`` removes
  the queued task or signals the worker running it, which interrupts its ComfyUI prompt and stores what was made.
* Redis unreachable: every call fails with "job queue unavailable" and nothing is accepted; the connection pool
  reconnects by itself when Redis is back (no restart).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, TypeVar

import anyio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobqueue.queue import open_docket, open_redis
from jobqueue.records import JobEvent, JobRecord, JobStore, now_utc
from jobqueue.settings import JobsSettings
from jobqueue.tasks import run_generation
from mcp_server.errors import InvalidInputError, ServiceError, UnknownJobError
from mcp_server.jobs_api import ProgressForward
from refinement.api import GenerationRequest, ProgressUpdate

log = logging.getLogger(__name__)

#: how often a waiting replica re-reads the record besides listening to the events channel
RECHECK_SECONDS = 3.0
#: most recent jobs list_generations looks through for running ones
ACTIVE_LIMIT = 500

T = TypeVar("T")


class JobQueueUnavailableError(ServiceError):
    """Redis (the job queue) does not answer."""


class RedisJobBackend:
    name = "redis"

    def __init__(self, settings: JobsSettings, *, retention_seconds: float = 3600.0) -> None:
        self.settings = settings
        self.retention_seconds = retention_seconds
        self._stack: Any = None
        self.redis = open_redis(settings)
        self.jobs = JobStore(self.redis, settings.name)
        self._docket: Any = None
        self._docket_cm: Any = None

    async def __aenter__(self) -> RedisJobBackend:
        self._docket_cm = open_docket(self.settings, execution_ttl=self.retention_seconds)
        self._docket = await self._docket_cm.__aenter__()
        log.info("generation jobs go to the Redis queue %r at %s", self.settings.name, self.settings.display_url())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._docket_cm is not None:
                await self._docket_cm.__aexit__(exc_type, exc, tb)
        finally:
            await self.redis.aclose()

    async def _twice(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``, once more on a connection error: after Redis restarts, pooled connections (ours
        and docket's) are stale, and the first command on each fails although Redis answers again."""
        try:
            return await operation()
        except (RedisConnectionError, OSError):
            return await operation()

    @asynccontextmanager
    async def _available(self, doing: str) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise JobQueueUnavailableError(
                f"job queue unavailable: Redis at {self.settings.display_url()} does not answer "
                f"({type(exc).__name__}: {str(exc)[:200]}); {doing}. Retry when it is back."
            ) from exc

    # -- JobBackend ---------------------------------------------------------------------------------------
    async def submit_job(self, request: GenerationRequest, *, request_id: str | None = None) -> JobRecord:
        fixed = request if request.seed is not None else request.model_copy(update={"seed": secrets.randbelow(2**32)})
        record = JobRecord(
            id=uuid.uuid4().hex[:16],
            request=fixed,
            created_at=now_utc(),
            retention_seconds=self.retention_seconds,
            request_id=request_id,
            last=ProgressUpdate(stage="queued", attempt=0, max_attempts=request.max_attempts, progress=0.0,
                                message="queued for a worker"),
        )
        async with self._available("the job was not accepted"):
            created, job_id = await self._twice(lambda: self.jobs.create(record))
            if not created and job_id != record.id:
                return await self._existing(job_id, request, request_id or "")
            try:
                await self._twice(lambda: self._docket.add(run_generation, key=record.id)(record.id))
            except BaseException:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.jobs.forget(record)
                    except (RedisError, OSError):
                        log.warning("job %s could not be queued nor removed", record.id)
                raise
        return record

    async def _existing(self, job_id: str, request: GenerationRequest, request_id: str) -> JobRecord:
        known = await self.jobs.load(job_id)
        if known is None:
            raise UnknownJobError(f"request_id {request_id!r} belongs to job {job_id}, which has expired")
        same = known.request.model_dump(exclude={"seed"}) == request.model_dump(exclude={"seed"}) and (
            request.seed is None or request.seed == known.request.seed
        )
        if not same:
            raise InvalidInputError(
                f"request_id {request_id!r} was already used for a different generation request (job {job_id}); "
                "use a new request_id for a new request"
            )
        return known

    async def job(self, job_id: str) -> JobRecord:
        job_id = job_id.strip()
        async with self._available("the job's state could not be read"):
            record = await self._twice(lambda: self.jobs.load(job_id))
        if record is None:
            raise UnknownJobError(
                f"no job {job_id!r}: job ids come from generate_quality and are kept for "
                f"{self.retention_seconds / 60:g} minutes after the job ends; list_generations shows stored ones"
            )
        return record

    async def wait_job(self, job_id: str, timeout: float, forward: ProgressForward | None = None) -> None:
        record = await self.job(job_id)
        if record.is_done or timeout <= 0:
            return
        with anyio.move_on_after(timeout):
            async with self._available("the wait was interrupted (the job itself goes on)"):
                await self._follow(record, forward)

    async def _follow(self, record: JobRecord, forward: ProgressForward | None) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.jobs.keys.events(record.id))
            fresh = await self.jobs.load(record.id)  # after subscribing: nothing between is missed
            if fresh is None or fresh.is_done:
                return
            if forward is not None and fresh.last is not None:
                await forward(fresh.last)
            recheck = time.monotonic() + RECHECK_SECONDS
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    event = JobEvent.model_validate_json(message["data"])
                    if event.type == "state":
                        return
                    if event.update is not None and forward is not None:
                        await forward(event.update)
                if time.monotonic() >= recheck:
                    recheck = time.monotonic() + RECHECK_SECONDS
                    fresh = await self.jobs.load(record.id)
                    if fresh is None or fresh.is_done:
                        return
        finally:
            with anyio.CancelScope(shield=True):
                with suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def cancel_job(self, job_id: str, *, grace: float = 5.0) -> JobRecord:
        job_id = job_id.strip()
        async with self._available("the job was not cancelled"):
            outcome = await self._twice(lambda: self.jobs.request_cancel(job_id))
            if outcome == "missing":
                await self.job(job_id)  # raises UnknownJobError
            if outcome in ("cancelled", "requested"):
                # removes a queued task, or reaches the worker running it
                await self._twice(lambda: self._docket.cancel(job_id))
                if outcome == "cancelled":
                    await self.jobs.publish(job_id, JobEvent(type="state", state="cancelled"))
        await self.wait_job(job_id, grace)
        return await self.job(job_id)

    async def active_jobs(self) -> list[JobRecord]:
        async with self._available("running jobs could not be listed"):
            ids = await self._twice(lambda: self.jobs.recent_ids(ACTIVE_LIMIT))
            records = await self._twice(lambda: self.jobs.load_many(ids))
        return [r for r in records if not r.is_done]
