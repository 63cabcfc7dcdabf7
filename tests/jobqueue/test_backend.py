"""The Redis job backend and the job records against a real redis-server (no workers: the worker's side of the
record is driven through :class:`jobqueue.records.JobStore` as a worker does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from jobqueue.records import JobEvent, JobStore
from jobqueue.settings import JobsSettings, redact_redis_url
from mcp_server.errors import InvalidInputError, UnknownJobError
from mcp_server.jobs_redis import JobQueueUnavailableError, RedisJobBackend
from refinement.api import GenerationRequest, GenerationResult, ProgressUpdate
from tests.jobqueue.services import RedisServer, poll


def settings_for(server: RedisServer, **extra: object) -> JobsSettings:
    return JobsSettings(url=server.url, name="cqunit", **extra)  # type: ignore[arg-type]


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[RedisJobBackend]:
    async with RedisJobBackend(settings_for(redis_server), retention_seconds=3600) as b:
        yield b


async def queued_tasks(b: RedisJobBackend) -> int:
    """Tasks waiting in docket's stream (not yet delivered to any worker)."""
    docket = b._docket
    async with docket.redis() as r:
        return int(await r.xlen(docket.stream_key)) if await r.exists(docket.stream_key) else 0


async def test_submit_stores_the_job_and_queues_one_task_with_a_fixed_seed(backend: RedisJobBackend) -> None:
    job = await backend.submit_job(GenerationRequest(prompt="a fox"))
    assert job.state == "queued" and job.request.seed is not None  # a redelivery replays the same attempts
    read = await backend.job(job.id)
    assert read.request == job.request and read.last is not None and read.last.stage == "queued"
    assert [j.id for j in await backend.active_jobs()] == [job.id]
    assert await queued_tasks(backend) == 1


async def test_a_request_id_makes_a_repeated_submission_return_the_same_job(backend: RedisJobBackend) -> None:
    request = GenerationRequest(prompt="a fox", steps=12)
    first = await backend.submit_job(request, request_id="client-42")
    second = await backend.submit_job(request, request_id="client-42")
    assert second.id == first.id and second.request.seed == first.request.seed
    assert await queued_tasks(backend) == 1
    with pytest.raises(InvalidInputError, match="already used for a different generation request"):
        await backend.submit_job(GenerationRequest(prompt="a cat"), request_id="client-42")
    other = await backend.submit_job(request, request_id="client-43")
    assert other.id != first.id


async def test_cancelling_a_queued_job_ends_it_at_once_and_no_worker_will_run_it(backend: RedisJobBackend) -> None:
    job = await backend.submit_job(GenerationRequest(prompt="a fox"))
    cancelled = await backend.cancel_job(job.id, grace=0)
    assert cancelled.state == "cancelled" and cancelled.is_done and cancelled.error == "cancelled on request"
    assert await queued_tasks(backend) == 0
    # a worker that got the task anyway finds it cancelled and runs nothing
    assert (await backend.jobs.claim(job.id, "w", 3))[:2] == ("final", "cancelled")
    assert await backend.active_jobs() == []
    with pytest.raises(UnknownJobError):
        await backend.cancel_job("no-such-job")


async def test_claims_count_deliveries_and_fail_the_job_after_the_last(backend: RedisJobBackend) -> None:
    job = await backend.submit_job(GenerationRequest(prompt="a fox"))
    status, deliveries, record = await backend.jobs.claim(job.id, "w1", 2)
    assert (status, deliveries) == ("run", "1") and record is not None and record.state == "running"
    assert record.request == job.request and record.worker == "w1"
    assert (await backend.jobs.claim(job.id, "w2", 2))[:2] == ("run", "2")  # w1 died: redelivered
    assert (await backend.jobs.claim(job.id, "w3", 2))[0] == "exhausted"
    failed = await backend.job(job.id)
    assert failed.state == "failed" and "started 2 time(s)" in (failed.error or "")
    assert failed.deliveries == 3 and failed.worker == "w2"


async def test_a_running_job_is_flagged_for_its_worker_when_cancelled(backend: RedisJobBackend) -> None:
    job = await backend.submit_job(GenerationRequest(prompt="a fox"))
    await backend.jobs.claim(job.id, "w1", 3)
    record = await backend.cancel_job(job.id, grace=0.2)  # no worker answers here: still running, flagged
    assert record.state == "running" and record.cancel_requested


