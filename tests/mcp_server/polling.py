"""Waiting for a generation job to end without trusting one bounded wait: on a loaded machine a job may outlast any
single ``generate_quality`` / ``generation_status`` wait, so tests poll until the job is final, within an overall
timeout (the project rule: never assert a final state after one bounded wait)."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult

#: Overall bound on one job reaching a final state (never reached when things work).
FINAL_WITHIN_SECONDS = 300.0
NOT_FINAL = ("queued", "running")


async def until_final(
    client: Client,
    result: CallToolResult,
    *,
    log: Any = None,
    within: float = FINAL_WITHIN_SECONDS,
    **status_arguments: Any,
) -> CallToolResult:
    """The first tool result whose job is final: ``result`` itself when it already is (or is an error), else the
    result of ``generation_status`` polled (each call a bounded wait) until it is. ``status_arguments`` (e.g.
    ``include_preview=False``) go to every ``generation_status`` call; ``log`` keeps receiving progress."""
    with anyio.fail_after(within):
        while not result.is_error and (result.structured_content or {}).get("status") in NOT_FINAL:
            job_id = (result.structured_content or {})["job_id"]
            result = await client.call_tool(
                "generation_status", {"job_id": job_id, "wait_seconds": 20, **status_arguments}, progress_callback=log
            )
    return result
