"""``build_server(settings)``: the comfy-quality MCP server, and the HTTP apps for its SSE / streamable HTTP
transports (DNS-rebinding protection on, bearer token when configured)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import ValidationError
from starlette.applications import Starlette

from comfy_quality.settings import Settings, tree_of
from mcp_server import tools
from mcp_server.boundary import translate
from mcp_server.excerpt import excerpt
from mcp_server.grade_texts import configured_grading, describe
from mcp_server.lifespan import AppState, Components, open_app_state
from mcp_server.settings import McpSettings
from quality.composite import CompositeConfig
from serving import is_loopback_host

SERVER_NAME = "comfy-quality"
INSTRUCTIONS = (
    "comfy-quality scores images and generates good ones. score_image grades any image (A–F, composite 0–10 over "
    "technical, aesthetic, prompt adherence and detail). generate_quality renders with ComfyUI, scores every "
    "attempt and retries until the quality threshold is met; long jobs return a job_id to poll with "
    "generation_status. Images come back as URLs, with at most a small preview."
)
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


MAX_ERROR_CHARS = 1000
TOOL_NAMES = ("score_image", "generate_quality", "generation_status", "cancel_generation", "list_generations")


def argument_problems(exc: ValidationError, limit: int = 5) -> str:
    """Which arguments are wrong and why, without the values (they are the caller's, and may be huge)."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        problems.append(f"{excerpt(where, 80)[1:-1]}: {str(err['msg'])[:200]}")
    more = exc.error_count() - limit
    return "invalid arguments: " + "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


class ShortLogRecords(logging.Filter):
    """Cuts log messages at 2,000 characters: the SDK logs a failed call's tool name and error text as given
    (a 5 MB tool name would otherwise land whole in the server log)."""

    LIMIT = 2000

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > self.LIMIT:
            record.msg, record.args = message[: self.LIMIT] + f"… ({len(message):,} characters)", None
        return True


def _shorten_sdk_logs() -> None:
    for name in ("mcp.server.mcpserver.server", "mcp.server.lowlevel.server", "mcp.server.mcpserver.tools"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ShortLogRecords) for f in logger.filters):
            logger.addFilter(ShortLogRecords())


class QualityServer(MCPServer[AppState]):
    """The SDK server, with tool errors kept short: argument validation errors name the fields and problems but
    not the values (the SDK's text quotes the values), and no tool error message exceeds
    :data:`MAX_ERROR_CHARS` characters. Errors of the packages below and unexpected exceptions are answered by
    :func:`mcp_server.boundary.translate` (one table for every tool)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, UnexpectedToolError):
                raise
            error = translate(name, cause)
            message = str(error)
            if len(message) > MAX_ERROR_CHARS:
                error = type(error)(message[: MAX_ERROR_CHARS - 1] + "…")
            raise error from cause
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                tool = excerpt(name, 40)[1:-1]
                raise ToolError(f"Error executing tool {tool}: {argument_problems(cause)}") from cause
            message = str(exc)
            if message == f"Unknown tool: {name}":
                raise ToolError(f"unknown tool {excerpt(name, 40)}: the tools are {', '.join(TOOL_NAMES)}") from cause
            if len(message) > MAX_ERROR_CHARS:
                raise ToolError(message[: MAX_ERROR_CHARS - 1] + "…") from cause
            raise


class StaticTokenVerifier:
    """Accepts exactly one bearer token (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="static", client_id="comfy-quality-client", scopes=[])
        return None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("comfy-quality")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _tree(settings: Settings | McpSettings | None, state: AppState | None) -> Settings:
    """The tree the server is built from: the open state's when ``settings`` is absent or is that tree or its
    ``mcp`` section (nothing is read twice), else ``settings``'s."""
    if state is not None and state.tree is not None and settings in (None, state.tree, state.tree.mcp):
        return state.tree
    return tree_of(settings, "mcp")


def build_server(
    settings: Settings | McpSettings | None = None,
    *,
    state: AppState | None = None,
    components: Components | None = None,
    grading: CompositeConfig | None = None,
) -> MCPServer[AppState]:
    """The MCP server. With ``state``, every connection shares that (already open) state; without it, the SDK
    lifespan opens one per run (from ``components``, or :func:`~mcp_server.lifespan.build_components`). The tool
    descriptions explain the grades of ``grading`` (default: :func:`configured_grading` of the tree).
    ``settings``: the process's settings tree, or its ``mcp`` section alone (default: read from the environment)."""
    tree = _tree(settings, state)
    settings = tree.mcp
    grading = grading or configured_grading(tree)
    _shorten_sdk_logs()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        if state is not None:
            yield state
            return
        async with open_app_state(tree, components) as opened:
            yield opened

    token = settings.token()
    server: MCPServer[AppState] = QualityServer(
        SERVER_NAME,
        title="comfy-quality: image quality scoring and quality-checked generation",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level=settings.log_level,
        token_verifier=StaticTokenVerifier(token) if token else None,
        # issuer_url is only used when the server is also an OAuth authorization server (it is not)
        auth=AuthSettings(issuer_url="http://localhost", resource_server_url=None) if token else None,
    )
    server.add_tool(
        tools.score_image,
        title="Score an image",
        description=describe(tools.SCORE_IMAGE_DESCRIPTION, grading),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, idempotent_hint=True),
    )
    server.add_tool(
        tools.generate_quality,
        title="Generate a quality-checked image",
        description=describe(tools.GENERATE_DESCRIPTION, grading),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
    )
    server.add_tool(
        tools.generation_status,
        title="Generation job status",
        description=tools.STATUS_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
    )
    server.add_tool(
        tools.cancel_generation,
        title="Cancel a generation job",
        description=tools.CANCEL_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True),
    )
    server.add_tool(
        tools.list_generations,
        title="List generations",
        description=tools.LIST_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True),
    )
    return server


def transport_security(settings: McpSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection, always on: loopback names, the bind host, and the configured extras."""
    hosts = list(LOOPBACK_HOSTS)
    origins = list(LOOPBACK_ORIGINS)
    host = settings.host
    if not is_loopback_host(host) and host not in ("0.0.0.0", "::", ""):
        shown = f"[{host}]" if ":" in host else host
        hosts.append(f"{shown}:*")
        origins += [f"http://{shown}:*", f"https://{shown}:*"]
    hosts += settings.allowed_hosts
    origins += settings.allowed_origins
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def request_body_limit(settings: McpSettings) -> int:
    """Large enough for the biggest accepted base64 image (4/3 of its size) plus the JSON around it."""
    return max(DEFAULT_MAX_REQUEST_BODY_SIZE, settings.base64_max_bytes * 4 // 3 + 64 * 1024)


def http_app(server: MCPServer[AppState], settings: McpSettings) -> Starlette:
    """The Starlette app for ``settings.transport`` (``sse`` or ``http``)."""
    security = transport_security(settings)
    limit = request_body_limit(settings)
    if settings.transport == "sse":
        return server.sse_app(
            sse_path=settings.sse_path,
            message_path="/messages/",
            max_request_body_size=limit,
            transport_security=security,
            host=settings.host,
        )
    return server.streamable_http_app(
        streamable_http_path=settings.http_path,
        stateless_http=settings.stateless_http,
        max_request_body_size=limit,
        transport_security=security,
        host=settings.host,
    )
