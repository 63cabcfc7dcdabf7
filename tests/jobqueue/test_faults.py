"""Fault scenarios of the distributed backend, each against real services (redis-server, fake ComfyUI servers,
worker subprocesses, MCP replicas over streamable HTTP). The worker-kill scenario runs by default
(``test_scenarios.py``); these take a minute each and are marked slow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_server.models import GenerationList, GenerationOutput
from tests.jobqueue.services import (
    RedisServer,
    fake_comfyui,
    fake_prompts,
    fake_state,
    job_record,
    mcp_client,
    poll,
    replica,
    workers,
)
from tests.jobqueue.test_scenarios import GEN, call, generation

pytestmark = pytest.mark.slow

SLOW_JOB: dict[str, Any] = {**GEN, "prompt": "a lighthouse at dusk", "max_attempts": 2, "quality_threshold": 10.0}


async def wait_done(client: Any, job_id: str, timeout: float = 180) -> GenerationOutput:
    async def done() -> GenerationOutput | None:
        out = await generation(client, "generation_status", {"job_id": job_id, "wait_seconds": 5})
        return out if out.done else None

    final = await poll(done, timeout, f"job {job_id} did not finish")
    assert isinstance(final, GenerationOutput)
    return final


def sampling(url: str, job_id: str, attempt: int = 1) -> Any:
    record = job_record(url, job_id)
    last = record.last if record else None
    return record if last and last.attempt == attempt and last.stage == "sampling" else None


async def test_a_restarted_replica_loses_no_job(tmp_path: Path, redis_server: RedisServer) -> None:
    url = redis_server.url
    with fake_comfyui(step_delay=0.5) as comfy, workers(tmp_path, url, [comfy.url], ["w1"]):
        with replica(tmp_path, url) as a_url:
            async with mcp_client(a_url) as a:
                job = await generation(a, "generate_quality", {**SLOW_JOB, "wait_seconds": 0})
        # replica A is gone (its process ended); the job goes on on the worker
        await poll(lambda: sampling(url, job.job_id), 90, "the job did not start")
        with replica(tmp_path, url) as a2_url:
            async with mcp_client(a2_url) as a2:
                listed = GenerationList.model_validate(await call(a2, "list_generations", {}))
                now = await generation(a2, "generation_status", {"job_id": job.job_id, "wait_seconds": 0})
                assert now.done or job.job_id in [j.job_id for j in listed.active]
                final = await wait_done(a2, job.job_id)
    assert final.status == "best_effort" and final.attempts_used == 2 and final.image_url
    record = job_record(url, job.job_id)
    assert record is not None and record.deliveries == 1  # it never stopped


async def test_redis_down_gives_a_clear_error_and_everything_recovers_without_a_restart(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    with (
        fake_comfyui(step_delay=0.25) as comfy,
        workers(tmp_path, url, [comfy.url], ["w1"]),
        replica(tmp_path, url) as a_url,
    ):
        async with mcp_client(a_url) as a:
            running = await generation(a, "generate_quality", {**SLOW_JOB, "wait_seconds": 0})
            await poll(lambda: sampling(url, running.job_id), 90, "the job did not start")
            redis_server.stop()
            refused = await a.call_tool("generate_quality", {**GEN, "prompt": "during the outage"})
            assert refused.is_error and "job queue unavailable" in str(refused.content)
            status = await a.call_tool("generation_status", {"job_id": running.job_id, "wait_seconds": 0})
            assert status.is_error and "job queue unavailable" in str(status.content)

            redis_server.start()  # same data: what was accepted is still there
            final = await wait_done(a, running.job_id)  # the worker wrote its result once Redis was back
            assert final.status == "best_effort" and final.attempts_used == 2
            after = await generation(a, "generate_quality", {**GEN, "prompt": "after the outage",
                                                             "max_attempts": 1, "wait_seconds": 0})  # fmt: skip
            assert (await wait_done(a, after.job_id)).status in ("success", "best_effort")
        prompts = [str(w) for w in fake_prompts(comfy.url)]
    assert not any("during the outage" in p for p in prompts)  # nothing was silently accepted


async def test_a_comfyui_server_dying_mid_job_fails_that_attempt_and_the_job_goes_on(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    with (
        fake_comfyui(step_delay=0.3) as c1,
        fake_comfyui(step_delay=0.3) as c2,
        workers(tmp_path, url, [c1.url, c2.url], ["w1"]),
        replica(tmp_path, url) as a_url,
    ):
        async with mcp_client(a_url) as a:
            job = await generation(a, "generate_quality", {**SLOW_JOB, "wait_seconds": 0})

            def busy_server() -> Any:
                for c in (c1, c2):
                    if fake_state(c.url)["running"] is not None:
                        return c
                return None

            victim = await poll(busy_server, 90, "no ComfyUI server ran the job")
            survivor = c2 if victim is c1 else c1
            victim.kill()  # type: ignore[attr-defined]
            final = await wait_done(a, job.job_id)
        assert fake_prompts(survivor.url)  # the job went on with the other server
    assert final.status == "best_effort" and final.attempts_used == 2
    assert all(att.image_url or att.error for att in final.attempts)
    record = job_record(url, job.job_id)
    assert record is not None and record.deliveries == 1


async def test_a_job_whose_workers_keep_dying_fails_after_the_last_delivery_with_the_reason(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    with (
        fake_comfyui(step_delay=0.25) as comfy,
        workers(tmp_path, url, [comfy.url], ["w1", "w2"], COMFY_QUALITY_JOBS_MAX_DELIVERIES="1") as procs,
        replica(tmp_path, url) as a_url,
    ):
        async with mcp_client(a_url) as a:
            job = await generation(a, "generate_quality", {**SLOW_JOB, "wait_seconds": 0})
            record = await poll(lambda: sampling(url, job.job_id, attempt=2), 120, "no second attempt")
            procs[record.worker].kill()  # type: ignore[attr-defined]
            final = await wait_done(a, job.job_id)
    assert final.status == "failed" and "started 1 time(s)" in (final.error or "")
    stored = list((tmp_path / "store").rglob(f"job-{job.job_id}/*"))
    assert stored  # the image rendered before the worker died is kept
