"""comfy-quality's MCP server: ``score_image``, ``generate_quality`` and job tools for agents, over stdio, SSE and
streamable HTTP.

    from mcp_server import build_server, McpSettings
    server = build_server(McpSettings())          # an mcp.server.mcpserver.MCPServer
    server.run()                                  # stdio

The wiring point for the orchestrator, store and index is :func:`mcp_server.lifespan.build_components`.
"""

# The public names are loaded on first use (PEP 562): importing one submodule (say the settings, for the
# unknown-variable check of another entry point) must not pull in the server and its web stack.
from __future__ import annotations

from typing import TYPE_CHECKING

from comfy_quality.lazy import lazy_exports

if TYPE_CHECKING:
    from mcp_server.errors import (
        ConfigError,
        GenerationError,
        ImageSourceError,
        InvalidInputError,
        McpServerConfigError,
        McpServerError,
        NotConfiguredError,
        ScoringError,
        ServerBusyError,
        ServiceError,
        SourceRefusedError,
        UnknownJobError,
    )
    from mcp_server.lifespan import AppState, Components, build_components, open_app_state
    from mcp_server.models import GenerationList, GenerationOutput, GenerationSummary, RecentQuery, ScoreResult
    from mcp_server.protocols import GenerationIndex, ImageScorer, ObjectStore
    from mcp_server.server import build_server
    from mcp_server.settings import McpSettings

_LAZY = {
    "ConfigError": "mcp_server.errors",
    "GenerationError": "mcp_server.errors",
    "ImageSourceError": "mcp_server.errors",
    "InvalidInputError": "mcp_server.errors",
    "McpServerConfigError": "mcp_server.errors",
    "McpServerError": "mcp_server.errors",
    "NotConfiguredError": "mcp_server.errors",
    "ScoringError": "mcp_server.errors",
    "ServerBusyError": "mcp_server.errors",
    "ServiceError": "mcp_server.errors",
    "SourceRefusedError": "mcp_server.errors",
    "UnknownJobError": "mcp_server.errors",
    "AppState": "mcp_server.lifespan",
    "Components": "mcp_server.lifespan",
    "build_components": "mcp_server.lifespan",
    "open_app_state": "mcp_server.lifespan",
    "GenerationList": "mcp_server.models",
    "GenerationOutput": "mcp_server.models",
    "GenerationSummary": "mcp_server.models",
    "RecentQuery": "mcp_server.models",
    "ScoreResult": "mcp_server.models",
    "GenerationIndex": "mcp_server.protocols",
    "ImageScorer": "mcp_server.protocols",
    "ObjectStore": "mcp_server.protocols",
    "build_server": "mcp_server.server",
    "McpSettings": "mcp_server.settings",
}

__all__ = [
    "AppState",
    "Components",
    "ConfigError",
    "GenerationError",
    "GenerationIndex",
    "GenerationList",
    "GenerationOutput",
    "GenerationSummary",
    "ImageScorer",
    "ImageSourceError",
    "InvalidInputError",
    "McpServerConfigError",
    "McpServerError",
    "McpSettings",
    "NotConfiguredError",
    "ObjectStore",
    "RecentQuery",
    "ScoreResult",
    "ScoringError",
    "ServerBusyError",
    "ServiceError",
    "SourceRefusedError",
    "UnknownJobError",
    "build_components",
    "build_server",
    "open_app_state",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
