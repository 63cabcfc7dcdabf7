"""The server with its real wiring (no in-test components): the orchestrator drives the fake ComfyUI (a
subprocess) over HTTP + websocket, scores with the real scorer, stores into a local store and the SQLite index;
over stdio, SSE and streamable HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_server.models import GenerationList, GenerationOutput
from storage import Index
from tests.fakes.processes import fake_comfyui_process
from tests.mcp_server.conftest import ProgressLog
from tests.mcp_server.fakes import REPO
from tests.mcp_server.procs import http_server, server_env


def real_wiring(tmp_path: Path, comfy_url: str) -> dict[str, str]:
    return {
        "COMFY_QUALITY_MCP_COMPONENTS": "",  # the built-in wiring: orchestrator, store, index
        "COMFY_QUALITY_COMFYUI_URLS": comfy_url,
        "COMFY_QUALITY_STORAGE_BACKEND": "local",
        "PYTHONPATH": str(REPO),
    }


FINAL_WITHIN_SECONDS = 480  # overall bound; a loaded machine may need many bounded waits


async def until_final(client: Client, out: GenerationOutput, log: ProgressLog | None = None) -> GenerationOutput:
    """Poll ``generation_status`` (each call a bounded wait) until the job is final, within an overall timeout:
    the first scorer build alone can take longer than one call's wait on a busy machine."""
    with anyio.fail_after(FINAL_WITHIN_SECONDS):
        while out.status in ("queued", "running"):
            assert out.job_id, out
            call = await client.call_tool(
                "generation_status", {"job_id": out.job_id, "wait_seconds": 20}, progress_callback=log
            )
            assert not call.is_error, call.content
            out = GenerationOutput.model_validate(call.structured_content)
    return out


async def check_generation(client: Client, tmp_path: Path) -> None:
    log = ProgressLog()
    call = await client.call_tool(
        "generate_quality",
        {"prompt": "a lighthouse at dusk", "workflow": "sd15", "width": 256, "height": 256, "steps": 8, "seed": 4,
         "max_attempts": 2, "quality_threshold": 10.0},
        progress_callback=log,
    )
    assert not call.is_error, call.content
    out = await until_final(client, GenerationOutput.model_validate(call.structured_content), log)
    assert out.status == "best_effort" and out.attempts_used == 2 and out.grade in list("ABCDF")
    assert [a.parameters["steps"] for a in out.attempts] == [8, 13]  # progressive
    image = Path(urlsplit(out.image_url).path)
    assert image.is_file() and image.read_bytes()[:4] == b"\x89PNG"
    listed = await client.call_tool("list_generations", {})
    recent = GenerationList.model_validate(listed.structured_content).recent
    assert [g.generation_id for g in recent] == [out.generation_id]
    failed = await client.call_tool(
        "generate_quality", {"prompt": "x", "workflow": "sd15", "guidance": 3.0, "max_attempts": 1}
    )
    failed_out = await until_final(client, GenerationOutput.model_validate(failed.structured_content))
    assert failed_out.status == "failed" and "FluxGuidance" in (failed_out.error or "")
    assert Index(tmp_path / "index.sqlite3").get(out.generation_id) is not None
    values = [p for p, _, _ in log.events]
    assert values and values == sorted(values) and any("sampling" in m for m in log.messages)


@pytest.mark.timeout(600)
async def test_generate_quality_over_stdio_with_the_real_orchestrator(tmp_path: Path):
    with fake_comfyui_process() as comfy_url:
        env = server_env(tmp_path, **real_wiring(tmp_path, comfy_url))
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server"], env=env, cwd=str(REPO))
        with anyio.fail_after(540):
            async with Client(params) as client:
                await check_generation(client, tmp_path)


@pytest.mark.timeout(600)
async def test_generate_quality_over_streamable_http_with_the_real_orchestrator(tmp_path: Path):
    with fake_comfyui_process() as comfy_url, http_server(
        tmp_path, "--transport", "http", **real_wiring(tmp_path, comfy_url)
    ) as server:
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))
        with anyio.fail_after(540):
            async with http, Client(streamable_http_client(server.url, http_client=http)) as client:
                await check_generation(client, tmp_path)


@pytest.mark.timeout(600)
async def test_generate_quality_over_sse_with_the_real_orchestrator(tmp_path: Path):
    with fake_comfyui_process() as comfy_url, http_server(
        tmp_path, "--transport", "sse", **real_wiring(tmp_path, comfy_url)
    ) as server:
        with anyio.fail_after(540):
            async with Client(sse_client(server.url, timeout=30, sse_read_timeout=300)) as client:
                await check_generation(client, tmp_path)
