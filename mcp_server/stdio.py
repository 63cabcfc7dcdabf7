"""The stdio transport, answering lines the SDK cannot parse.

The SDK's stdio transport parses each line of stdin as a JSON-RPC message; a line it cannot parse (a lone
surrogate escape such as ``"\\ud800"``, nesting deeper than its parser's limit, broken JSON) is passed to the
session as an exception and never answered, so the client waits for its own timeout. Over streamable HTTP the
same request gets a JSON-RPC parse error at once.

:func:`run_stdio` runs the SDK's own transport (``mcp.server.stdio.stdio_server``, which points fd 1 at stderr
while serving) with a stdin that checks each line first, the way the SDK will parse it: a line the SDK would
refuse is answered here, through the transport's own write stream (so frames never interleave), with

* ``-32700`` *Parse error* when the line is not JSON the SDK accepts (broken JSON, lone surrogates, too deep),
* ``-32600`` *Invalid Request* when it is JSON but not a JSON-RPC message,

carrying the request's ``id`` when it can be found at the top level of the line (else ``null``, as JSON-RPC
says), and a short reason; the line itself is never echoed. Blank lines are ignored. Like the SDK's claim on
stdin, fd 0 is pointed at the null device while serving (child processes read EOF, never protocol bytes) and
restored on exit.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import mcp.types as mcp_types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

log = logging.getLogger(__name__)

RequestId = str | int


def _value_at(line: str, start: int) -> RequestId | None:
    try:
        value, _ = json.JSONDecoder().raw_decode(line, start)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def find_request_id(line: str) -> RequestId | None:
    """The ``id`` member of the top-level object of ``line``, found by scanning (the line may be too deep or
    otherwise unparseable as a whole); None when there is none or it cannot be read."""
    depth = 0
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == '"':
            end = i + 1
            while end < n and line[end] != '"':
                end += 2 if line[end] == "\\" else 1
            if depth == 1 and line[i + 1 : end] == "id":
                rest = end + 1
                while rest < n and line[rest] in " \t\r\n":
                    rest += 1
                if rest < n and line[rest] == ":":
                    rest += 1
                    while rest < n and line[rest] in " \t\r\n":
                        rest += 1
                    return _value_at(line, rest)
            i = end + 1
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        i += 1
    return None


def parse_problem(line: str) -> JSONRPCError | None:
    """The error to answer ``line`` with, or None when the SDK can parse it."""
    try:
        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        return None
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        invalid_json = any(e["type"] == "json_invalid" for e in errors)
        reason = str(errors[0]["msg"]) if errors else "unreadable"
    except Exception as exc:  # anything else the parser raises
        invalid_json, reason = True, type(exc).__name__
    try:
        parsed: Any = json.loads(line)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        raw_id = parsed.get("id")
        request_id = raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    else:
        request_id = find_request_id(line)
    if invalid_json:
        code, message = PARSE_ERROR, f"Parse error: {reason[:200]}"
    else:
        code, message = INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request, notification or response"
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


class CheckedStdin:
    """An async iterable of stdin lines that answers the lines the SDK would drop."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._write: MemoryObjectSendStream[SessionMessage] | None = None
        self._attached = anyio.Event()

    def attach(self, write_stream: MemoryObjectSendStream[SessionMessage]) -> None:
        self._write = write_stream
        self._attached.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._source:
            if not line.strip():
                continue
            problem = parse_problem(line) if len(line) < 64 * 1024 * 1024 else None
            if problem is None:
                yield line
                continue
            log.info("answered an unparseable stdin line (%d characters): %s", len(line), problem.error.message)
            await self._attached.wait()
            assert self._write is not None
            await self._write.send(SessionMessage(problem))


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` over stdin/stdout (see the module docs)."""
    private = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        wire = io.TextIOWrapper(os.fdopen(private, "rb", closefd=False), encoding="utf-8", errors="replace")
        stdin = CheckedStdin(anyio.wrap_file(wire))
        async with stdio_server(stdin=cast(Any, stdin)) as (read_stream, write_stream):
            stdin.attach(write_stream)
            lowlevel = server._lowlevel_server  # the SDK's run_stdio_async does exactly this, on its own stdin
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        os.dup2(private, 0)  # ``private`` stays open: a worker thread may still be blocked reading it
