"""Turn ``score_image``'s ``image`` argument into bytes, safely.

How an argument is classified (:func:`classify`), decided from its text alone, before anything is read:

1. ``data:...`` → a data URL (must be ``image/*;base64``), decoded (size-capped);
2. ``scheme://...`` → a URL: ``s3://bucket/key`` and the object store's own http(s) URLs are read through the
   store, and only from the allowed buckets (``COMFY_QUALITY_MCP_S3_BUCKETS``, default: the store's bucket);
   other ``http(s)://`` URLs are downloaded under :class:`~mcp_server.netguard.UrlPolicy`; ``file://`` URLs are
   local paths; any other scheme is refused. A URL that cannot be parsed (``http://[::1/x.png``, a
   full-width ``／`` in the host) is a clear "malformed URL" error;
3. ``//...`` → refused (a URL without its scheme, or a path with a doubled slash: both ambiguous);
4. base64 → decoded and checked to be a supported image format. A text is base64 when it is made of the
   base64 alphabet only (line breaks allowed) and is at least 64 characters long, or when it starts like the
   base64 of a known file type (``iVBORw0KGgo`` PNG, ``/9j/`` JPEG, ``PHN2Zy`` SVG…) and is at least 16
   characters long; so "invalid base64" and "not a supported image format (SVG)" are reported as such,
   never as a missing file;
5. anything else is a local path: it must resolve, symlinks followed, to a regular file under one of the
   configured roots, with a single link (a hard link may lead to a file outside: refused unless
   ``COMFY_QUALITY_MCP_ALLOW_HARDLINKS``). ``..`` and symlinks that lead outside every root are refused before
   the file system is touched, so nothing is revealed about files outside the roots.

Every failure raises an :class:`~mcp_server.errors.ImageSourceError` whose message names the problem and, where
useful, the setting that governs it; the argument itself is quoted only as a short escaped
:func:`~mcp_server.excerpt.excerpt`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import anyio

from mcp_server.errors import ImageSourceError, NotConfiguredError, SourceRefusedError
from mcp_server.excerpt import excerpt
from mcp_server.netguard import UrlPolicy, human_bytes, redact_text, redact_url
from mcp_server.paths import PATH_MAX, confine, read_confined
from mcp_server.protocols import ObjectStore
from storage.errors import (
    InvalidKeyError,
    InvalidObjectURLError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
)

IMAGE_MAGIC: tuple[bytes, ...] = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
#: what decoded bytes are, when they are not an image this server reads (for "not a supported image format")
OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"<svg", "SVG"), (b"<?xml", "XML/SVG"), (b"<!doctype html", "HTML"), (b"<html", "HTML"),
    (b"%!ps", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"), (b"%pdf", "PDF"), (b"pk\x03\x04", "ZIP"), (b"\x1f\x8b", "gzip"),
    (b"8bps", "PSD"), (b"\x00\x00\x00\x0cjxl ", "JPEG XL"), (b"\xff\x0a", "JPEG XL"), (b"{", "JSON"),
)  # fmt: skip
SUPPORTED_FORMATS = "PNG, JPEG, GIF, WebP, BMP, TIFF"
#: base64 openings of known file types (images and the formats above)
B64_PREFIXES: tuple[str, ...] = (
    "iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "SUkqAA", "TU0AKg", "PHN2Zy", "PD94bWwg", "PCFET0NUWVBF",
    "PCFkb2N0eXBl", "PGh0bWw", "JVBERi0", "JSFQUy", "xdDTxg", "AAABAA", "AAACAA",
)  # fmt: skip
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_B64_TEXT = re.compile(r"[A-Za-z0-9+/_\-\r\n]+={0,2}\s*")
_B64_CHAR = re.compile(r"[A-Za-z0-9+/_\-=\s]")

SourceKind = Literal["data_url", "url", "s3", "base64", "path", "file_url", "scheme_relative", "other_scheme"]


def classify(text: str) -> SourceKind:
    """What an (already stripped, non-empty) ``image`` argument is, from its text alone."""
    if text[:5].lower() == "data:":
        return "data_url"
    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name in ("http", "https"):
            return "url"
        if name == "s3":
            return "s3"
        if name == "file":
            return "file_url"
        return "other_scheme"
    if text.startswith("//"):
        return "scheme_relative"
    mixed = ("/" in text[:8192] or "+" in text[:8192]) and ("-" in text[:8192] or "_" in text[:8192])
    if (
        len(text) >= 64
        and not mixed  # '/' or '+' with '-' or '_': no base64 alphabet has both; a path like /tmp/my-dir/x
        and _B64_TEXT.fullmatch(text[:8192])
        and (len(text) <= 8192 or _B64_TEXT.fullmatch(text))
    ):
        return "base64"
    if len(text) >= 16 and text.startswith(B64_PREFIXES) and "." not in text[-6:]:
        return "base64"  # looks like base64 of a file but is short or has stray characters: say so
    return "path"


def sniff_format(data: bytes) -> str | None:
    """None for a supported image; otherwise a short name of what the bytes look like."""
    if data.startswith(IMAGE_MAGIC):
        if data.startswith(b"RIFF") and data[8:12] != b"WEBP":
            return "RIFF but not WebP"
        return None
    head = data[:64].lstrip().lower()
    for magic, name in OTHER_FORMATS:
        if head.startswith(magic) or data[:16].lower().startswith(magic):
            return name
    if b"<svg" in data[:1024].lower():
        return "SVG"
    return "unrecognised data"


@dataclass
class LoadedImage:
    data: bytes
    name: str
    """What to call the image in reports and errors (never a secret: URLs are redacted)."""
    kind: str
    """'path', 'url', 'object', 'base64' or 'data_url'."""


@dataclass
class ImageSources:
    """Reads images from every accepted form under the configured rules."""

    roots: list[Path] = field(default_factory=list)
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    store: ObjectStore | None = None
    base64_max_bytes: int = 16 * 1024 * 1024
    file_max_bytes: int = 64 * 1024 * 1024
    s3_buckets: list[str] | None = None
    """Buckets ``s3://`` images may come from; None: the store's own bucket only."""
    allow_hardlinks: bool = False

    async def load(self, image: str) -> LoadedImage:
        if not isinstance(image, str):
            raise ImageSourceError(f"image must be a string (a path, URL or base64 data), not {excerpt(image)}")
        text = image.strip()
        if not text:
            raise ImageSourceError("image is empty: pass a local path, an http(s) or s3:// URL, or base64 data")
        if len(text) > self.base64_max_bytes * 4 // 3 + 4096:
            raise ImageSourceError(
                f"image argument is {human_bytes(len(text))} long, more than the largest accepted base64 image "
                f"({human_bytes(self.base64_max_bytes)} decoded, COMFY_QUALITY_MCP_BASE64_MAX_BYTES); "
                "pass a URL or a path"
            )
        kind = classify(text)
        if kind == "data_url":
            return LoadedImage(self._checked(self._data_url(text), "data: URL image"), "data: URL image", "data_url")
        if kind == "base64":
            decoded = self._base64_or_path(text)
            if decoded is not None:
                return LoadedImage(decoded, "base64 image", "base64")
            kind = "path"
        if kind == "scheme_relative":
            raise ImageSourceError(
                f"image {excerpt(text)} starts with '//': give a full http(s):// or s3:// URL, or a path with a "
                "single leading '/'"
            )
        if kind == "other_scheme":
            scheme = text.split("://", 1)[0]
            raise ImageSourceError(
                f"image URL scheme {excerpt(scheme, 20)} is not supported: use http(s)://, s3://, data:, base64 "
                "data or a local path"
            )
        if kind in ("url", "s3"):
            return await self._from_url(text, kind)
        if kind == "file_url":
            try:
                text = unquote(urlsplit(text).path)
            except ValueError as exc:
                raise ImageSourceError(f"image {excerpt(text)} is a malformed file:// URL") from exc
        path = self._confine(text)
        return LoadedImage(await anyio.to_thread.run_sync(self._read_file, path), str(path), "path")

    async def _from_url(self, text: str, kind: str) -> LoadedImage:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError as exc:
            raise ImageSourceError(f"image URL {excerpt(text)} is malformed ({excerpt(str(exc), 80)[1:-1]})") from exc
        if self.store is not None and self._store_handles(text):
            return LoadedImage(await self._from_store(text), redact_url(text), "object")
        if kind == "s3":
            raise NotConfiguredError(
                f"image {redact_url(text)}: s3:// URLs need the object store, and this server has none configured"
            )
        return LoadedImage(await self.policy.fetch(text), redact_url(text), "url")

    def _base64_or_path(self, text: str) -> bytes | None:
        """The decoded image; None when ``text`` is better read as a path (it has '/' separators, is short enough
        for one, and is not valid base64 of any known format: e.g. ``/srv/images/Cat/Photo``)."""
        path_like = "/" in text and len(text) <= PATH_MAX and not text.startswith(B64_PREFIXES)
        try:
            data = self._decode(text, "base64 image")
        except ImageSourceError:
            if path_like:
                return None
            raise
        problem = sniff_format(data)
        if problem is None:
            return data
        if problem == "unrecognised data" and path_like:
            return None
        too_long = " (and, at over 4096 characters, it is too long for a path)" if "/" in text else ""
        raise ImageSourceError(
            f"base64 image is not a supported image format ({problem}); supported: {SUPPORTED_FORMATS}{too_long}"
        )

    def _checked(self, data: bytes, what: str) -> bytes:
        problem = sniff_format(data)
        if problem is not None:
            raise ImageSourceError(
                f"{what} is not a supported image format ({problem}); supported: {SUPPORTED_FORMATS}"
            )
        return data

    # -- base64 -------------------------------------------------------------------------------------------
    def _decode(self, payload: str, what: str) -> bytes:
        limit = self.base64_max_bytes
        if len(payload) > (limit * 4) // 3 + 8:
            raise ImageSourceError(
                f"{what} is about {human_bytes(len(payload) * 3 // 4)} decoded, above the {human_bytes(limit)} "
                "limit (COMFY_QUALITY_MCP_BASE64_MAX_BYTES); pass a URL or a path instead"
            )
        compact = "".join(payload.split())
        bad = next((i for i, ch in enumerate(compact) if not _B64_CHAR.match(ch)), None)
        if bad is not None:
            raise ImageSourceError(
                f"{what} is invalid base64: character {excerpt(compact[bad], 4)} at position {bad} is not in the "
                "base64 alphabet (A-Z a-z 0-9 + / or - _, '=' padding)"
            )
        stripped = compact.rstrip("=")
        if "=" in stripped:
            raise ImageSourceError(f"{what} is invalid base64: '=' padding in the middle of the data")
        altchars = b"-_" if ("-" in compact or "_" in compact) else None
        try:
            data = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageSourceError(f"{what} is invalid base64 ({str(exc)[:120]})") from exc
        if not data:
            raise ImageSourceError(f"{what} decodes to nothing")
        return data

    def _data_url(self, text: str) -> bytes:
        header, sep, payload = text.partition(",")
        if not sep:
            raise ImageSourceError("data: URL has no ',' before its payload (expected data:image/png;base64,...)")
        media = header[5:].lower()
        if ";base64" not in media:
            raise ImageSourceError("data: URL must be base64-encoded (data:image/png;base64,...)")
        if media and not media.startswith(("image/", ";")):
            raise ImageSourceError(
                f"data: URL has media type {excerpt(media.split(';')[0], 40)}; an image/* type is expected"
            )
        return self._decode(payload, "data: URL image")

    # -- object store -------------------------------------------------------------------------------------
    def _store_handles(self, url: str) -> bool:
        assert self.store is not None
        try:
            return bool(self.store.handles(url))
        except ValueError:  # a store adapter that parses the URL itself
            return False

    def _allowed_buckets(self) -> list[str]:
        if self.s3_buckets:
            return list(self.s3_buckets)
        own = getattr(self.store, "bucket", None)
        return [own] if isinstance(own, str) and own else []

    def _bucket_of(self, url: str) -> str | None:
        locate = getattr(self.store, "bucket_of", None)
        if callable(locate):
            try:
                found = locate(url)
            except Exception:
                return None
            return found if isinstance(found, str) else None
        parts = urlsplit(url)
        if parts.scheme == "s3":
            return parts.netloc
        return parts.path.lstrip("/").split("/", 1)[0] or None

    async def _from_store(self, url: str) -> bytes:
        assert self.store is not None
        shown = redact_url(url)
        missing = SourceRefusedError(
            f"image {shown}: not allowed or not found (s3:// images are read from the buckets "
            f"{', '.join(self._allowed_buckets()) or '(none)'} only, COMFY_QUALITY_MCP_S3_BUCKETS)"
        )
        if self._bucket_of(url) not in self._allowed_buckets():
            raise missing  # decided before asking the store: says nothing about other buckets
        try:
            return await self.store.read(url, max_bytes=self.file_max_bytes)
        except ImageSourceError:
            raise
        # absent, or a key/URL the store refuses: the same answer as a bucket not allowed (nothing is revealed)
        except (ObjectNotFoundError, InvalidKeyError, InvalidObjectURLError, FileNotFoundError, PermissionError) as exc:
            raise missing from exc
        except ObjectTooLargeError as exc:
            raise ImageSourceError(
                f"image {shown} is larger than this server accepts ({self.file_max_bytes} bytes)"
            ) from exc
        except (StorageError, OSError) as exc:  # the store unreachable, a read that failed: the store's message
            raise ImageSourceError(
                f"image {shown} cannot be read from the object store: {redact_text(str(exc))[:300]}"
            ) from exc

    # -- local paths --------------------------------------------------------------------------------------
    def _confine(self, text: str) -> Path:
        if not self.roots:
            raise SourceRefusedError(
                f"image {excerpt(text)} looks like a local path, but this server reads no local files: its operator "
                "can allow folders with COMFY_QUALITY_MCP_ROOTS; or pass an http(s) URL or base64 data"
            )
        return confine(text, self.roots)

    def _read_file(self, path: Path) -> bytes:
        return read_confined(
            path, max_bytes=self.file_max_bytes, allow_hardlinks=self.allow_hardlinks, roots=self.roots
        )
