"""Over stdio, a line the SDK cannot parse gets a JSON-RPC error at once (issue 11 item 8), as over HTTP, instead
of no answer at all; the server keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_server.stdio import find_request_id, parse_problem
from tests.mcp_server.fakes import REPO
from tests.mcp_server.procs import server_env

CLIENT = {"name": "raw", "version": "0"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}}  # fmt: skip
SURROGATE = '{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "score_image", "arguments": {"image": "\\ud800"}}}'  # noqa: E501
DEEP = '{"jsonrpc": "2.0", "id": "deep-4", "method": "tools/call", "params": {"name": "x", "arguments": {"a": ' + "[" * 5000 + "]" * 5000 + "}}}"  # noqa: E501
BROKEN = '{"jsonrpc": "2.0", "id": 5, "method": "tools/list", '
NOT_RPC = '{"id": 6, "hello": "world"}'


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [(SURROGATE, -32700, 3), (DEEP, -32700, "deep-4"), (BROKEN, -32700, 5), (NOT_RPC, -32600, 6),
     ("[[[[", -32700, None), ('{"params": {"id": 9}, "id": 8, "x": [1,', -32700, 8)],
)  # fmt: skip
def test_lines_the_sdk_cannot_parse_get_an_error_with_their_id(line, code, request_id):
    problem = parse_problem(line)
    assert problem is not None and problem.error.code == code and problem.id == request_id
    assert len(problem.error.message) < 300 and "\\ud800" not in problem.error.message


def test_good_lines_pass_and_ids_are_found_at_the_top_level_only():
    assert parse_problem(json.dumps(INIT)) is None
    assert find_request_id('{"params": {"id": 1}, "id": "x"') == "x"
    assert find_request_id('{"params": {"id": 1}}') is None
    assert find_request_id('{"a": "\\"id\\": 4", "id": 5') == 5


def test_stdio_answers_unparseable_lines_and_keeps_serving(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=server_env(tmp_path),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    answers: dict[object, dict] = {}
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            message = json.loads(raw)
            answers[message.get("id")] = message
            if message.get("id") == 7:
                done.set()

    threading.Thread(target=read, daemon=True).start()
    good = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
    lines = [json.dumps(INIT), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
             SURROGATE, DEEP, BROKEN, NOT_RPC, "", json.dumps(good)]  # fmt: skip
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.flush()
    try:
        assert done.wait(timeout=120), f"no answer to the good request after the bad ones: {list(answers)}"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert answers[3]["error"]["code"] == -32700 and answers["deep-4"]["error"]["code"] == -32700
    assert answers[5]["error"]["code"] == -32700 and answers[6]["error"]["code"] == -32600
    assert {t["name"] for t in answers[7]["result"]["tools"]} >= {"score_image", "generate_quality"}
