"""The root of the project's exception trees.

Each package keeps its own tree (``quality.errors``, ``storage.errors``, ``refinement.errors``, …) and roots it
here, so a caller that wants "any error of ours, with a message meant for people" catches one class::

    ComfyQualityError
    ├── SettingsError                        settings that cannot work, whichever package reads them
    ├── quality.errors.QualityError          (quality.errors.ConfigError is also a SettingsError)
    ├── storage.errors.StorageError          (storage.errors.StorageConfigError is also a SettingsError)
    ├── refinement.errors.RefinementError    (ComfyUIError and WorkflowError included)
    ├── mcp_server.errors.McpServerError     (also the MCP SDK's ToolError; McpServerConfigError is a SettingsError)
    ├── dashboard.errors.DashboardError      (dashboard.errors.DashboardConfigError is also a SettingsError)
    └── jobqueue.errors.JobQueueError        (jobqueue.errors.JobQueueConfigError is also a SettingsError)

Class names are unique across the packages (a test walks every package and checks it), so a name in a log or a
tool error says which package raised it.

Every message says what went wrong and what to do about it; callers show ``str(err)`` as is. Anything that is
not a ``ComfyQualityError`` reaching an entry point (MCP tool, CLI) is a bug: it is logged with its traceback and
answered with a short generic message (see :mod:`comfy_quality.boundary`).
"""

from __future__ import annotations


class ComfyQualityError(Exception):
    """Base class of every error raised by comfy-quality's packages."""


class SettingsError(ComfyQualityError):
    """Settings (environment variables, ``.env``, options) that cannot work as given; the message names the
    setting. Each package's own configuration error derives from this one and from the package's root, so an
    entry point can answer every configuration problem the same way (its "configuration" exit code)."""
