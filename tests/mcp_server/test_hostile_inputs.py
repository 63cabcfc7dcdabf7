"""The hostile-input corpus (:mod:`tests.mcp_server.hostile_cases`) against the server: in memory, and over stdio
and streamable HTTP against a real server subprocess. Every case must end in a clear tool error (the message
names the problem) or a correct result; no error message exceeds 1,000 characters or quotes a long argument
back; nothing secret from outside the roots appears; and the server answers a good call right after each case."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.mcp_server.conftest import components_for, connect, make_settings
from tests.mcp_server.fakes import AGIQA, REPO, ListIndex, ScriptedGenerator, summary
from tests.mcp_server.hostile_cases import GOOD_IMAGE, SECRET, Case, all_cases, make_tree, materialize
from tests.mcp_server.procs import http_server, server_env

MAX_MESSAGE = 1000
LEAKS = (SECRET, "aws_secret_access_key", "root:x:0:0", "BEGIN OPENSSH")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)] + [k for k in value if isinstance(k, str)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _message(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def check(case: Case, arguments: dict[str, Any], is_error: bool, message: str) -> list[str]:
    """What is wrong with the outcome of one case (empty: fine)."""
    problems = []
    label = f"[{case.category}] {case.name}"
    if case.outcome == "ok" and is_error:
        problems.append(f"{label}: expected a result, got the error {message[:300]!r}")
    if case.outcome == "error" and not is_error:
        problems.append(f"{label}: expected a tool error, got a result")
    if is_error:
        if len(message) > MAX_MESSAGE:
            problems.append(f"{label}: error message of {len(message)} characters")
        if case.expect and case.outcome == "error" and not any(e.lower() in message.lower() for e in case.expect):
            problems.append(f"{label}: message {message[:300]!r} names none of {case.expect}")
        if message.strip().endswith("Error executing tool " + case.tool):
            problems.append(f"{label}: a bare 'Error executing tool' without the reason")
        for s in [*_strings(arguments), case.tool]:
            if len(s) > 100 and s[:100] in message:
                problems.append(f"{label}: the message quotes {len(s)} characters of input back")
    for leak in LEAKS:
        if leak in message:
            problems.append(f"{label}: the answer contains {leak!r}")
    return problems


async def run_corpus(client: Client, places: dict[str, Path], *, slow: bool = False) -> dict[str, Any]:
    problems: list[str] = []
    counts: dict[str, int] = {}
    outcomes = {"error": 0, "ok": 0}
    for case in all_cases(slow=slow):
        arguments = materialize(case.arguments, places)
        counts[case.category] = counts.get(case.category, 0) + 1
        with anyio.fail_after(120):
            try:
                result = await client.call_tool(case.tool, arguments)
                is_error, message = bool(result.is_error), _message(result)
            except MCPError as exc:  # a protocol-level (JSON-RPC) error is an answer too, if it is clear
                is_error, message = True, str(exc)
            except Exception as exc:  # the client could not even send it: the case tests nothing
                problems.append(f"[{case.category}] {case.name}: not sent ({type(exc).__name__}: {exc})")
                continue
            outcomes["error" if is_error else "ok"] += 1
            problems += check(case, arguments, is_error, message)
            alive = await client.call_tool("list_generations", {"limit": 1})
            if alive.is_error:
                problems.append(f"[{case.category}] {case.name}: the next good call failed: {_message(alive)[:200]}")
    with anyio.fail_after(120):
        scored = await client.call_tool("score_image", {"image": GOOD_IMAGE})
    if scored.is_error:
        problems.append(f"a good score_image after the corpus failed: {_message(scored)[:300]}")
    assert not problems, "\n".join(problems)
    return {"categories": counts, "outcomes": outcomes}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    return make_tree(tmp_path / "tree")


async def test_hostile_inputs_in_memory(offline_scorer, store, places):
    gen = ScriptedGenerator(store, scores=(8.0,), steps=1)
    index = ListIndex([summary("a red fox", "B", "success", 5)])
    settings = make_settings(roots=[AGIQA, places["ROOT"]])
    components = components_for(offline_scorer, generator=gen, store=store, index=index)
    async with connect(settings, components) as (client, _):
        report = await run_corpus(client, places)
    assert sum(report["categories"].values()) > 150


def _env(places: dict[str, Path]) -> dict[str, str]:
    return {"COMFY_QUALITY_MCP_ROOTS": f"{AGIQA},{places['ROOT']}"}


async def test_hostile_inputs_over_stdio(tmp_path: Path, places):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server"], env=server_env(tmp_path, **_env(places)), cwd=str(REPO)
    )
    started = time.monotonic()
    async with Client(params) as client:
        report = await run_corpus(client, places)
    print(f"stdio: {report} in {time.monotonic() - started:.1f} s")


async def test_hostile_inputs_over_streamable_http(tmp_path: Path, places):
    with http_server(tmp_path, "--transport", "http", **_env(places)) as server:
        started = time.monotonic()
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))
        async with http, Client(streamable_http_client(server.url, http_client=http)) as client:
            report = await run_corpus(client, places)
        print(f"http: {report} in {time.monotonic() - started:.1f} s")


@pytest.mark.slow
async def test_hostile_inputs_including_the_slow_ones_over_streamable_http(tmp_path: Path, places):
    with http_server(tmp_path, "--transport", "http", **_env(places)) as server:
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(60, read=600))
        async with http, Client(streamable_http_client(server.url, http_client=http)) as client:
            await run_corpus(client, places, slow=True)


async def test_the_server_log_does_not_take_a_huge_argument_whole(offline_scorer, store, caplog):
    async with connect(make_settings(), components_for(offline_scorer, store=store)) as (client, _):
        with caplog.at_level("INFO"):
            result = await client.call_tool("t" * 100_000, {})
    assert result.is_error and len(_message(result)) < 300
    assert caplog.records and all(len(r.getMessage()) < 2100 for r in caplog.records)
