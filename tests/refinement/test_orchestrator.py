"""The orchestrator end to end: fake ComfyUI over real HTTP + websocket, the real (offline) scorer, a local store
and the SQLite index."""

import asyncio
from pathlib import Path

import pytest

from quality.models import LOAD_COUNTS
from refinement.api import GenerationRequest, ProgressUpdate
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from storage import Index, LocalStore
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import free_port


def request(**kw) -> GenerationRequest:
    defaults = {"prompt": "a red fox in the snow", "width": 256, "height": 256, "steps": 8, "seed": 11,
                "quality_threshold": 10.0, "max_attempts": 3}  # fmt: skip
    return GenerationRequest(**(defaults | kw))


@pytest.fixture
async def setup(tmp_path, offline_scorer):
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        store = LocalStore(tmp_path / "store")
        index = Index(tmp_path / "index.sqlite3")
        settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
        orch = Orchestrator(offline_scorer, pool, store, index, settings)
        try:
            yield orch, comfy, store, index
        finally:
            await pool.close()


def samplers(prompt_body):
    return [n for n in prompt_body["prompt"].values() if n["class_type"] == "KSampler"]


async def test_progressive_run_records_every_attempt_and_keeps_the_best(setup):
    orch, comfy, store, index = setup
    result = await orch.generate(request(retry_strategy="progressive"))
    assert result.status == "best_effort" and result.attempts_used == 3
    steps = [a.parameters["steps"] for a in result.attempts]
    assert steps == [8, 13, 21]  # the 30→50→80 ladder scaled to 8 first steps
    sent = [samplers(p)[0]["inputs"] for p in comfy.prompts_posted()]
    assert [s["steps"] for s in sent] == steps and {s["seed"] for s in sent} == {11}
    scores = [a.composite_score for a in result.attempts]
    assert result.composite_score == max(scores) and result.best_attempt == scores.index(max(scores)) + 1
    assert all(a.rejected_reason and "threshold 10.00" in a.rejected_reason
               for a in result.attempts if a.attempt != result.best_attempt)  # fmt: skip
    md = await store.get_metadata(result.generation_id)
    assert md.refinement.status == "best_effort" and len(md.refinement.attempts) == 3
    assert md.parameters.steps == steps[result.best_attempt - 1]
    assert md.quality.composite_score == result.composite_score
    assert md.refinement.previous_scores == scores[: result.best_attempt - 1]
    assert md.workflow.name == "sd15" and len(md.workflow.sha256) == 64
    for a in md.refinement.attempts:  # every attempt's image is stored
        assert (await store.get_image(a.image_key))[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(result.image_url.removeprefix("file://")).is_file()
    assert index.get(result.generation_id) is not None


async def test_threshold_reached_stops_early_with_success(setup):
    orch, comfy, _, _ = setup
    result = await orch.generate(request(quality_threshold=0.0))
    assert result.status == "success" and result.attempts_used == 1
    assert result.attempts[0].accepted and len(comfy.prompts_posted()) == 1


async def test_random_seed_is_recorded_as_actually_sent(setup):
    orch, comfy, _, _ = setup
    result = await orch.generate(request(seed=None, max_attempts=2, retry_strategy="seed_search"))
    sent = [samplers(p)[0]["inputs"]["seed"] for p in comfy.prompts_posted()]
    assert [a.parameters["seed"] for a in result.attempts] == sent and sent[0] != sent[1]


async def test_a_failed_attempt_is_recorded_and_the_next_one_runs(setup):
    orch, comfy, _store, _ = setup
    comfy.misbehave(execution_error=1, execution_error_step=2)
    result = await orch.generate(request(max_attempts=2, retry_strategy="adaptive"))
    first, second = result.attempts
    assert "OutOfMemoryError" in first.error and first.composite_score is None
    assert second.composite_score is not None and second.parameters["seed"] != first.parameters["seed"]
    assert result.best_attempt == 2 and result.status == "best_effort"


async def test_validation_errors_end_the_run_as_failed_with_the_reason(setup):
    orch, comfy, store, _ = setup
    comfy.misbehave(validation_error=1)
    result = await orch.generate(request())
    assert result.status == "failed" and result.image_url is None
    assert "ComfyUI refused the workflow" in result.error and len(comfy.prompts_posted()) == 1
    assert result.attempts_used == 0 and result.metadata_key is None
    assert [md async for md in store.list_metadata()] == []  # nothing was made: nothing is stored


async def test_no_comfyui_listening_reports_the_failure_and_stores_nothing(tmp_path, offline_scorer):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    pool = ComfyUIPool([url], reconnect_timeout=0.5)
    store, index = LocalStore(tmp_path / "store"), Index(tmp_path / "index.sqlite3")
    orch = Orchestrator(offline_scorer, pool, store, index, RefinementSettings(comfyui_urls=[url]))
    updates: list[ProgressUpdate] = []
    try:
        result = await orch.generate(request(), on_progress=updates.append)
    finally:
        await pool.close()
    assert result.status == "failed" and result.error and "ComfyUI is not available" in result.error
    assert result.attempts_used == 0 and result.attempts == [] and result.image_url is None
    assert result.metadata_key is None and result.storage_status is None
    assert [md async for md in store.list_metadata()] == [] and index.count() == 0
    assert updates and updates[-1].stage == "done" and updates[-1].progress == 1.0


async def test_missing_model_file_is_caught_before_submitting(tmp_path, offline_scorer):
    async with FakeComfyUI(models={"checkpoints": ["something-else.safetensors"]}) as comfy:
        pool = ComfyUIPool([comfy.url])
        orch = Orchestrator(offline_scorer, pool, LocalStore(tmp_path / "s"), None,
                            RefinementSettings(comfyui_urls=[comfy.url]))  # fmt: skip
        result = await orch.generate(request())
        await pool.close()
    assert result.status == "failed" and "v1-5-pruned-emaonly" in result.error
    assert comfy.prompts_posted() == []


async def test_a_parameter_with_no_place_in_the_workflow_fails_clearly(setup):
    orch, comfy, _, _ = setup
    result = await orch.generate(request(guidance=3.5))
    assert result.status == "failed" and "FluxGuidance" in result.error and comfy.prompts_posted() == []
    bad = await orch.generate(request(workflow='{"1": {"class_type": "SaveImage", "inputs": {}}}'))
    assert bad.status == "failed" and bad.error


async def test_best_of_n_scores_every_image_of_the_batch(setup):
    orch, comfy, store, _ = setup
    result = await orch.generate(request(retry_strategy="best_of_n", best_of_n=3, max_attempts=1))
    latent = next(n for n in comfy.prompts_posted()[0]["prompt"].values() if n["class_type"] == "EmptyLatentImage")
    assert latent["inputs"]["batch_size"] == 3
    md = await store.get_metadata(result.generation_id)
    scores = md.refinement.attempts[0].batch_scores
    assert len(scores) == 3 and None not in scores and result.composite_score == max(s for s in scores if s)
    assert md.parameters.batch_index == md.refinement.attempts[0].parameters.batch_index == scores.index(max(scores))


class _UnreadableSecondImage:
    """The offline scorer, except that image 1 of every batch cannot be scored."""

    def __init__(self, scorer):
        self.scorer = scorer

    def score(self, image, prompt=None, *, source_name=None):
        if source_name and source_name.endswith("image 1"):
            raise ValueError("cannot decode the image")
        return self.scorer.score(image, prompt, source_name=source_name)


async def test_batch_scores_keep_their_place_when_an_image_cannot_be_scored(tmp_path, offline_scorer):
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        store = LocalStore(tmp_path / "s")
        orch = Orchestrator(_UnreadableSecondImage(offline_scorer), pool, store, None,
                            RefinementSettings(comfyui_urls=[comfy.url]))  # fmt: skip
        result = await orch.generate(request(retry_strategy="best_of_n", best_of_n=3, max_attempts=1))
        await pool.close()
    record = (await store.get_metadata(result.generation_id)).refinement.attempts[0]
    assert len(record.batch_scores) == 3 and record.batch_scores[1] is None
    assert None not in (record.batch_scores[0], record.batch_scores[2]) and record.error is None
    kept = record.parameters.batch_index
    assert kept in (0, 2) and record.batch_scores[kept] == max(s for s in record.batch_scores if s is not None)
    assert result.composite_score == record.batch_scores[kept]


async def test_a_hanging_job_times_out_and_the_next_attempt_runs(tmp_path, offline_scorer):
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=1.5)
        orch = Orchestrator(offline_scorer, pool, LocalStore(tmp_path / "s"), None, settings)
        comfy.misbehave(hang=1, hang_step=2)
        result = await orch.generate(request(max_attempts=2))
        await pool.close()
    assert "Timeout" in result.attempts[0].error and result.attempts[1].composite_score is not None
    assert any(e.status == "interrupted" for e in comfy.executions)


