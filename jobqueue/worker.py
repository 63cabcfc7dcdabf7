"""``comfy-quality-worker``: runs queued generation jobs (and re-scoring chunks) on this worker's ComfyUI servers.

    COMFY_QUALITY_JOBS_URL=redis://redis:6379/0 COMFY_QUALITY_COMFYUI_URLS=http://gpu1:8188,http://gpu2:8188 \\
        comfy-quality-worker

* The scoring models load once, at start (before the worker takes any job).
* The worker drives the ComfyUI servers of ``COMFY_QUALITY_COMFYUI_URLS`` through one
  :class:`~refinement.comfyui.ComfyUIPool`: each job goes to the least busy server by its ``/queue``, a failing
  server is skipped until it answers again, and at most ``COMFY_QUALITY_JOBS_PER_SERVER_CONCURRENCY`` of this
  worker's jobs run on one server at once. It takes ``servers × per-server`` jobs from the queue at most; the
  rest wait in Redis for any worker.
* Several workers on several machines share one queue. A job whose worker dies is delivered again (docket's
  redelivery) and continues from the images already rendered (:mod:`jobqueue.journal`); after
  ``COMFY_QUALITY_JOBS_MAX_DELIVERIES`` deliveries it is marked failed with the reason.
* SIGTERM / SIGINT: the worker stops taking jobs; jobs it is running are interrupted, what they made is stored,
  and they are left to another worker (a graceful stop does not count as a failed delivery).
* Redis away: the worker keeps its jobs running, reconnects by itself and writes their results when Redis is back.
* A job that fails with a library error records its message; one that fails with anything else (a bug) is logged
  with its traceback and recorded as an internal error. Exit codes: 0 stopped, 1 a component failed (the message
  says which), 2 invalid settings or options, 70 internal error (its traceback is logged), 130 interrupted.

``COMFY_QUALITY_JOBS_WORKER_COMPONENTS=module:function`` replaces the built-in scorer / ComfyUI pool / store
(an async context manager yielding :class:`WorkerComponents`); the tests and ``bench/fleet.py`` use it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from comfy_quality.boundary import CliErrors, ErrorTable, log_unexpected
from comfy_quality.errors import ComfyQualityError, SettingsError
from comfy_quality.settings import Settings, tree_of
from jobqueue.errors import JobQueueConfigError
from jobqueue.journal import CapturingStore, JournalComfy, result_from_stored
from jobqueue.queue import open_docket, open_redis
from jobqueue.records import JobEvent, JobRecord, JobStore
from jobqueue.settings import JobsSettings
from jobqueue.tasks import install_runtime
from refinement.api import ProgressUpdate
from refinement.settings import RefinementSettings
from storage.settings import StorageSettings

log = logging.getLogger("jobqueue.worker")

#: how long a finished job's record write is retried while Redis is away
FINISH_RETRY_SECONDS = 300.0
#: longest one Redis round trip of the worker may take before it is retried on fresh connections
REDIS_CALL_SECONDS = 15.0
#: after SIGTERM / SIGINT, the worker exits at the latest this long after (its jobs are redelivered)
STOP_GRACE_SECONDS = 25.0

T = TypeVar("T")


@dataclass
class WorkerComponents:
    """What a worker runs jobs with."""

    scorer: Any
    """``score(image_bytes, prompt, source_name=...)`` (blocking; called in threads)."""
    comfy: Any
    """A :class:`~refinement.comfyui.ComfyUIPool` (or anything with ``run`` and ``pick``)."""
    store: Any
    """A :class:`storage.Store`."""
    index: Any | None
    refinement: RefinementSettings
    servers: int
    """How many ComfyUI servers ``comfy`` drives (sets the worker's concurrency)."""
    storage: StorageSettings | None = None
    """The storage section the store was opened with (re-scoring reads ``s3://`` sources with its endpoint and
    keys); None: read from the environment when needed."""


@asynccontextmanager
async def default_components(settings: Settings | JobsSettings) -> AsyncIterator[WorkerComponents]:
    """The scorer (loaded now), the ComfyUI pool (``per_server_concurrency`` jobs per server), the store and the
    index (:func:`refinement.factory.open_orchestrator`), from the worker's settings tree (or its ``jobs``
    section alone); each job gets its own orchestrator on them."""
    from refinement.factory import open_orchestrator

    tree = tree_of(settings, "jobs")
    async with open_orchestrator(tree, max_in_flight=tree.jobs.per_server_concurrency) as parts:
        yield WorkerComponents(
            parts.scorer, parts.pool, parts.store, parts.index, parts.settings, len(parts.settings.comfyui_urls),
            parts.storage_settings,
        )


def _components(tree: Settings) -> AbstractAsyncContextManager[WorkerComponents]:
    settings = tree.jobs
    target = (settings.worker_components or "").strip()
    if not target:
        return default_components(tree)
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "components")
    return cast(AbstractAsyncContextManager[WorkerComponents], factory(settings))


