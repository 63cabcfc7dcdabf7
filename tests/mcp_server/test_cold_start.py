"""The MCP server's cold start: tools answer while the models load, a score call never waits past the wait
cap, and the real server process (built-in wiring) scores without importing any deep-learning package when no
deep-model weights are present."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio

from mcp_server.lifespan import Components
from tests.mcp_server.conftest import Shared, connect, make_settings, text
from tests.mcp_server.fakes import AGIQA
from tests.mcp_server.procs import server_env

DEEP = ("torch", "open_clip", "timm", "torchvision", "pyiqa")


class SlowFactory:
    """A scorer factory that blocks (like a slow model load) until released."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Any:
        self.started.set()
        self.release.wait(120)
        return Shared(self.scorer)


async def test_while_models_load_tools_list_answers_and_a_score_call_gets_a_retry_hint(offline_scorer):
    factory = SlowFactory(offline_scorer)
    settings = make_settings(max_wait_seconds=0.3, default_wait_seconds=0.3)
    try:
        async with connect(settings, Components(scorer_factory=factory)) as (client, state):
            assert await anyio.to_thread.run_sync(factory.started.wait, 30)
            names = {t.name for t in (await client.list_tools()).tools}
            assert "score_image" in names
            assert not state.scorer.ready

            refused = await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})
            assert refused.is_error
            assert re.search(r"models are loading \(\d+ s so far\); retry in \d+ s", text(refused)), text(refused)
            assert not factory.release.is_set() and not state.scorer.ready  # it did not wait for the load

            factory.release.set()
            with anyio.fail_after(60):
                while not state.scorer.ready:
                    await anyio.sleep(0.01)
            scored = await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"})
            assert not scored.is_error, text(scored)
            assert json.loads(text(scored))["grade"]
    finally:
        factory.release.set()


async def test_a_score_call_that_arrives_while_models_load_gets_its_score_once_they_are_ready(offline_scorer):
    factory = SlowFactory(offline_scorer)
    settings = make_settings(max_wait_seconds=60, default_wait_seconds=10)
    results: list[Any] = []
    try:
        async with connect(settings, Components(scorer_factory=factory)) as (client, state):
            assert await anyio.to_thread.run_sync(factory.started.wait, 30)

            async def call() -> None:
                results.append(await client.call_tool("score_image", {"image": "sd1.5_normal_000.jpg"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.wait_all_tasks_blocked()
                assert results == [] and not state.scorer.ready
                factory.release.set()
            assert not results[0].is_error, text(results[0])
    finally:
        factory.release.set()


def test_retry_hint_grows_with_the_loading_time_within_bounds():
    from mcp_server.lifespan import ScorerHandle

    handle = ScorerHandle(lambda: None, wait_seconds=5)  # type: ignore[arg-type,return-value]
    assert handle.retry_after() == 2
    handle._started -= 19.5
    assert handle.retry_after() == 10
    handle._started -= 1000
    assert handle.retry_after() == 30


def test_the_server_process_scores_without_deep_learning_imports(tmp_path: Path):
    """``python -m mcp_server`` over stdio with the built-in wiring (local store, index, orchestrator), device
    ``auto`` and an empty weights folder: initialize, tools/list, score_image; the process's import log
    (``-X importtime``) names none of torch, open_clip, timm, torchvision or pyiqa."""
    env = server_env(tmp_path, PYTHONPROFILEIMPORTTIME="1")
    for key in ("COMFY_QUALITY_MCP_COMPONENTS", "COMFY_QUALITY_DEVICE"):
        env.pop(key)
    proc = subprocess.Popen([sys.executable, "-m", "mcp_server"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "score_image", "arguments": {"image": str(AGIQA / "sd1.5_normal_000.jpg"), "prompt": "a cat"}}},
    ]  # fmt: skip
    answers: dict[int, dict[str, Any]] = {}
    err_lines: list[str] = []
    drain = threading.Thread(target=lambda: err_lines.extend(proc.stderr or ()), daemon=True)  # the import log is long
    drain.start()
    try:
        for msg in messages:
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
            if "id" not in msg:
                continue
            while msg["id"] not in answers:
                line = proc.stdout.readline()
                assert line, "the server closed stdout"
                answer = json.loads(line)
                if "id" in answer:
                    answers[answer["id"]] = answer
        proc.stdin.close()
        proc.wait(timeout=60)
        drain.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "score_image" in {t["name"] for t in answers[2]["result"]["tools"]}
    result = answers[3]["result"]
    assert not result.get("isError"), result
    report = result["structuredContent"]
    assert report["grade"]
    imported = {line.rsplit("|", 1)[1].strip() for line in err_lines if line.startswith("import time:")}
    # the log is complete: it shows the scorer and the NSS maths it loaded (modules imported through
    # importlib.import_module are not listed, their own imports are)
    assert {"quality.scorer", "quality.backends.nss_math", "quality.calibration.model"} <= imported
    assert sorted(imported & set(DEEP)) == []
    assert "minio" not in imported  # a local store needs no S3 client
