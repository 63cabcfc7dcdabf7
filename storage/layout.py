"""Key layout, key safety, object URLs and image facts: the pure helpers every store shares.

Layout (identical for the local folder and the S3 bucket, so one can be mirrored into the other)::

    generations/YYYY/MM/DD/<generation_id>/best.<ext>        the kept image
    generations/YYYY/MM/DD/<generation_id>/attempt-<N>.<ext> other attempts' images (optional)
    generations/YYYY/MM/DD/<generation_id>/metadata.json     the sidecar (written last: its presence means
                                                             the generation is complete)
    ids/<generation_id>.json                                 pointer {"metadata_key": ...} so a generation
                                                             can be found by id without listing

The date is the UTC date of the metadata ``timestamp``.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

from PIL import Image, UnidentifiedImageError

from storage.errors import InvalidKeyError, InvalidObjectURLError
from storage.metadata import GENERATION_ID_PATTERN

GENERATIONS_PREFIX = "generations/"
IDS_PREFIX = "ids/"
METADATA_NAME = "metadata.json"

_ID_RE = re.compile(GENERATION_ID_PATTERN)
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_generation_id(generation_id: str) -> str:
    if not _ID_RE.match(generation_id):
        raise InvalidKeyError(
            f"generation id {generation_id!r} is not valid: use 1–128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return generation_id


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`InvalidKeyError`."""
    if not key or len(key) > 1024:
        raise InvalidKeyError(f"object key must be 1–1024 characters, got {len(key)}")
    if key.startswith("/") or _BAD_KEY_CHARS.search(key):
        raise InvalidKeyError(
            f"object key {key!r} must be relative and contain no control characters or '\\'"
        )
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"object key {key!r} has an empty, '.' or '..' path segment")
    return key


def generation_prefix(generation_id: str, timestamp: datetime) -> str:
    check_generation_id(generation_id)
    day = timestamp.astimezone(UTC) if timestamp.tzinfo is not None else timestamp
    return f"{GENERATIONS_PREFIX}{day:%Y/%m/%d}/{generation_id}/"


def best_key(generation_id: str, timestamp: datetime, ext: str) -> str:
    return f"{generation_prefix(generation_id, timestamp)}best.{ext}"


def attempt_key(generation_id: str, timestamp: datetime, attempt: int, ext: str) -> str:
    if attempt < 1:
        raise InvalidKeyError(f"attempt numbers start at 1, got {attempt}")
    return f"{generation_prefix(generation_id, timestamp)}attempt-{attempt}.{ext}"


def metadata_key(generation_id: str, timestamp: datetime) -> str:
    return f"{generation_prefix(generation_id, timestamp)}{METADATA_NAME}"


def pointer_key(generation_id: str) -> str:
    return f"{IDS_PREFIX}{check_generation_id(generation_id)}.json"


def is_metadata_key(key: str) -> bool:
    return key.startswith(GENERATIONS_PREFIX) and key.endswith("/" + METADATA_NAME)


def quote_key(key: str) -> str:
    return quote(key, safe="/")


@dataclass(frozen=True)
class ImageFacts:
    """What the bytes say about themselves (``format`` is ``None`` when they are not a readable image)."""

    format: str | None
    content_type: str
    ext: str
    width: int | None
    height: int | None
    size_bytes: int
    sha256: str


_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff", "BMP": "bmp"}
_CT_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def image_facts(data: bytes, content_type: str | None = None) -> ImageFacts:
    """Format, size and checksum from the image header; an explicit ``content_type`` wins for the MIME."""
    fmt: str | None = None
    width = height = None
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    detected = Image.MIME.get(fmt) if fmt else None
    ctype = content_type or detected or "application/octet-stream"
    ext = _EXT.get(fmt or "", (fmt or "").lower()) or _CT_EXT.get(ctype, "bin")
    return ImageFacts(
        format=fmt.lower() if fmt else None,
        content_type=ctype,
        ext=ext,
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


@dataclass(frozen=True)
class ObjectRef:
    """A bucket and a key, parsed from a URL."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _host_port(netloc_scheme: tuple[str, str]) -> str:
    netloc, scheme = netloc_scheme
    netloc = netloc.rsplit("@", 1)[-1].lower()
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc += ":443" if scheme == "https" else ":80"
    return netloc


def normalize_endpoint(endpoint: str, *, secure: bool = False) -> tuple[str, bool]:
    """``'http://host:9000'`` or ``'host:9000'`` → (``'host:9000'``, secure). A scheme decides ``secure``."""
    endpoint = endpoint.strip().rstrip("/")
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise InvalidObjectURLError(
                f"S3 endpoint {endpoint!r} must be 'host:port' or 'http(s)://host:port' without a path"
            )
        return parts.netloc, parts.scheme == "https"
    if not endpoint or "/" in endpoint:
        raise InvalidObjectURLError(f"S3 endpoint {endpoint!r} must be 'host:port' or 'http(s)://host:port'")
    return endpoint, secure


def parse_object_url(url: str, *, endpoint: str | None = None, secure: bool = False) -> ObjectRef:
    """Bucket and key of ``s3://bucket/key`` or an endpoint URL ``http(s)://endpoint/bucket/key``.

    With ``endpoint`` (``'host:port'`` or ``'http://host:port'``), an http(s) URL must point at that endpoint;
    virtual-hosted URLs (``http://bucket.endpoint/key``) are then understood too. Query strings (presigned
    URLs) are ignored; the key is URL-decoded.
    """
    parts = urlsplit(url.strip())
    if parts.scheme == "s3":
        bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    elif parts.scheme in ("http", "https"):
        path = unquote(parts.path.lstrip("/"))
        host = _host_port((parts.netloc, parts.scheme))
        expected = None
        if endpoint is not None:
            netloc, ep_secure = normalize_endpoint(endpoint, secure=secure)
            expected = _host_port((netloc, "https" if ep_secure else "http"))
        if expected is not None and host != expected:
            ep_host = expected.rsplit(":", 1)[0]
            sub = host.rsplit(":", 1)[0]
            if sub.endswith("." + ep_host) and host.rsplit(":", 1)[1] == expected.rsplit(":", 1)[1]:
                bucket, key = sub[: -len(ep_host) - 1], path
            else:
                raise InvalidObjectURLError(
                    f"URL {url!r} does not point at the configured S3 endpoint {endpoint!r}; "
                    "use s3://bucket/key or a URL of that endpoint"
                )
        else:
            bucket, _, key = path.partition("/")
    else:
        raise InvalidObjectURLError(
            f"cannot read {url!r}: expected s3://bucket/key or http(s)://endpoint/bucket/key"
        )
    if not bucket or not key:
        raise InvalidObjectURLError(f"URL {url!r} names no object: both a bucket and a key are needed")
    try:
        check_key(key)
    except InvalidKeyError as exc:
        raise InvalidObjectURLError(f"URL {url!r} has an unusable key: {exc}") from exc
    return ObjectRef(bucket=bucket, key=key)