async def test_waiting_forwards_the_workers_progress_and_returns_on_the_final_state(
    backend: RedisJobBackend,
) -> None:
    job = await backend.submit_job(GenerationRequest(prompt="a fox", max_attempts=2))
    await backend.jobs.claim(job.id, "w1", 3)
    seen: list[ProgressUpdate] = []
    waiting = anyio.Event()

    async def forward(update: ProgressUpdate) -> None:
        seen.append(update)
        waiting.set()

    async def worker() -> None:
        await waiting.wait()  # the replica forwarded the stored progress: it is subscribed
        for step in (1, 2):
            update = ProgressUpdate(stage="sampling", attempt=1, max_attempts=2, progress=step / 10,
                                    message="sampling", step=step, steps=2)  # fmt: skip
            await backend.jobs.publish(job.id, JobEvent(type="progress", update=update))
        record = await backend.job(job.id)
        record.state = "success"
        record.result = GenerationResult(generation_id="g1", status="success", attempts_used=1)
        await backend.jobs.finish(record)  # announces the final state

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            await backend.wait_job(job.id, 25, forward)
    assert [u.step for u in seen if u.stage == "sampling"] == [1, 2]
    done = await backend.job(job.id)
    assert done.state == "success" and done.result is not None and done.result.generation_id == "g1"


async def test_finished_jobs_expire_after_the_retention(redis_server: RedisServer) -> None:
    async with RedisJobBackend(settings_for(redis_server), retention_seconds=1) as b:
        job = await b.submit_job(GenerationRequest(prompt="a fox"), request_id="r1")
        await b.jobs.claim(job.id, "w1", 3)
        record = await b.job(job.id)
        record.state, record.error = "failed", "boom"
        await b.jobs.finish(record)
        assert (await b.job(job.id)).state == "failed"

        async def gone() -> bool:
            try:
                await b.job(job.id)
            except UnknownJobError:
                return True
            return False

        await poll(gone, 30, "the finished job did not expire")
        assert await b.active_jobs() == []
        again = await b.submit_job(GenerationRequest(prompt="a fox"), request_id="r1")
        assert again.id != job.id  # the request id expired with its job


async def test_redis_down_is_a_clear_error_nothing_is_accepted_and_the_backend_recovers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with RedisJobBackend(settings_for(redis_server), retention_seconds=3600) as b:
        before = await b.submit_job(GenerationRequest(prompt="before the outage"))
        redis_server.stop()
        for call in (
            b.submit_job(GenerationRequest(prompt="during the outage")),
            b.job(before.id),
            b.active_jobs(),
            b.cancel_job(before.id),
            b.wait_job(before.id, 1),
        ):
            with pytest.raises(JobQueueUnavailableError, match="job queue unavailable: Redis at redis://127"):
                await call
        redis_server.start()  # same data folder: what was accepted before is still there

        async def answers() -> bool:
            try:
                return [j.id for j in await b.active_jobs()] == [before.id]
            except JobQueueUnavailableError:
                return False

        await poll(answers, 30, "the backend did not recover when Redis came back")
        after = await b.submit_job(GenerationRequest(prompt="after the outage"))
        assert {j.request.prompt for j in await b.active_jobs()} == {"before the outage", "after the outage"}
        assert after.id != before.id


def test_settings_refuse_other_schemes_and_urls_are_shown_without_passwords() -> None:
    with pytest.raises(ValueError, match="redis://"):
        JobsSettings(url="http://127.0.0.1:6379")  # type: ignore[arg-type]
    assert not JobsSettings(url="").enabled  # type: ignore[arg-type]
    assert redact_redis_url("redis://user:secret@cache:6380/2") == "redis://***@cache:6380/2"
    assert "secret" not in repr(JobsSettings(url="redis://:secret@h:1/0"))  # type: ignore[arg-type]


async def test_the_in_process_backend_honours_request_ids_too() -> None:
    from mcp_server.jobs import JobManager
    from mcp_server.limits import Gate
    from tests.mcp_server.fakes import DirStore, ScriptedGenerator

    gen = ScriptedGenerator(DirStore(Path("/tmp") / "cq-inproc-store"), scores=(8.0,))
    async with JobManager(gen, Gate("g", running=1, queued=4)) as jobs:
        request = GenerationRequest(prompt="a fox", max_attempts=1)
        first = await jobs.submit_job(request, request_id="x1")
        second = await jobs.submit_job(request, request_id="x1")
        assert first is second
        with pytest.raises(InvalidInputError, match="already used"):
            await jobs.submit_job(GenerationRequest(prompt="a cat"), request_id="x1")
        await jobs.wait_job(first.id, 10)
        assert (await jobs.job(first.id)).state == "success" and len(gen.calls) == 1


def test_job_store_keys_are_namespaced_by_the_queue_name() -> None:
    from redis.asyncio import Redis

    store = JobStore(Redis(), "studio-a")
    assert store.keys.job("j1") == "studio-a:cq:job:j1" and store.keys.jobs == "studio-a:cq:jobs"


def test_every_queue_setting_is_documented() -> None:
    from tests.jobqueue.services import REPO

    notes = (REPO / "docs" / "jobs.md").read_text()
    missing = [f"COMFY_QUALITY_JOBS_{n.upper()}" for n in JobsSettings.model_fields]
    assert [m for m in missing if f"`{m}`" not in notes] == []