async def test_progress_is_monotone_and_reports_sampler_steps(setup):
    orch, _, _, _ = setup
    updates: list[ProgressUpdate] = []
    await orch.generate(request(max_attempts=2), on_progress=updates.append)
    values = [u.progress for u in updates]
    assert values == sorted(values) and values[-1] == 1.0 and updates[-1].stage == "done"
    sampling = [u for u in updates if u.stage == "sampling"]
    assert sampling and sampling[-1].step == sampling[-1].steps
    assert {u.attempt for u in sampling} == {1, 2}
    assert any(u.stage == "scoring" for u in updates)


async def test_cancelling_stops_the_comfyui_job_and_keeps_what_was_made(setup):
    orch, comfy, store, _index = setup
    comfy.misbehave(step_delay=0.2)
    second_sampling = asyncio.Event()

    def on_progress(update: ProgressUpdate) -> None:
        if update.attempt == 2 and update.stage == "sampling":
            second_sampling.set()

    task = asyncio.create_task(orch.generate(request(steps=20, max_attempts=3), on_progress=on_progress))
    async with asyncio.timeout(120):
        await second_sampling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await comfy.wait_for(lambda: len(comfy.executions) == 2, timeout=30)
    assert [e.status for e in comfy.executions] == ["success", "interrupted"]
    stored = [md async for md in store.list_metadata()]
    assert len(stored) == 1 and [a.attempt for a in stored[0].refinement.attempts] == [1]
    assert (await store.get_image(stored[0].refinement.attempts[0].image_key))[:4] == b"\x89PNG"


