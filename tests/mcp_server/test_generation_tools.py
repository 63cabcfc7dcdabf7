"""generate_quality, generation_status, cancel_generation and list_generations through the in-memory SDK client,
against a scripted generator that stores real images in a folder-backed object store."""

from __future__ import annotations

import base64

import anyio
import pytest
from mcp.types import ImageContent, ResourceLink

from mcp_server.models import GenerationList, GenerationOutput
from tests.mcp_server.conftest import ProgressLog, components_for, connect, make_settings, text
from tests.mcp_server.fakes import ListIndex, ScriptedGenerator, summary
from tests.mcp_server.polling import until_final

WAIT = 60.0  # bound on test waits for events (never reached when things work)


def output(result) -> GenerationOutput:
    assert not result.is_error, result.content
    return GenerationOutput.model_validate(result.structured_content)


async def test_success_returns_url_grade_scores_attempts_link_and_a_small_preview(offline_scorer, settings, store):
    gen = ScriptedGenerator(store, scores=(5.0, 7.5))
    log = ProgressLog()
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        result = await client.call_tool(
            "generate_quality", {"prompt": "a red fox", "max_attempts": 3, "seed": 7}, progress_callback=log
        )
        result = await until_final(client, result, log=log)
    out = output(result)
    assert out.status == "success" and out.done and out.attempts_used == 2 and out.best_attempt == 2
    assert out.grade == "B" and out.composite_score == 7.5
    assert [a.composite_score for a in out.attempts] == [5.0, 7.5]
    assert out.attempts[0].parameters["seed"] == 7 and out.attempts[0].rejected_reason
    assert out.image_url == out.attempts[1].image_url and str(out.image_url).startswith("s3://test-bucket/")
    assert "reached the threshold 7.0" in out.message
    request = gen.calls[0]
    assert request.source == "mcp" and request.seed == 7 and request.retry_strategy == "progressive"
    links = [c for c in result.content if isinstance(c, ResourceLink)]
    previews = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(links) == 1 and str(links[0].uri) == out.image_url and links[0].mime_type == "image/jpeg"
    assert len(previews) == 1 and out.preview_attached
    assert len(previews[0].data) <= 100_000 and base64.b64decode(previews[0].data)[:3] == b"\xff\xd8\xff"
    full_image = (store.root / out.image_url.removeprefix("s3://test-bucket/")).read_bytes()
    assert len(base64.b64decode(previews[0].data)) < len(full_image)  # never the full image inline
    messages = log.messages
    assert any(m.startswith("attempt 1/3: sampling (step 1/4)") for m in messages)
    assert any(m.startswith("attempt 2/3: scoring") for m in messages)
    values = [p for p, _, _ in log.events]
    assert values == sorted(values) and len(set(values)) == len(values) and all(t == 100 for _, t, _ in log.events)


async def test_best_effort_without_scores_or_preview(offline_scorer, settings, store):
    gen = ScriptedGenerator(store, scores=(4.0, 5.5, 6.0))
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        result = await client.call_tool(
            "generate_quality",
            {"prompt": "a red fox", "quality_threshold": 9, "return_scores": False, "include_preview": False},
        )
        result = await until_final(client, result, return_scores=False, include_preview=False)
    out = output(result)
    assert out.status == "best_effort" and out.attempts_used == 3 and out.composite_score == 6.0
    assert out.attempts == [] and out.quality is None and not out.preview_attached
    assert "no attempt reached 9.0" in out.message
    assert not any(isinstance(c, ImageContent) for c in result.content)


async def test_a_long_job_returns_a_job_id_then_status_waits_for_the_result(offline_scorer, store):
    hold = anyio.Event()
    gen = ScriptedGenerator(store, scores=(8.2,), hold=hold)
    settings = make_settings(default_wait_seconds=0.2)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        first = output(await client.call_tool("generate_quality", {"prompt": "a red fox"}))
        assert first.status == "running" and not first.done and first.image_url is None
        assert first.progress is not None and first.progress.attempt == 1
        assert f"generation_status(job_id={first.job_id!r})" in first.message
        polled = output(await client.call_tool("generation_status", {"job_id": first.job_id, "wait_seconds": 0}))
        assert polled.status == "running" and polled.job_id == first.job_id
        listed = GenerationList.model_validate((await client.call_tool("list_generations", {})).structured_content)
        assert [a.job_id for a in listed.active] == [first.job_id] and listed.active[0].status == "running"
        hold.set()
        log = ProgressLog()
        done = output(
            await until_final(
                client,
                await client.call_tool(
                    "generation_status", {"job_id": first.job_id, "wait_seconds": WAIT}, progress_callback=log
                ),
                log=log,
            )
        )
        assert done.status == "success" and done.grade == "A" and done.image_url
        assert any("scoring" in m for m in log.messages)
        assert state.jobs.active() == []


async def test_cancel_generation_stops_the_generator(offline_scorer, store):
    hold = anyio.Event()
    gen = ScriptedGenerator(store, hold=hold)
    settings = make_settings(default_wait_seconds=0.1)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        started = output(await client.call_tool("generate_quality", {"prompt": "a red fox"}))
        cancelled = output(await client.call_tool("cancel_generation", {"job_id": started.job_id}))
        again = output(await client.call_tool("cancel_generation", {"job_id": started.job_id}))
    assert gen.cancelled.is_set() and gen.finished == 0
    assert cancelled.status == "cancelled" and cancelled.done and again.status == "cancelled"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_cancellation_of_the_call_cancels_the_generation(offline_scorer, settings, store, mode):
    hold = anyio.Event()
    gen = ScriptedGenerator(store, hold=hold)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store), mode=mode) as (
        client,
        state,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "generate_quality", {"prompt": "a red fox"})
            with anyio.fail_after(WAIT):
                await gen.started.wait()
            tg.cancel_scope.cancel()  # the client abandons the call: the SDK sends notifications/cancelled
        with anyio.fail_after(WAIT):
            await gen.cancelled.wait()
        job = next(iter(state.jobs._jobs.values()))
        with anyio.fail_after(WAIT):
            await job.done.wait()
        assert job.state == "cancelled" and gen.finished == 0
        again = await client.call_tool("list_generations", {})  # the server is still serving
        assert not again.is_error


