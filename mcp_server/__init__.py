"""comfy-quality's MCP server: ``score_image``, ``generate_quality`` and job tools for agents, over stdio, SSE and
streamable HTTP.

    from mcp_server import build_server, McpSettings
    server = build_server(McpSettings())          # an mcp.server.mcpserver.MCPServer
    server.run()                                  # stdio

The wiring point for the orchestrator, store and index is :func:`mcp_server.lifespan.build_components`.
"""

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
