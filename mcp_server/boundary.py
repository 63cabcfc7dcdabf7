"""The MCP tools' one error table: what the agent reads when a tool call ends with an exception.

* A tool error of ours (:class:`~mcp_server.errors.McpServerError`) is answered with its message.
* An error of a package below (quality, storage, refinement, jobqueue, dashboard) is translated by
  :data:`TOOL_ERRORS` into the tool error class of its kind, with its message (credentials in URLs redacted).
* Anything else is a bug: logged with its traceback and answered with a short message naming only its type (its
  text may quote the caller's input or the server's internals).

:class:`mcp_server.server.QualityServer` applies :func:`translate` where every tool call ends, so the tools only
raise; they never map errors themselves.
"""

from __future__ import annotations

import logging

from comfy_quality.boundary import ErrorTable, log_unexpected, unexpected_message
from comfy_quality.errors import ComfyQualityError
from jobqueue.errors import JobQueueError
from mcp_server.errors import GenerationError, InvalidInputError, McpServerError, ScoringError, ServiceError
from mcp_server.netguard import redact_text
from quality.errors import QualityError
from refinement.errors import RefinementError, RequestError
from refinement.workflows import WorkflowError
from storage.errors import StorageError

log = logging.getLogger(__name__)

TOOL_ERRORS: ErrorTable[type[McpServerError]] = ErrorTable(
    "MCP tool",
    [
        (RequestError, InvalidInputError),  # a request the refinement package cannot run as asked
        (WorkflowError, InvalidInputError),  # the workflow argument cannot be used
        (QualityError, ScoringError),  # the image was read but could not be scored
        (StorageError, ServiceError),  # the object store or the generation index failed
        (JobQueueError, ServiceError),  # the distributed job queue failed
        (RefinementError, GenerationError),  # ComfyUI and the orchestrator
        (ComfyQualityError, ServiceError),  # any other package's error (dashboard, …)
    ],
)
"""Library error class → the tool error class the agent sees (first matching row wins; tool errors of ours are
answered as raised)."""


def translate(tool: str, exc: BaseException) -> McpServerError:
    """The tool error that answers ``exc`` raised by ``tool``'s call; logs unexpected ones with their traceback."""
    prefix = f"Error executing tool {tool}: "
    if isinstance(exc, McpServerError):
        return exc
    if isinstance(exc, ComfyQualityError):
        kind = TOOL_ERRORS.lookup(exc) or ServiceError
        translated = kind(prefix + redact_text(str(exc)))
        translated.__cause__ = exc
        return translated
    log_unexpected(f"tool {tool}", exc, log)
    translated = ServiceError(prefix + unexpected_message(exc))
    translated.__cause__ = exc
    return translated