async def test_cancelling_a_status_wait_does_not_cancel_the_job(offline_scorer, store):
    hold = anyio.Event()
    gen = ScriptedGenerator(store, scores=(8.0,), hold=hold)
    settings = make_settings(default_wait_seconds=0.1)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        job_id = output(await client.call_tool("generate_quality", {"prompt": "a fox"})).job_id
        with anyio.move_on_after(0.3):
            await client.call_tool("generation_status", {"job_id": job_id, "wait_seconds": WAIT})
        hold.set()
        done = output(await until_final(client, await client.call_tool("generation_status", {"job_id": job_id})))
    assert done.status == "success" and not gen.cancelled.is_set()


async def test_generation_queue_is_bounded_with_a_busy_error(offline_scorer, store):
    hold = anyio.Event()
    gen = ScriptedGenerator(store, hold=hold)
    settings = make_settings(default_wait_seconds=0.05, generation_concurrency=1, generation_queue=1)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        running = output(await client.call_tool("generate_quality", {"prompt": "one"}))
        queued = output(await client.call_tool("generate_quality", {"prompt": "two"}))
        busy = await client.call_tool("generate_quality", {"prompt": "three"})
        assert running.status == "running" and queued.status == "queued"
        assert "behind 1 other" in queued.message
        assert busy.is_error and "server busy" in text(busy) and "retry" in text(busy)
        hold.set()
        done = output(await until_final(client, await client.call_tool("generation_status", {"job_id": queued.job_id})))
        assert done.done and len(gen.calls) == 2
        after = await until_final(client, await client.call_tool("generate_quality", {"prompt": "four"}))
        assert output(after).done  # capacity is back once jobs finish
        assert state.jobs.gate.running == 0 and state.jobs.gate.waiting == 0


async def test_generation_errors_are_tool_errors_or_failed_jobs(offline_scorer, settings, store):
    failing = ScriptedGenerator(store, fail=RuntimeError("ComfyUI at http://u:pw@gpu:8188/x?token=abc rejected it"))
    async with connect(settings, components_for(offline_scorer, generator=failing, store=store)) as (client, _):
        failed = output(await until_final(client, await client.call_tool("generate_quality", {"prompt": "a fox"})))
        unknown = await client.call_tool("generation_status", {"job_id": "nope"})
        bad_strategy = await client.call_tool("generate_quality", {"prompt": "a fox", "retry_strategy": "magic"})
        too_many = await client.call_tool("generate_quality", {"prompt": "a fox", "max_attempts": 50})
        empty = await client.call_tool("generate_quality", {"prompt": ""})
    assert failed.status == "failed" and failed.done and "rejected it" in str(failed.error)
    assert "pw" not in str(failed.error) and "abc" not in str(failed.error)  # credentials / tokens are never echoed
    assert unknown.is_error and "no job 'nope'" in text(unknown)
    assert bad_strategy.is_error and "retry_strategy" in text(bad_strategy)
    assert too_many.is_error and "max_attempts" in text(too_many)
    assert empty.is_error and "prompt" in text(empty)


async def test_without_a_generator_generation_is_reported_as_not_configured(offline_scorer, settings):
    async with connect(settings, components_for(offline_scorer)) as (client, _):
        result = await client.call_tool("generate_quality", {"prompt": "a fox"})
        listed = GenerationList.model_validate((await client.call_tool("list_generations", {})).structured_content)
    assert result.is_error and "generation is not available" in text(result)
    assert not listed.index_available and listed.recent == [] and listed.note


async def test_list_generations_queries_the_index(offline_scorer, settings, store):
    index = ListIndex(
        [
            summary("a red fox", "B", "success", 9),
            summary("a red car", "A", "success", 1),
            summary("a blue fox", "D", "best_effort", 5),
        ]
    )
    async with connect(settings, components_for(offline_scorer, index=index, store=store)) as (client, _):
        everything = await client.call_tool("list_generations", {"limit": 10})
        foxes = await client.call_tool("list_generations", {"text": "fox", "grades": ["B", "D"], "limit": 1})
        bad = await client.call_tool("list_generations", {"grades": ["Z"]})
    all_out = GenerationList.model_validate(everything.structured_content)
    assert [g.prompt for g in all_out.recent] == ["a red car", "a blue fox", "a red fox"]  # newest first
    fox_out = GenerationList.model_validate(foxes.structured_content)
    assert [g.prompt for g in fox_out.recent] == ["a blue fox"] and index.queries[-1].grades == ["B", "D"]
    assert bad.is_error and "grades" in text(bad)


async def test_models_load_once_for_many_calls_and_connections(offline_scorer, settings, store):
    from mcp import Client

    from mcp_server.lifespan import Components, open_app_state
    from mcp_server.server import build_server
    from tests.mcp_server.conftest import Shared

    built: list[object] = []

    def factory():
        built.append(object())
        return Shared(offline_scorer)

    async with open_app_state(settings, Components(scorer_factory=factory)) as state:
        server = build_server(settings, state=state)
        for _ in range(2):
            async with Client(server) as client:
                for _ in range(2):
                    assert not (await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})).is_error
    assert len(built) == 1
