"""The root of the project's exception trees.

Each package keeps its own tree (``quality.errors``, ``storage.errors``, ``refinement.errors``, …) and roots it
here, so a caller that wants "any error of ours, with a message meant for people" catches one class::

    ComfyQualityError
    ├── quality.errors.QualityError
    ├── storage.errors.StorageError
    ├── refinement.errors.RefinementError
    ├── mcp_server.errors.McpServerError
    ├── dashboard.errors.DashboardError
    └── jobqueue.errors.JobQueueError

Every message says what went wrong and what to do about it; callers show ``str(err)`` as is. Anything that is
not a ``ComfyQualityError`` reaching an entry point (MCP tool, CLI) is a bug: it is logged with its traceback and
answered with a short generic message.
"""

from __future__ import annotations


class ComfyQualityError(Exception):
    """Base class of every error raised by comfy-quality's packages."""
