"""The fake server as a separate process (``python -m tests.fakes.comfyui_server``), steered over HTTP: the
mode end-to-end tests of CLIs use."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import pytest

from refinement.comfyui import ComfyUIClient, ComfyUIExecutionError, ComfyUIValidationError
from tests.fakes.comfyui_testing import REPO, get_json, post_json, tiny_workflow


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.comfyui_server", "--port", "0",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("fake ComfyUI listening on http://127.0.0.1:"), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0  # SIGTERM is a clean shutdown


async def test_subprocess_server_runs_prompts_and_obeys_the_control_endpoints(server_url: str) -> None:
    async with ComfyUIClient(server_url, poll_interval=0.05, reconnect_timeout=10) as client:
        result = await client.run(tiny_workflow())
        assert result.images and result.images[0].data.startswith(b"\x89PNG")

        status, state, _ = await post_json(server_url, "/_fake/misbehave", {"execution_error": 1})
        assert status == 200 and state["misbehaviour"]["execution_error"] == 1
        with pytest.raises(ComfyUIExecutionError):
            await client.run(tiny_workflow(seed=2))
        status, state, _ = await post_json(server_url, "/_fake/misbehave", {"validation_error": 1})
        with pytest.raises(ComfyUIValidationError, match="sampler_name"):
            await client.run(tiny_workflow(seed=3))
        assert (await post_json(server_url, "/_fake/misbehave", {"no_such_switch": 1}))[0] == 400

        _, log, _ = await get_json(server_url, "/_fake/requests")
        posted = [r for r in log["requests"] if r["method"] == "POST" and r["path"] == "/prompt"]
        assert len(posted) == 3 and all("client_id" in r["json"] for r in posted)
        assert {e["event"] for e in log["ws_events"]} >= {"connect", "message", "close"}

        # a restart mid-run: the prompt is lost with the server's memory, so the client submits it again
        await post_json(server_url, "/_fake/misbehave", {"step_delay": 0.02})
        sampling = asyncio.Event()
        task = asyncio.create_task(
            client.run(
                tiny_workflow(seed=4, steps=30),
                on_progress=lambda e: sampling.set() if e.stage == "sampling" else None,
            )
        )
        await asyncio.wait_for(sampling.wait(), 10)
        status, body, _ = await post_json(server_url, "/_fake/restart", {"down_s": 0.3})
        assert status == 200 and body["restarting"]
        result = await asyncio.wait_for(task, 30)
        assert result.images and result.resubmissions == 1
        _, state, _ = await get_json(server_url, "/_fake/state")
        assert state["restarts"] == 1 and state["history"] == [result.prompt_id]
