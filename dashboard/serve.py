"""Serve the app with uvicorn on a socket bound here (``port=0`` picks a free one; the address is logged)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from dashboard.app import build_app
from dashboard.settings import DashboardSettings

log = logging.getLogger("dashboard")


def configure_logging(level: str) -> None:
    """Log to stderr; quiet uvicorn's per-request lines."""
    root = logging.getLogger()
    if not any(getattr(h, "_comfy_quality", False) for h in root.handlers):
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._comfy_quality = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(max(logging.WARNING, root.level))


def bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def run(settings: DashboardSettings) -> None:
    settings.check_serving()
    app = build_app(settings)
    sock = bind(settings.host, settings.port)
    try:
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=3)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        auth = "token required" if settings.token_value() else "no token"
        log.info("dashboard listening on http://%s:%d/ (%s, read-only)", shown, port, auth)
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()
