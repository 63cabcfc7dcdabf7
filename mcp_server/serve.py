"""Run the server on a transport: stdio (default), SSE or streamable HTTP.

* stdio: lines the SDK cannot parse are answered with a JSON-RPC error (:mod:`mcp_server.stdio`); the SDK
  lifespan opens the shared state *inside* the stdio transport, after the SDK has pointed fd 1 at stderr, so
  nothing a library prints while loading models can reach the protocol stream.
* SSE / HTTP: the shared state is opened once, before serving, and every connection (each SSE stream, each
  streamable-HTTP session) uses it. The listening socket is bound here (``port=0`` picks a free port) and the
  address is logged to stderr as ``listening on http://HOST:PORT/PATH`` once the socket accepts connections.
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.applications import Starlette

from comfy_quality.settings import Settings, tree_of
from mcp_server.lifespan import open_app_state
from mcp_server.server import build_server, http_app
from mcp_server.settings import McpSettings
from mcp_server.stdio import run_stdio
from serving import bind_socket
from serving import configure_logging as shared_configure_logging

log = logging.getLogger("mcp_server")


def configure_logging(level: str) -> None:
    """Log to stderr (stdout carries the protocol in stdio mode); quiet the chattier libraries."""
    quiet = ("httpx", "httpcore", "uvicorn.access", "mcp.server.streamable_http_manager", "sse_starlette")
    shared_configure_logging(level, quiet=quiet)


async def run(settings: Settings | McpSettings) -> None:
    """Serve on the configured transport. ``settings``: the process's settings tree (``python -m mcp_server``
    loads it once), or the ``mcp`` section alone."""
    tree = tree_of(settings, "mcp")
    settings = tree.mcp
    if settings.transport == "stdio":
        await run_stdio(build_server(tree))
        return
    settings.check_serving()
    sock = bind_socket(settings.host, settings.port)
    try:
        async with open_app_state(tree) as state:
            server = build_server(tree, state=state)
            app = http_app(server, settings)
            dashboard = mount_dashboard(app, tree)
            config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=3)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            path = settings.sse_path if settings.transport == "sse" else settings.http_path
            auth = "bearer token required" if settings.token() else "no auth (loopback only)"
            log.info("listening on http://%s:%d%s (%s, %s)", shown, port, path, settings.transport, auth)
            try:
                await uvicorn.Server(config).serve(sockets=[sock])
            finally:
                if dashboard is not None:
                    await dashboard.state.dashboard.aclose()
    finally:
        sock.close()


def mount_dashboard(app: Starlette, settings: Settings | McpSettings) -> Starlette | None:
    """Serve the quality dashboard under ``/dashboard`` on the same host and port (read-only, own access token:
    ``COMFY_QUALITY_DASHBOARD_TOKEN`` for a non-loopback bind; without one it is left out, with a warning).
    Its settings are the tree's ``dashboard`` section (its store the tree's ``storage``), bound where the server
    is."""
    tree = tree_of(settings, "mcp")
    mcp = tree.mcp
    if not mcp.dashboard:
        return None
    from dashboard.app import build_app
    from dashboard.errors import DashboardConfigError

    dash_settings = tree.dashboard.model_copy(update={"host": mcp.host, "port": mcp.port})
    try:
        dash_settings.check_serving()
    except DashboardConfigError as exc:
        log.warning("dashboard not mounted: %s", exc)
        return None
    dash = build_app(dash_settings)
    app.mount("/dashboard", dash)
    log.info("quality dashboard at /dashboard/")
    return dash