async def test_cancelling_before_anything_was_made_stores_nothing(setup):
    orch, comfy, store, _index = setup
    comfy.misbehave(step_delay=0.2)
    task = asyncio.create_task(orch.generate(request(steps=40, max_attempts=2)))
    await comfy.wait_for(lambda: comfy.engine.running is not None, timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await comfy.wait_for(lambda: comfy.executions, timeout=30)
    assert [e.status for e in comfy.executions] == ["interrupted"]
    assert [md async for md in store.list_metadata()] == []


async def test_models_are_never_reloaded_between_attempts(setup):
    orch, _, _, _ = setup
    before = dict(LOAD_COUNTS)
    await orch.generate(request(max_attempts=3))
    assert dict(LOAD_COUNTS) == before


async def test_comfyui_dying_during_attempt_2_is_said_at_the_top_level(tmp_path, offline_scorer):
    """The job keeps attempt 1's image (best_effort) and says the server became unreachable, not error: null."""
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url], reconnect_timeout=1.0, backoff_initial=30.0)
        settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
        orch = Orchestrator(offline_scorer, pool, LocalStore(tmp_path / "s"), None, settings)
        comfy.misbehave(step_delay=0.05)
        stopping: list[asyncio.Task] = []

        def on_progress(update: ProgressUpdate) -> None:
            if update.attempt == 2 and update.stage == "sampling" and not stopping:
                stopping.append(asyncio.create_task(comfy.stop()))  # ComfyUI dies mid-render

        try:
            result = await orch.generate(request(max_attempts=3), on_progress=on_progress)
        finally:
            await pool.close()
    assert stopping and result.status == "best_effort" and result.best_attempt == 1
    assert result.error and "ComfyUI server became unreachable during attempt 2" in result.error
    assert "best image (attempt 1)" in result.error
