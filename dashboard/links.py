"""URLs of the app's own routes that keep working under a path prefix (``Mount('/dashboard', app)`` or a
proxy's ``root_path``): every link is ``root_path + route path``, never a bare absolute path."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dashboard.views import Links


def path_for(request: Request, name: str, **params: Any) -> str:
    root = request.scope.get("root_path", "").rstrip("/")
    return root + str(request.app.url_path_for(name, **{k: str(v) for k, v in params.items()}))


def static_path(request: Request, filename: str) -> str:
    version = request.app.state.static_version
    return f"{path_for(request, 'static', path=filename)}?v={version}"


def generation_links(request: Request, generation_id: str, *, has_image: bool) -> Links:
    return Links(
        page=path_for(request, "generation", generation_id=generation_id),
        api=path_for(request, "api_generation", generation_id=generation_id),
        metadata=path_for(request, "api_metadata", generation_id=generation_id),
        image=path_for(request, "image", generation_id=generation_id, which="best") if has_image else None,
        thumbnail=path_for(request, "thumbnail", generation_id=generation_id, which="best") if has_image else None,
    )


def attempt_links(request: Request, generation_id: str, attempt: int) -> Links:
    which = f"attempt-{attempt}"
    return Links(
        image=path_for(request, "image", generation_id=generation_id, which=which),
        thumbnail=path_for(request, "thumbnail", generation_id=generation_id, which=which),
    )
