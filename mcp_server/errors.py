"""The MCP server's exception tree.

Every error a tool raises on purpose derives from :class:`McpServerError`, which is the SDK's ``ToolError``: the
SDK turns it into an ``is_error`` tool result whose text is the message, so the agent reads what was wrong and
can fix its call. Anything else escaping a tool is a bug: the SDK logs the traceback and the agent sees only a
generic failure (no internals, no secrets).

    McpServerError (comfy_quality.errors.ComfyQualityError, and the SDK's ToolError)
    ├── InvalidInputError          an argument is unusable as given (names the argument and the problem)
    │   ├── ImageSourceError       the ``image`` cannot be read: unknown form, missing file, bad base64, HTTP error
    │   │   └── SourceRefusedError the source is not allowed: outside the roots, host not allowed, private address
    │   └── UnknownJobError        no job with that id (never existed, or expired)
    ├── ServerBusyError            the bounded queue is full: retry later
    │   └── ModelsLoadingError     the scoring models are still loading past the wait cap: retry in N s
    ├── NotConfiguredError         the server has no generator / object store / index configured
    ├── ScoringError               the image was read but could not be scored (decode, size, scorer unavailable)
    ├── ServiceError               a component the server relies on failed (generation index, object store)
    ├── GenerationError            the generation failed or was cancelled
    ├── McpServerConfigError       invalid settings at start-up (a public bind without a token); a SettingsError
    └── InstallError               ``comfy-quality-mcp install`` cannot write the host's configuration

Errors of the packages below (quality, storage, refinement, jobqueue) are translated into these by one table,
:data:`mcp_server.boundary.TOOL_ERRORS`, where a tool call ends. ``ConfigError`` is the former name of
:class:`McpServerConfigError` (kept as an alias).
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from comfy_quality.errors import ComfyQualityError, SettingsError


class McpServerError(ComfyQualityError, ToolError):
    """Base class of every error of :mod:`mcp_server`; raised in a tool, the agent reads its message."""


class InvalidInputError(McpServerError):
    """An argument cannot be used as given."""


class ImageSourceError(InvalidInputError):
    """The ``image`` argument cannot be read."""


class SourceRefusedError(ImageSourceError):
    """The ``image`` source is refused by the server's input-safety rules."""


class UnknownJobError(InvalidInputError):
    """No job with that id."""


class ServerBusyError(McpServerError):
    """Too many requests are running or queued; the caller should retry later."""


class ModelsLoadingError(ServerBusyError):
    """The scoring models are still loading and the call's wait cap is spent; ``retry_after`` says when to retry."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotConfiguredError(McpServerError):
    """A feature needs a component this server was started without."""


class ScoringError(McpServerError):
    """The image could not be scored."""


class ServiceError(McpServerError):
    """A component the server relies on failed."""


class GenerationError(McpServerError):
    """A generation could not be run."""


class McpServerConfigError(McpServerError, SettingsError):
    """The server's settings are invalid (raised at start-up, before serving)."""


class InstallError(McpServerError):
    """An agent host's configuration cannot be read or written by ``comfy-quality-mcp install``; ``code`` is the
    exit code (:mod:`mcp_server.install`: 2 usage, 3 a file, 4 the ``claude`` command)."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


ConfigError = McpServerConfigError
"""The former name of :class:`McpServerConfigError` (``mcp_server.ConfigError``), kept for callers."""
