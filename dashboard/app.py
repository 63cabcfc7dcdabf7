"""``build_app(settings) -> Starlette``: the dashboard as an ASGI app, standalone or mounted under a prefix.

    app = build_app(DashboardSettings())                     # python -m dashboard serves exactly this
    outer = Starlette(routes=[Mount("/dashboard", app=build_app(settings)), ...])   # next to the MCP app

The store and the index are opened here (or passed in, to share the MCP server's); a mounted app whose
lifespan the outer app does not run works the same, its owned resources are then closed at process exit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard import api, images, pages
from dashboard.errors import DashboardError
from dashboard.security import SECURITY_HEADERS, GuardMiddleware
from dashboard.settings import DashboardSettings
from dashboard.state import DashboardState
from storage.errors import ObjectNotFoundError, StorageError, StorageIndexError
from storage.index import Index
from storage.store import Store

log = logging.getLogger("dashboard")
STATIC = Path(__file__).parent / "static"


def static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class CachedStatic(StaticFiles):
    """Static files; versioned URLs (``?v=<hash of the files>``) may be cached for a year."""

    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override]
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["cache-control"] = (
                "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
            )
        return response


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, DashboardError):
        return exc.status_code, str(exc)
    if isinstance(exc, ObjectNotFoundError):
        return 404, str(exc)
    if isinstance(exc, StorageIndexError) and "cursor" in str(exc):
        return 400, str(exc)
    if isinstance(exc, StorageError):
        log.warning("storage error: %s", exc)
        return 503, f"the store or the index failed: {exc}"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    log.exception("unexpected error", exc_info=exc)
    return 500, "internal error: see the dashboard's log"


async def handle_error(request: Request, exc: Exception) -> Response:
    status, message = _status_and_message(exc)
    full = request.scope.get("path", "/")
    root = request.scope.get("root_path", "")
    path = full[len(root) :] if root and full.startswith(root) else full
    response: Response | None = None
    wants_html = "text/html" in request.headers.get("accept", "")
    if wants_html and not path.startswith(("/api/", "/images/", "/thumbnails/", "/static/")):
        try:
            response = pages.error_page(request, status, message)
        except Exception:  # the error page itself failed: fall back to JSON
            log.exception("cannot render the error page")
    if response is None:
        response = api.json_response({"error": message}, status)
    for key, value in SECURITY_HEADERS.items():  # also on 500s, answered outside the guard middleware
        response.headers.setdefault(key, value)
    return response


def build_app(
    settings: DashboardSettings | None = None, *, store: Store | None = None, index: Index | None = None
) -> Starlette:
    """The dashboard app. ``store`` / ``index``: share already open ones (they are then not closed here)."""
    settings = settings or DashboardSettings()
    state = DashboardState.open(settings, store=store, index=index)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.aclose()

    routes = [
        Route("/", pages.gallery, name="gallery"),
        Route("/generations/{generation_id}", pages.generation, name="generation"),
        Route("/charts", pages.charts, name="charts"),
        Route("/api/generations", api.list_generations, name="api_generations"),
        Route("/api/generations/{generation_id}", api.get_generation, name="api_generation"),
        Route("/api/generations/{generation_id}/metadata", api.get_metadata, name="api_metadata"),
        Route("/api/stats/grades", api.grade_stats, name="api_grades"),
        Route("/api/stats/trend", api.trend_stats, name="api_trend"),
        Route("/api/stats/dimensions", api.dimension_stats, name="api_dimensions"),
        Route("/api/stats/strategies", api.strategy_stats, name="api_strategies"),
        Route("/api/facets", api.facets, name="api_facets"),
        Route("/api/health", api.health, name="api_health"),
        Route("/images/{generation_id}/{which}", images.image, name="image"),
        Route("/thumbnails/{generation_id}/{which}.jpg", images.thumbnail, name="thumbnail"),
        Mount("/static", app=CachedStatic(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(GuardMiddleware, settings=settings),
            Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6),
        ],
        exception_handlers={
            Exception: handle_error,
            HTTPException: handle_error,
            DashboardError: handle_error,
            StorageError: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.dashboard = state
    app.state.templates = pages.make_templates()
    app.state.static_version = static_version()
    return app