class WorkerRuntime:
    """Runs the tasks docket hands to this worker (installed with :func:`jobqueue.tasks.install_runtime`)."""

    def __init__(self, settings: JobsSettings, parts: WorkerComponents, jobs: JobStore, name: str) -> None:
        self.settings = settings
        self.parts = parts
        self.jobs = jobs
        self.name = name
        self.stopping = False
        self._rescore: Any = None

    # -- generation jobs --------------------------------------------------------------------------------
    async def run_generation(self, job_id: str) -> None:
        from refinement.orchestrator import Orchestrator

        status, detail, record = await _patiently(
            lambda: self.jobs.claim(job_id, self.name, self.settings.max_deliveries)
        )
        if status in ("missing", "final"):
            log.info("job %s: nothing to do (%s %s)", job_id, status, detail)
            return
        if record is None:
            record = await _patiently(lambda: self.jobs.load(job_id))
        if record is None:
            return
        if status in ("cancelled", "exhausted"):
            log.warning("job %s: %s", job_id, record.error)
            await self._finish(record)
            return
        deliveries = int(detail)
        log.info("job %s: started (delivery %d)", job_id, deliveries)
        publisher = _Publisher(self, record)
        if deliveries > 1:
            record.notes.append(
                f"delivery {deliveries}: a previous worker stopped during this job; continued from the images "
                "it had already rendered"
            )
            publisher.update(ProgressUpdate(
                stage="queued", attempt=0, max_attempts=record.request.max_attempts, progress=0.0,
                message=f"taken over by worker {self.name} (delivery {deliveries}); resuming",
            ))  # fmt: skip
        else:
            publisher.update(ProgressUpdate(
                stage="queued", attempt=0, max_attempts=record.request.max_attempts, progress=0.0,
                message=f"started on worker {self.name}",
            ))  # fmt: skip
        comfy = JournalComfy(self.parts.comfy, self.jobs, self.parts.store, job_id, record.created_at)
        store = CapturingStore(self.parts.store)
        orchestrator = Orchestrator(self.parts.scorer, comfy, store, self.parts.index, self.parts.refinement)

        try:
            result = await orchestrator.generate(record.request, on_progress=publisher.update)
        except asyncio.CancelledError:
            await publisher.close()
            await asyncio.shield(comfy.flush())  # what was rendered is journaled before the job is let go
            await asyncio.shield(self._interrupted(record, store))
            raise
        except ComfyQualityError as exc:  # a library error: its message is the reason
            log.warning("job %s failed: %s", job_id, exc)
            record.state, record.error = "failed", f"generation failed: {exc}"
        except Exception as exc:  # a plugged-in component's own error, or a bug: logged with its traceback too
            log_unexpected(f"job {job_id}", exc, log)
            record.state, record.error = "failed", f"generation failed: {type(exc).__name__}: {exc}"
        else:
            record.result, record.state, record.error = result, result.status, result.error
        await publisher.close()
        await comfy.flush()
        if comfy.replayed:
            record.notes.append(f"{comfy.replayed} ComfyUI run(s) answered from images stored by an earlier delivery")
        await self._finish(record)
        log.info("job %s: %s (%d rendered, %d replayed)", job_id, record.state, comfy.rendered, comfy.replayed)

    async def _interrupted(self, record: JobRecord, store: CapturingStore) -> None:
        """The job's task was cancelled: by a cancel request (final) or by this worker stopping (requeued)."""
        try:
            fresh = await self.jobs.load(record.id)
        except RedisError:
            fresh = None
        if fresh is not None and fresh.cancel_requested:
            record.state, record.error = "cancelled", "cancelled on request"
            record.result = result_from_stored(store.stored, getattr(self.parts.store, "url_for", None))
            await self._finish(record)
            log.info("job %s: cancelled on request", record.id)
            return
        log.info("job %s: worker stopping; leaving the job to another worker", record.id)
        try:
            update = ProgressUpdate(
                stage="queued", attempt=0, max_attempts=record.request.max_attempts, progress=0.0,
                message=f"worker {self.name} stopped; waiting for another worker",
            )  # fmt: skip
            await self.jobs.redis.hincrby(self.jobs.keys.job(record.id), "deliveries", -1)
            await self.jobs.update(record.id, state="queued", last=update.model_dump_json())
            await self.jobs.publish(record.id, JobEvent(type="progress", update=update))
        except RedisError as exc:
            log.warning("job %s: could not mark it requeued (%s); it is redelivered anyway", record.id, exc)

    async def _progress(self, record: JobRecord, update: ProgressUpdate) -> None:
        record.last = update
        try:
            async with self.jobs.redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.jobs.keys.job(record.id), "last", update.model_dump_json())
                pipe.publish(
                    self.jobs.keys.events(record.id),
                    JobEvent(type="progress", update=update).model_dump_json(),
                )
                await pipe.execute()
        except RedisError as exc:  # progress is best effort; the job goes on
            log.debug("job %s: progress not published: %s", record.id, exc)

    async def _finish(self, record: JobRecord) -> None:
        """Write the final state (retrying while Redis is away: the result must not be lost)."""
        record.finished = record.finished or time.time()
        deadline = time.monotonic() + FINISH_RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                await _bounded(self.jobs.finish(record), REDIS_CALL_SECONDS)
                return
            except (RedisError, OSError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    log.error("job %s: result not written, Redis unavailable: %s", record.id, exc)
                    raise
                log.warning("job %s: Redis unavailable (%s); retrying the result write", record.id, exc)
                await self.jobs.redis.connection_pool.disconnect()  # start over on fresh connections
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- re-scoring -------------------------------------------------------------------------------------
    async def score_chunk(self, run_id: str, chunk: int) -> None:
        from jobqueue.rescore import ChunkScorer

        if self._rescore is None:
            self._rescore = ChunkScorer(self.jobs, self.parts.scorer, self.name, self.parts.storage)
        await self._rescore.run(run_id, chunk)


class _Publisher:
    """Publishes a job's progress off the job's own path: the orchestrator hands over the latest update and goes
    on; a background task sends it (coalescing updates that arrive while one is being sent)."""

    def __init__(self, runtime: WorkerRuntime, record: JobRecord) -> None:
        self.runtime = runtime
        self.record = record
        self.latest: ProgressUpdate | None = None
        self.ready = asyncio.Event()
        self.closing = False
        self.task = asyncio.create_task(self._run(), name=f"progress of job {record.id}")

    def update(self, update: ProgressUpdate) -> None:
        self.latest = update
        self.record.last = update
        self.ready.set()

    async def _run(self) -> None:
        while not self.closing:
            await self.ready.wait()
            self.ready.clear()
            if self.latest is not None and not self.closing:
                await self.runtime._progress(self.record, self.latest)

    async def close(self) -> None:
        """Stop after the update being sent (a Redis command is never cancelled half-way: that can leave its
        pooled connection out of step)."""
        self.closing = True
        self.ready.set()
        done, _ = await asyncio.wait([self.task], timeout=REDIS_CALL_SECONDS)
        if not done:  # stuck on Redis: let it go (never wait on its clean-up)
            self.task.cancel()


async def _bounded(call: Awaitable[T], seconds: float) -> T:
    """``await call`` in its own task, at most ``seconds``: a Redis call stuck on a broken connection is abandoned
    (cancelled, never awaited) instead of holding the job."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait([task], timeout=seconds)
    if not done:
        task.cancel()
        raise TimeoutError(f"no answer from Redis in {seconds:g} s")
    return task.result()


async def _patiently(operation: Callable[[], Awaitable[T]], attempts: int = 6) -> T:
    """Run a Redis operation, retrying connection errors with backoff (stale connections after a Redis restart,
    a short outage): a job must not be dropped because its first Redis command failed."""
    delay = 0.2
    for _ in range(attempts - 1):
        try:
            return await operation()
        except (RedisConnectionError, OSError) as exc:
            log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return await operation()


def worker_name(settings: JobsSettings) -> str:
    return settings.worker_name or f"{socket.gethostname()}#{os.getpid()}"


async def serve(settings: Settings | JobsSettings, *, concurrency: int | None = None) -> None:
    """Run jobs until stopped. ``settings``: the worker's settings tree (``main`` loads it once), or its ``jobs``
    section alone (the other sections are then read from the environment, once)."""
    from docket import Worker

    tree = tree_of(settings, "jobs")
    settings = tree.jobs
    name = worker_name(settings)
    async with _components(tree) as parts:
        redis = open_redis(settings)
        jobs = JobStore(redis, settings.name)
        runtime = WorkerRuntime(settings, parts, jobs, name)
        install_runtime(runtime)
        slots = concurrency or max(1, parts.servers) * settings.per_server_concurrency
        try:
            async with (
                open_docket(settings) as docket,
                Worker(
                    docket,  # type: ignore[arg-type]
                    name=name,
                    concurrency=slots,
                    redelivery_timeout=timedelta(seconds=settings.redelivery_seconds),
                    reconnection_delay=timedelta(seconds=1),
                    minimum_check_interval=timedelta(milliseconds=50),
                    scheduling_resolution=timedelta(milliseconds=50),
                ) as worker,
            ):
                loop = asyncio.get_running_loop()
                task = asyncio.create_task(worker.run_forever(), name="comfy-quality worker")

                def stop(signame: str) -> None:
                    log.info("%s: stopping (running jobs are left to other workers)", signame)
                    if runtime.stopping:  # a second signal: stop now
                        os._exit(1)
                    runtime.stopping = True
                    task.cancel()
                    loop.call_later(STOP_GRACE_SECONDS, _hard_exit)

                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop, sig.name)
                log.info(
                    "worker %s ready: %d ComfyUI server(s), %d job(s) at once, queue %s (%s)",
                    name, parts.servers, slots, settings.name, settings.display_url(),
                )  # fmt: skip
                with suppress(asyncio.CancelledError):
                    await task
        finally:
            install_runtime(None)
            await redis.aclose()


def _hard_exit() -> None:
    log.error("the worker did not stop within %g s; exiting (its jobs are redelivered)", STOP_GRACE_SECONDS)
    logging.shutdown()
    os._exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-quality-worker",
        description="Run queued comfy-quality generation jobs and re-scoring chunks on this machine's ComfyUI "
        "servers (COMFY_QUALITY_JOBS_URL: the Redis queue; COMFY_QUALITY_COMFYUI_URLS: the servers).",
    )
    parser.add_argument("--concurrency", type=int, default=None, help="jobs at once (default: servers × "
                        "COMFY_QUALITY_JOBS_PER_SERVER_CONCURRENCY)")  # fmt: skip
    parser.add_argument("--name", default=None, help="worker name in job records (default: host#pid)")
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="default: COMFY_QUALITY_JOBS_LOG_LEVEL or INFO")  # fmt: skip
    return parser


ERRORS = CliErrors(
    ErrorTable("comfy-quality-worker", [(SettingsError, 2)]), default=1, prefix="comfy-quality-worker: "
)
"""Invalid settings or options → 2; any other library error → 1; anything else is a bug (70)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings_error: ValueError | None = None
    tree = Settings(jobs={"worker_name": args.name} if args.name else {})
    try:
        settings: JobsSettings | None = tree.jobs
    except ValueError as exc:  # pydantic's ValidationError, or a value the settings source could not parse
        settings, settings_error = None, exc
    level = args.log_level or (settings.log_level if settings is not None else "INFO")
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")  # fmt: skip
    for noisy in ("docket", "quality", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    from comfy_quality.settings import report_unknown_variables

    report_unknown_variables(tree)
    try:
        if settings is None:
            raise JobQueueConfigError(f"invalid settings:\n{settings_error}")
        if not settings.enabled:
            raise JobQueueConfigError("COMFY_QUALITY_JOBS_URL is not set: set it to the Redis URL (redis://host:6379/0)")
        if args.concurrency is not None and args.concurrency < 1:
            raise JobQueueConfigError(f"--concurrency {args.concurrency}: give at least 1")
        asyncio.run(serve(tree, concurrency=args.concurrency))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return ERRORS.answer(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
