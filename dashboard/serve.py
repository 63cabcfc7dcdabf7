"""Serve the app with uvicorn on a socket bound here (``port=0`` picks a free one; the address is logged)."""

from __future__ import annotations

import logging

import uvicorn

from dashboard.app import build_app
from dashboard.settings import DashboardSettings
from serving import bind_socket
from serving import configure_logging as shared_configure_logging

log = logging.getLogger("dashboard")


def configure_logging(level: str) -> None:
    """Log to stderr; quiet uvicorn's per-request lines."""
    shared_configure_logging(level, quiet=("uvicorn.access",))


async def run(settings: DashboardSettings) -> None:
    settings.check_serving()
    app = build_app(settings)
    sock = bind_socket(settings.host, settings.port)
    try:
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=3)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        auth = "token required" if settings.token_value() else "no token"
        log.info("dashboard listening on http://%s:%d/ (%s, read-only)", shown, port, auth)
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()
