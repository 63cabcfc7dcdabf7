"""The MCP tools' one error table (mcp_server.boundary), through the in-memory SDK client: a library error is
answered as the tool error of its kind with its message; anything else is logged with its traceback and answered
with a short message that echoes neither the exception's text (the caller's input) nor a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from comfy_quality.errors import ComfyQualityError
from mcp_server.boundary import TOOL_ERRORS, translate
from mcp_server.errors import (
    GenerationError,
    InvalidInputError,
    McpServerError,
    ScoringError,
    ServiceError,
    UnknownJobError,
)
from mcp_server.models import RecentQuery
from quality.errors import ImageTooSmallError, MetricError
from refinement.comfyui.errors import ComfyUIUnreachableError
from refinement.errors import RequestError
from refinement.workflows import WorkflowLoadError
from storage.errors import StorageIndexError
from tests.mcp_server.conftest import b64 as to_b64
from tests.mcp_server.conftest import components_for, connect, png_bytes, text

SECRET = "s3cr3t-token=abc123"


class Boom(RuntimeError):
    pass


class RaisingScorer:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> Any:
        raise self.exc


class RaisingIndex:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def recent(self, query: RecentQuery) -> list[Any]:
        raise self.exc


def _unexpected_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom and r.levelno == logging.ERROR]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ImageTooSmallError("the image is 10×10 px; at least 32 px"), ScoringError),
        (MetricError("NIQE failed"), ScoringError),
        (StorageIndexError("the index cannot be read"), ServiceError),
        (RequestError("guidance needs a FluxGuidance node"), InvalidInputError),
        (WorkflowLoadError("unknown template 'x'"), InvalidInputError),
        (ComfyUIUnreachableError("start ComfyUI"), GenerationError),
        (ComfyQualityError("another package"), ServiceError),
    ],
)
def test_the_table_maps_each_library_error_to_its_tool_error(error: Exception, kind: type) -> None:
    translated = translate("tool_x", error)
    assert type(translated) is kind and translated.__cause__ is error
    assert str(translated) == f"Error executing tool tool_x: {error}"


def test_our_tool_errors_pass_unchanged_and_unknown_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    own = UnknownJobError("no job 'x'")
    assert translate("t", own) is own
    answer = translate("t", Boom(SECRET))
    assert isinstance(answer, McpServerError) and "internal error (Boom)" in str(answer)
    assert SECRET not in str(answer)
    assert _unexpected_logged(caplog)
    assert TOOL_ERRORS.lookup(Boom()) is None


async def test_score_image_library_error_is_a_scoring_error_with_its_message(settings: Any) -> None:
    scorer = RaisingScorer(MetricError("every metric failed: check the weights"))
    async with connect(settings, components_for(scorer)) as (client, _):
        result = await client.call_tool("score_image", {"image": to_b64(png_bytes())})
    assert result.is_error
    assert text(result) == "Error executing tool score_image: every metric failed: check the weights"


async def test_score_image_unexpected_error_is_logged_and_answered_briefly(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with connect(settings, components_for(RaisingScorer(Boom(SECRET)))) as (client, _):
        result = await client.call_tool("score_image", {"image": to_b64(png_bytes())})
    assert result.is_error
    answer = text(result)
    assert answer.startswith("Error executing tool score_image: internal error (Boom)")
    assert SECRET not in answer and "Traceback" not in answer and len(answer) < 300
    logged = _unexpected_logged(caplog)
    assert logged and SECRET in str(logged[0].exc_info[1])  # type: ignore[index]


async def test_list_generations_index_errors(
    settings: Any, offline_scorer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    failing = RaisingIndex(StorageIndexError("the index /data/index.sqlite3 cannot be read: check its permissions"))
    async with connect(settings, components_for(offline_scorer, index=failing)) as (client, _):
        expected = await client.call_tool("list_generations", {})
    assert expected.is_error and "cannot be read: check its permissions" in text(expected)
    assert not _unexpected_logged(caplog)
    async with connect(settings, components_for(offline_scorer, index=RaisingIndex(Boom(SECRET)))) as (client, _):
        unexpected = await client.call_tool("list_generations", {})
    assert unexpected.is_error and "internal error (Boom)" in text(unexpected) and SECRET not in text(unexpected)
    assert _unexpected_logged(caplog)


def test_every_package_root_has_a_row() -> None:
    """A new package's errors reach the agent as a tool error of their kind, never as "internal error"."""
    from dashboard.errors import DashboardError
    from jobqueue.errors import JobQueueError
    from quality.errors import QualityError
    from refinement.errors import RefinementError
    from storage.errors import StorageError

    for root in (QualityError, StorageError, RefinementError, JobQueueError, DashboardError, ComfyQualityError):
        kind = TOOL_ERRORS.lookup(root("x"))
        assert kind is not None and issubclass(kind, McpServerError), root
