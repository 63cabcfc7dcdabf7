"""Bounded concurrency (busy errors), job retention, settings validation and secrets."""

from __future__ import annotations

import anyio
import pytest
from pydantic import ValidationError

from mcp_server.errors import ConfigError, ServerBusyError, UnknownJobError
from mcp_server.jobs import JobManager
from mcp_server.limits import Gate
from mcp_server.settings import McpSettings
from refinement.api import GenerationRequest
from serving import is_loopback_host
from tests.mcp_server.conftest import connect, make_settings, text
from tests.mcp_server.fakes import BlockingScorer, ScriptedGenerator


async def test_gate_admits_running_plus_queued_then_refuses():
    gate = Gate("things", running=1, queued=1)
    entered, release = anyio.Event(), anyio.Event()

    async def hold() -> None:
        async with gate.slot():
            entered.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await entered.wait()
        tg.start_soon(hold)  # waits in the queue
        await anyio.wait_all_tasks_blocked()
        assert (gate.running, gate.waiting) == (1, 1)
        with pytest.raises(ServerBusyError, match="1 things running and 1 waiting"):
            gate.admit()
        release.set()
    assert (gate.running, gate.waiting) == (0, 0)
    gate.admit()  # room again


async def test_score_calls_past_the_queue_get_busy_and_the_server_recovers(offline_scorer):
    blocking = BlockingScorer(offline_scorer)
    settings = make_settings(score_concurrency=1, score_queue=0)
    from mcp_server.lifespan import Components

    results = []
    async with connect(settings, Components(scorer_factory=lambda: blocking)) as (client, state):
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                results.append(await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"}))

            tg.start_soon(first)
            assert await anyio.to_thread.run_sync(blocking.entered.wait, 10)
            busy = await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})
            assert busy.is_error and "server busy" in text(busy)
            blocking.release.set()
        assert not results[0].is_error
        assert not (await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})).is_error
        assert state.score_gate.running == 0 and blocking.calls == 2


async def test_finished_jobs_expire(store):
    gen = ScriptedGenerator(store, scores=(9.0,))
    async with JobManager(gen, Gate("g", running=1, queued=5), retention_seconds=3600, max_kept=2) as jobs:
        ids = []
        for i in range(3):
            job = jobs.submit(GenerationRequest(prompt=f"p{i}"))
            await jobs.wait(job, 10)
            assert job.state == "success"
            ids.append(job.id)
        jobs.submit(GenerationRequest(prompt="trigger purge"))
        with pytest.raises(UnknownJobError):
            jobs.get(ids[0])  # oldest finished job dropped past max_kept
        assert jobs.get(ids[2]).state == "success"
        jobs.retention_seconds = 0.0
        await jobs.wait(jobs.active()[0], 10)
        jobs._purge()
        assert jobs._jobs == {}


def test_public_bind_requires_a_token_and_the_token_is_secret():
    with pytest.raises(ConfigError, match="requires a bearer token"):
        McpSettings(_env_file=None, transport="http", host="0.0.0.0").check_serving()
    McpSettings(_env_file=None, transport="http", host="127.0.0.1").check_serving()
    McpSettings(_env_file=None, transport="stdio", host="0.0.0.0").check_serving()  # stdio binds nothing
    s = McpSettings(_env_file=None, transport="sse", host="10.0.0.5", auth_token="hunter2-long-token")
    s.check_serving()
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()
    assert s.token() == "hunter2-long-token"
    assert is_loopback_host("localhost") and is_loopback_host("::1") and not is_loopback_host("0.0.0.0")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFY_QUALITY_MCP_ROOTS", f"{tmp_path}, ~/pics")
    monkeypatch.setenv("COMFY_QUALITY_MCP_URL_ALLOWLIST", '["*.example.com", "cdn.test:8443"]')
    monkeypatch.setenv("COMFY_QUALITY_MCP_TRANSPORT", "sse")
    s = McpSettings(_env_file=None)
    assert s.roots[0] == tmp_path and not str(s.roots[1]).startswith("~")
    assert s.url_allowlist == ["*.example.com", "cdn.test:8443"] and s.transport == "sse"
    monkeypatch.setenv("COMFY_QUALITY_MCP_URL_ALLOWLIST", "bad:port")
    with pytest.raises(ValidationError, match="invalid port"):
        McpSettings(_env_file=None)
    with pytest.raises(ValidationError, match="exceeds max_wait_seconds"):
        McpSettings(_env_file=None, url_allowlist=[], default_wait_seconds=30, max_wait_seconds=25)
