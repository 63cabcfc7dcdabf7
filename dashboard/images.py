"""Images and thumbnails of generations and attempts, read through the store (never by client-given key).

``GET /images/{id}/{which}`` and ``GET /thumbnails/{id}/{which}.jpg`` with ``which`` = ``best`` or
``attempt-N``; the key comes from the index. Both answer ``304`` to a matching ``If-None-Match`` without
reading the store. Thumbnails accept ``?size=`` from :data:`THUMBNAIL_SIZES` (plus the configured size).
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from dashboard.api import state_of
from dashboard.errors import BadRequestError
from dashboard.thumbs import etag_for, thumbnail_name
from storage.layout import image_facts

THUMBNAIL_SIZES = (160, 320, 640)
CACHE_CONTROL = "private, max-age=86400"


def _not_modified(request: Request, etag: str) -> bool:
    offered = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") == etag for tag in offered.split(","))


def _size(request: Request, default: int) -> int:
    value = request.query_params.get("size")
    if not value:
        return default
    allowed = sorted({*THUMBNAIL_SIZES, default})
    if not value.isdigit() or int(value) not in allowed:
        raise BadRequestError(f"size={value!r} is not one of {', '.join(map(str, allowed))}", parameter="size")
    return int(value)


async def thumbnail(request: Request) -> Response:
    state = state_of(request)
    size = _size(request, state.settings.thumbnail_size)
    ref = await state.image_ref(request.path_params["generation_id"], request.path_params["which"])
    etag = etag_for(thumbnail_name(ref.key, size))
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    thumb = await state.thumbnails.get(ref.key, size, lambda: state.image_bytes(ref.key))
    return Response(thumb.data, media_type=thumb.content_type, headers=headers)


async def image(request: Request) -> Response:
    state = state_of(request)
    ref = await state.image_ref(request.path_params["generation_id"], request.path_params["which"])
    etag = '"i' + hashlib.sha256(ref.key.encode()).hexdigest()[:32] + '"'
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = await state.image_bytes(ref.key)
    facts = image_facts(data)
    if facts.format is None or not facts.content_type.startswith("image/") or facts.format == "svg":
        headers["content-disposition"] = "attachment"
        return Response(data, media_type="application/octet-stream", headers=headers)
    return Response(data, media_type=facts.content_type, headers=headers)
