"""The async ComfyUI client against the fake server, over real HTTP and websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from refinement.comfyui import (
    ComfyUIClient,
    ComfyUIExecutionError,
    ComfyUIInterruptedError,
    ComfyUIMissingModelsError,
    ComfyUIMissingNodesError,
    ComfyUITimeoutError,
    ComfyUIUnreachableError,
    ComfyUIValidationError,
    ProgressEvent,
)
from refinement.workflows import describe, load_workflow
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import free_port, shared_dir, tiny_workflow


@pytest.fixture
async def fake() -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeComfyUI) -> AsyncIterator[ComfyUIClient]:
    async with ComfyUIClient(
        fake.url, timeout=30, poll_interval=0.05, silence_check_interval=2.0, reconnect_timeout=5.0
    ) as c:
        yield c


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def _sampler_id(workflow: dict) -> str:
    return next(s.node_id for s in describe(workflow).samplers if s.primary)


async def test_run_returns_the_image_and_follows_the_protocol(
    fake: FakeComfyUI, client: ComfyUIClient
) -> None:
    events: list[ProgressEvent] = []
    wf = tiny_workflow(steps=5, size=64)
    result = await client.run(wf, on_progress=events.append)

    assert len(result.images) == 1 and result.images == result.saved_images
    assert _png_size(result.images[0].data) == (64, 64)
    assert result.images[0].type == "output" and result.images[0].content_type == "image/png"
    assert not result.cached_nodes and set(result.executed_nodes) == set(wf)
    # The socket was registered (clientId) before the prompt was posted with that client_id.
    posted = fake.prompts_posted()
    assert len(posted) == 1 and posted[0]["client_id"] == result.client_id
    assert posted[0]["prompt_id"] == result.prompt_id
    ws_connect = next(e for e in fake.ws_events if e.client_id == result.client_id and e.event == "connect")
    post = next(r for r in fake.requests if r.method == "POST" and r.path == "/prompt")
    assert ws_connect.time < post.time
    # Progress: queued first, the sampler's 5 steps in order, done last.
    stages = [e.stage for e in events]
    assert stages[0] == "queued" and stages[-1] == "done"
    steps = [(e.value, e.max) for e in events if e.stage == "sampling"]
    assert steps == [(k, 5) for k in range(1, 6)]
    assert {e.node_type for e in events if e.stage == "sampling"} == {"KSampler"}
    assert result.timings.total_s >= result.timings.execution_s > 0


async def test_identical_resubmission_is_served_from_cache(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    wf = tiny_workflow(seed=11)
    first = await client.run(wf)
    second = await client.run(wf)
    assert second.fully_cached and set(second.cached_nodes) == set(wf)
    assert second.images[0].cached and not first.images[0].cached
    assert second.images[0].filename == first.images[0].filename
    assert second.images[0].data == first.images[0].data
    third = await client.run(tiny_workflow(seed=12))
    assert third.images[0].filename != first.images[0].filename
    assert third.images[0].data != first.images[0].data


async def test_batch_of_two_gives_two_different_images(client: ComfyUIClient) -> None:
    result = await client.run(tiny_workflow(batch=2, size=96))
    assert len(result.images) == 2
    assert [_png_size(i.data) for i in result.images] == [(96, 96), (96, 96)]
    assert result.images[0].data != result.images[1].data
    assert result.images[0].node_id == result.images[1].node_id


async def test_every_output_image_is_downloaded_temp_previews_too(client: ComfyUIClient) -> None:
    wf = tiny_workflow()
    decode = next(n for n, node in wf.items() if node["class_type"] == "VAEDecode")
    wf["99"] = {"class_type": "PreviewImage", "inputs": {"images": [decode, 0]}}
    result = await client.run(wf)
    assert sorted(i.type for i in result.images) == ["output", "temp"]
    assert len(result.saved_images) == 1


async def test_async_progress_callback_and_failing_callback(client: ComfyUIClient) -> None:
    seen: list[str] = []

    async def record(event: ProgressEvent) -> None:
        seen.append(event.stage)
        raise RuntimeError("a broken progress reporter must not break the run")

    result = await client.run(tiny_workflow(steps=3), on_progress=record)
    assert result.images and "sampling" in seen and seen[-1] == "done"


async def test_validation_error_is_rendered_per_node_and_input(
    fake: FakeComfyUI, client: ComfyUIClient
) -> None:
    wf = tiny_workflow()
    sampler = _sampler_id(wf)
    wf[sampler]["inputs"]["steps"] = 0
    with pytest.raises(ComfyUIValidationError) as info:
        await client.run(wf)
    err = info.value
    assert f"node {sampler} (KSampler) input 'steps': Value 0 smaller than min of 1" in str(err)
    assert err.error_type == "prompt_outputs_failed_validation"
    assert err.node_errors[sampler]["errors"][0]["type"] == "value_smaller_than_min"
    assert not fake.executions  # nothing was queued


async def test_missing_checkpoint_and_unknown_class_are_validation_errors(client: ComfyUIClient) -> None:
    wf = tiny_workflow()
    loader = next(n for n, node in wf.items() if node["class_type"] == "CheckpointLoaderSimple")
    wf[loader]["inputs"]["ckpt_name"] = "nope.safetensors"
    with pytest.raises(ComfyUIValidationError) as info:
        await client.run(wf)
    assert (
        f"node {loader} (CheckpointLoaderSimple) input 'ckpt_name': Value not in list: 'nope.safetensors'"
        in str(info.value)
    )
    wf = tiny_workflow()
    wf["77"] = {"class_type": "NoSuchNode", "inputs": {}}
    with pytest.raises(ComfyUIValidationError, match="node NoSuchNode does not exist"):
        await client.run(wf)


async def test_execution_error_names_node_and_exception(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(execution_error=1, execution_error_step=2, execution_error_message="out of memory (test)")
    wf = tiny_workflow(steps=4)
    with pytest.raises(ComfyUIExecutionError) as info:
        await client.run(wf)
    err = info.value
    assert err.node_id == _sampler_id(wf) and err.node_type == "KSampler"
    assert err.exception_type == "torch.OutOfMemoryError" and "out of memory (test)" in str(err)
    assert err.traceback and all(isinstance(line, str) for line in err.traceback)
    assert (await client.run(wf)).images  # the server is fine afterwards


async def test_cancelling_the_awaiting_task_interrupts_the_running_job(
    fake: FakeComfyUI, client: ComfyUIClient
) -> None:
    fake.misbehave(step_delay=0.05)
    sampling = asyncio.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.stage == "sampling":
            sampling.set()

    task = asyncio.create_task(client.run(tiny_workflow(steps=400), on_progress=on_progress))
    await asyncio.wait_for(sampling.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await fake.wait_for(
        lambda: next((e for e in fake.executions if e.status == "interrupted"), None)
    )
    interrupts = [r for r in fake.requests if r.path == "/interrupt"]
    assert interrupts and interrupts[-1].json == {"prompt_id": record.prompt_id}
    assert fake.engine.running is None


async def test_cancelling_a_queued_job_removes_it_from_the_queue(
    fake: FakeComfyUI, client: ComfyUIClient
) -> None:
    fake.misbehave(step_delay=0.05)
    async with ComfyUIClient(fake.url) as other:
        blocker = asyncio.create_task(other.run(tiny_workflow(steps=400, seed=99)))
        await fake.wait_for(lambda: fake.engine.running is not None)
        queued = asyncio.Event()
        task = asyncio.create_task(
            client.run(
                tiny_workflow(seed=5), on_progress=lambda e: queued.set() if e.stage == "queued" else None
            )
        )
        await asyncio.wait_for(queued.wait(), 10)
        mine = fake.engine.heap[0].prompt_id
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not fake.engine.heap
        assert any(r.path == "/queue" and r.json == {"delete": [mine]} for r in fake.requests)
        blocker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocker
    assert mine not in {e.prompt_id for e in fake.executions}


async def test_queued_events_report_the_position(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(step_delay=0.02)
    async with ComfyUIClient(fake.url) as other:
        blocker = asyncio.create_task(other.run(tiny_workflow(steps=40, seed=98)))
        await fake.wait_for(lambda: fake.engine.running is not None)
        events: list[ProgressEvent] = []
        result = await client.run(tiny_workflow(seed=6), on_progress=events.append)
        await blocker
    queued = [e for e in events if e.stage == "queued"]
    assert queued and queued[0].queue_position == 1 and queued[0].queue_remaining == 2
    assert result.timings.queued_s > 0


async def test_websocket_drop_falls_back_to_history(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(drop_websocket=1, drop_websocket_step=2, step_delay=0.01)
    result = await client.run(tiny_workflow(steps=6))
    assert result.history_fallback and result.ws_reconnects >= 1
    assert len(result.images) == 1 and _png_size(result.images[0].data) == (64, 64)
    assert fake.executions[-1].status == "success"
    client_ids = {e.client_id for e in fake.ws_events if e.event == "connect"}
    assert len(client_ids) >= 2  # the reconnect used a fresh clientId


async def test_hang_times_out_and_stops_the_job(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(hang=1, hang_step=2)
    with pytest.raises(ComfyUITimeoutError) as info:
        await client.run(tiny_workflow(steps=6), timeout=1.0)
    assert info.value.stage == "sampling" and info.value.prompt_id
    record = await fake.wait_for(
        lambda: next((e for e in fake.executions if e.status == "interrupted"), None)
    )
    assert record.prompt_id == info.value.prompt_id


async def test_server_down_is_unreachable() -> None:
    async with ComfyUIClient(f"http://127.0.0.1:{free_port()}", connect_timeout=2) as c:
        with pytest.raises(ComfyUIUnreachableError, match="Is the server running"):
            await c.run(tiny_workflow())
        with pytest.raises(ComfyUIUnreachableError):
            await c.system_stats()


async def test_restart_mid_run_resubmits_the_lost_prompt(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(step_delay=0.02)
    sampling = asyncio.Event()
    task = asyncio.create_task(
        client.run(
            tiny_workflow(steps=30), on_progress=lambda e: sampling.set() if e.stage == "sampling" else None
        )
    )
    await asyncio.wait_for(sampling.wait(), 10)
    await fake.restart(down_for=0.3)
    result = await asyncio.wait_for(task, 30)
    assert result.resubmissions == 1 and result.images
    assert fake.restarts == 1 and fake.executions[-1].status == "success"


async def test_server_gone_for_good_mid_run_is_unreachable(fake: FakeComfyUI) -> None:
    fake.misbehave(step_delay=0.02)
    sampling = asyncio.Event()
    async with ComfyUIClient(fake.url, poll_interval=0.05, reconnect_timeout=0.5, connect_timeout=0.5) as c:
        task = asyncio.create_task(
            c.run(
                tiny_workflow(steps=50),
                on_progress=lambda e: sampling.set() if e.stage == "sampling" else None,
            )
        )
        await asyncio.wait_for(sampling.wait(), 10)
        await fake.stop()
        with pytest.raises(ComfyUIUnreachableError, match="could not reconnect"):
            await asyncio.wait_for(task, 10)


async def test_interrupt_by_someone_else_raises_interrupted(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    fake.misbehave(step_delay=0.05)
    sampling = asyncio.Event()
    task = asyncio.create_task(
        client.run(
            tiny_workflow(steps=200), on_progress=lambda e: sampling.set() if e.stage == "sampling" else None
        )
    )
    await asyncio.wait_for(sampling.wait(), 10)
    async with ComfyUIClient(fake.url) as other:
        await other.interrupt()
    with pytest.raises(ComfyUIInterruptedError) as info:
        await task
    assert info.value.node_type == "KSampler"


async def test_preflight_reports_missing_nodes_and_models(client: ComfyUIClient) -> None:
    wan = load_workflow(shared_dir() / "workflows" / "wan22-t2v.json")
    with pytest.raises(ComfyUIMissingNodesError) as nodes_err:
        await client.preflight(wan)
    assert set(nodes_err.value.missing) == {"EmptyLatentVideo", "VHS_VideoCombine"}
    assert "Install the custom node pack" in str(nodes_err.value)

    wf = tiny_workflow()
    loader = next(n for n, node in wf.items() if node["class_type"] == "CheckpointLoaderSimple")
    wf[loader]["inputs"]["ckpt_name"] = "dreamshaper_8.safetensors"
    with pytest.raises(ComfyUIMissingModelsError) as models_err:
        await client.preflight(wf)
    (missing,) = models_err.value.missing
    assert (missing.node_id, missing.input_name, missing.value) == (
        loader,
        "ckpt_name",
        "dreamshaper_8.safetensors",
    )
    assert "v1-5-pruned-emaonly-fp16.safetensors" in missing.available
    await client.preflight(tiny_workflow())  # a good workflow passes


async def test_client_works_under_the_api_prefix(fake: FakeComfyUI) -> None:
    async with ComfyUIClient(fake.url + "/api/") as c:
        result = await c.run(tiny_workflow())
        assert result.images and (await c.queue()).load == 0
    paths = {r.path for r in fake.requests}
    assert paths and all(p.startswith("/api/") for p in paths)
    assert "/api/ws" in paths and "/api/prompt" in paths and "/api/view" in paths


async def test_upload_image_then_img2img(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    uploaded = await client.upload_image(buf.getvalue(), "source.png")
    assert uploaded.name == "source.png" and uploaded.type == "input"
    again = await client.upload_image(buf.getvalue(), "source.png")
    assert again.name == "source.png"  # same bytes: deduplicated
    wf = load_workflow(shared_dir() / "workflows" / "sd15-img2img.json")
    loader = next(n for n, node in wf.items() if node["class_type"] == "LoadImage")
    wf[loader]["inputs"]["image"] = uploaded.load_image_value
    result = await client.run(wf)
    assert _png_size(result.images[0].data) == (64, 64)


async def test_http_api_methods(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    stats = await client.system_stats()
    assert stats["system"]["comfyui_version"] == "0.3.64"
    info = await client.object_info("KSampler")
    assert "seed" in info["KSampler"]["input"]["required"]
    assert await client.object_info("NoSuchNode") == {}
    result = await client.run(tiny_workflow())
    history = await client.history(result.prompt_id)
    assert history[result.prompt_id]["status"]["status_str"] == "success"
    assert list(await client.history(max_items=1)) == [result.prompt_id]
    assert await client.queue_remaining() == 0
    submitted = await client.submit(tiny_workflow(seed=3), extra_data={"extra_pnginfo": {"note": "hi"}})
    await fake.wait_for(lambda: submitted.prompt_id in fake.engine.history)
    entry = (await client.history(submitted.prompt_id))[submitted.prompt_id]
    image = entry["outputs"][next(iter(entry["outputs"]))]["images"][0]
    data, content_type = await client.view(image["filename"], image["subfolder"], image["type"])
    with Image.open(io.BytesIO(data)) as img:
        assert json.loads(img.info["note"]) == "hi" and "prompt" in img.info
    assert content_type == "image/png"
