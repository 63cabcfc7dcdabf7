"""The real server in a subprocess, over stdio, SSE and streamable HTTP, driven by the SDK's client: tool list,
score a real image, a generation (scripted generator behind the real job machinery), security checks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ImageContent

from mcp_server.models import GenerationList, GenerationOutput, ScoreResult
from tests.mcp_server.conftest import ProgressLog, b64, text
from tests.mcp_server.fakes import AGIQA, REPO
from tests.mcp_server.polling import until_final
from tests.mcp_server.procs import http_server, server_env

TOOLS = {"score_image", "generate_quality", "generation_status", "cancel_generation", "list_generations"}
IMAGE = AGIQA / "midjourney_normal_000.jpg"


async def exercise(client: Client, *, image: str) -> None:
    """What every transport must do: list the tools, score a real image, run a generation with progress."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS
    scored = await client.call_tool("score_image", {"image": image, "prompt": "statue of a man"})
    assert not scored.is_error, scored.content
    report = ScoreResult.model_validate(scored.structured_content)
    assert report.metrics["edge_density"].status == "ok" and report.image.width > 0
    assert report.coverage.metrics_unavailable  # offline: deep metrics report why they did not run
    log = ProgressLog()
    generated = await client.call_tool("generate_quality", {"prompt": "a red fox", "seed": 3}, progress_callback=log)
    generated = await until_final(client, generated, log=log)
    out = GenerationOutput.model_validate(generated.structured_content)
    assert out.status == "success" and out.image_url and out.attempts_used == 2
    assert any(isinstance(c, ImageContent) for c in generated.content)
    listed = GenerationList.model_validate((await client.call_tool("list_generations", {})).structured_content)
    assert listed.index_available and {g.prompt for g in listed.recent} == {"a red fox", "a blue car"}
    bad = await client.call_tool("score_image", {"image": "/etc/passwd"})
    assert bad.is_error and "outside the allowed folders" in text(bad)


async def test_stdio_with_the_sdk_client(tmp_path: Path):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server"], env=server_env(tmp_path), cwd=str(REPO)
    )
    with anyio.fail_after(180):
        async with Client(params) as client:
            await exercise(client, image=IMAGE.name)


def test_stdio_stdout_carries_only_protocol_messages(tmp_path: Path):
    """The components print to stdout while loading models; none of it may reach the protocol stream."""
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "score_image", "arguments": {"image": IMAGE.name}},
        },
    ]
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        cwd=REPO,
        env=server_env(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None
    out_lines: list[str] = []
    answered = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out_lines.append(line)
            if '"id":2' in line.replace(" ", ""):
                answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.stdin.write("".join(json.dumps(line) + "\n" for line in lines))
    proc.stdin.flush()
    try:
        assert answered.wait(timeout=180), "no answer to tools/call"
    finally:
        proc.stdin.close()  # end of input: the server exits
        proc.wait(timeout=60)
        reader.join(timeout=10)
        errors.close()
    messages = [json.loads(line) for line in out_lines if line.strip()]  # every stdout line is JSON
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    by_id = {m.get("id"): m for m in messages}
    assert by_id[1]["result"]["serverInfo"]["name"] == "comfy-quality"
    assert by_id[2]["result"]["isError"] is False and by_id[2]["result"]["structuredContent"]["grade"]
    assert "noise on stdout" in (tmp_path / "stderr.txt").read_text()  # the library's print went to stderr


async def test_sse_with_the_sdk_client(tmp_path: Path):
    with http_server(tmp_path, "--transport", "sse") as server:
        assert server.url.endswith("/sse") and server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=30) as raw:
            rebound = await raw.get(server.url, headers={"Host": "evil.test"})
        assert rebound.status_code == 421  # DNS-rebinding protection on the SSE endpoint too
        with anyio.fail_after(180):
            async with Client(sse_client(server.url, timeout=30)) as client:
                await exercise(client, image=b64(IMAGE.read_bytes()))  # a large body over the message POST


async def test_streamable_http_with_bearer_token_and_dns_rebinding_protection(tmp_path: Path):
    token = "test-token-0123456789abcdef"
    with http_server(tmp_path, "--transport", "http", COMFY_QUALITY_MCP_AUTH_TOKEN=token) as server:
        assert server.url.endswith("/mcp")
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=30) as raw:
            missing = await raw.post(server.url, json=init, headers=headers)
            wrong = await raw.post(server.url, json=init, headers=headers | {"Authorization": "Bearer nope"})
            rebound = await raw.post(
                server.url, json=init, headers=headers | {"Authorization": f"Bearer {token}", "Host": "evil.test:80"}
            )
            origin = await raw.post(
                server.url,
                json=init,
                headers=headers | {"Authorization": f"Bearer {token}", "Origin": "http://evil.test"},
            )
        assert missing.status_code == 401 and wrong.status_code == 401
        assert "www-authenticate" in missing.headers
        assert rebound.status_code == 421 and origin.status_code == 403
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300))
        with anyio.fail_after(180):
            async with http, Client(streamable_http_client(server.url, http_client=http)) as client:
                await exercise(client, image=IMAGE.name)
            base = server.url.removesuffix("/mcp")
            async with httpx.AsyncClient(timeout=30) as plain:
                dashboard = await plain.get(f"{base}/dashboard/api/health")
                page = await plain.get(f"{base}/dashboard/")
        assert dashboard.status_code == 200 and page.status_code == 200  # the dashboard is served next to MCP
        assert "/dashboard/static/" in page.text
        assert not any(token in line for line in server.lines)  # the secret never reaches the log


def test_a_public_bind_without_a_token_refuses_to_start(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--transport", "http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=server_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2 and "requires a bearer token" in proc.stderr and proc.stdout == ""
