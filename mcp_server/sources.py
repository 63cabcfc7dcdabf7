"""Turn ``score_image``'s ``image`` argument into bytes, safely.

Accepted forms, tried in this order:

1. ``data:image/...;base64,...`` URL → decoded (size-capped);
2. ``s3://bucket/key``, or an http(s) URL the object store recognises as its own (the configured MinIO/S3
   endpoint) → read through the store, with its credentials;
3. other ``http://`` / ``https://`` URLs → downloaded under :class:`~mcp_server.netguard.UrlPolicy`;
4. bare base64 whose decoded bytes start like an image (PNG, JPEG, GIF, WebP, BMP, TIFF) → decoded;
5. anything else is a local path (``file://`` URLs too): it must resolve, symlinks followed, to a regular file
   under one of the configured roots. ``..`` and symlinks that lead outside every root are refused.

Every failure raises an :class:`~mcp_server.errors.ImageSourceError` whose message names the problem and, where
useful, the setting that governs it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio

from mcp_server.errors import ImageSourceError, NotConfiguredError, SourceRefusedError
from mcp_server.netguard import UrlPolicy, human_bytes, redact_url
from mcp_server.protocols import ObjectStore

IMAGE_MAGIC: tuple[bytes, ...] = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")


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

    async def load(self, image: str) -> LoadedImage:
        text = image.strip()
        if not text:
            raise ImageSourceError("image is empty: pass a local path, an http(s) or s3:// URL, or base64 data")
        if len(text) > self.base64_max_bytes * 4 // 3 + 4096:
            raise ImageSourceError(
                f"image argument is {human_bytes(len(text))} long, more than the largest accepted base64 image "
                f"({human_bytes(self.base64_max_bytes)} decoded, COMFY_QUALITY_MCP_BASE64_MAX_BYTES); "
                "pass a URL or a path"
            )
        lowered = text[:16].lower()
        if lowered.startswith("data:"):
            return LoadedImage(self._data_url(text), "data: URL image", "data_url")
        if self.store is not None and self.store.handles(text):
            return LoadedImage(await self._from_store(text), redact_url(text), "object")
        if lowered.startswith("s3://"):
            raise NotConfiguredError(
                f"image {redact_url(text)}: s3:// URLs need the object store, and this server has none configured"
            )
        if lowered.startswith(("http://", "https://")):
            return LoadedImage(await self.policy.fetch(text), redact_url(text), "url")
        scheme = _SCHEME.match(text)
        if scheme and scheme.group(1).lower() != "file":
            raise ImageSourceError(
                f"image URL scheme {scheme.group(1)!r} is not supported: use http(s)://, s3://, data:, base64 data "
                "or a local path"
            )
        decoded = self._maybe_base64(text)
        if decoded is not None:
            return LoadedImage(decoded, "base64 image", "base64")
        if lowered.startswith("file://"):
            text = unquote(urlsplit(text).path)
        path = self._confine(text)
        return LoadedImage(await anyio.to_thread.run_sync(self._read_file, path), str(path), "path")

    # -- base64 -------------------------------------------------------------------------------------------
    def _decode(self, payload: str, what: str) -> bytes:
        limit = self.base64_max_bytes
        if len(payload) > (limit * 4) // 3 + 8:
            raise ImageSourceError(
                f"{what} is about {human_bytes(len(payload) * 3 // 4)} decoded, above the {human_bytes(limit)} "
                "limit (COMFY_QUALITY_MCP_BASE64_MAX_BYTES); pass a URL or a path instead"
            )
        compact = "".join(payload.split())
        altchars = b"-_" if ("-" in compact or "_" in compact) else None
        try:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageSourceError(f"{what} is not valid base64: {exc}") from exc
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
            raise ImageSourceError(f"data: URL has media type {media.split(';')[0]!r}; an image/* type is expected")
        return self._decode(payload, "data: URL image")

    def _maybe_base64(self, text: str) -> bytes | None:
        if len(text) < 32 or not _BASE64.match(text[:4096]):
            return None
        try:
            head = base64.b64decode("".join(text[:64].split())[:48], validate=False)
        except (binascii.Error, ValueError):
            return None
        if not head.startswith(IMAGE_MAGIC):
            return None
        return self._decode(text, "base64 image")

    # -- object store -------------------------------------------------------------------------------------
    async def _from_store(self, url: str) -> bytes:
        assert self.store is not None
        try:
            return await self.store.read(url, max_bytes=self.file_max_bytes)
        except ImageSourceError:
            raise
        except Exception as exc:  # the store's own error types: report their message, they name the object
            raise ImageSourceError(f"image {redact_url(url)} cannot be read from the object store: {exc}") from exc

    # -- local paths --------------------------------------------------------------------------------------
    def _confine(self, text: str) -> Path:
        if not self.roots:
            raise SourceRefusedError(
                f"image {text[:200]!r} looks like a local path, but this server reads no local files: its operator "
                "can allow folders with COMFY_QUALITY_MCP_ROOTS; or pass an http(s) URL or base64 data"
            )
        if "\x00" in text:
            raise ImageSourceError("image path contains a NUL byte")
        raw = Path(text).expanduser()
        roots = [r.resolve() for r in self.roots]
        candidate = Path(os.path.normpath(raw if raw.is_absolute() else roots[0] / raw))
        outside = SourceRefusedError(
            f"image path {text} is outside the allowed folders ({', '.join(str(r) for r in roots)}); "
            "'..' and symlinks are resolved before this check"
        )
        if not any(candidate.is_relative_to(root) for root in roots):
            raise outside  # decided before touching the file system: says nothing about files outside
        try:
            resolved = candidate.resolve(strict=True)
        except FileNotFoundError as exc:
            raise ImageSourceError(
                f"image file not found: {text} (image takes a path under the allowed folders, an http(s) or s3:// "
                "URL, or base64 data)"
            ) from exc
        except (OSError, RuntimeError) as exc:  # loops, permissions
            raise ImageSourceError(f"image path {text} cannot be resolved: {exc}") from exc
        if not any(resolved.is_relative_to(root) for root in roots):
            raise outside  # a symlink inside a root that leads out of every root
        return resolved

    def _read_file(self, path: Path) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise ImageSourceError(f"image file {path} cannot be opened: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageSourceError(f"image path {path} is not a regular file")
            if info.st_size > self.file_max_bytes:
                raise ImageSourceError(
                    f"image file {path} is {human_bytes(info.st_size)}, above the {human_bytes(self.file_max_bytes)} "
                    "limit (COMFY_QUALITY_MAX_IMAGE_BYTES)"
                )
            chunks, total = [], 0
            while chunk := os.read(fd, 1 << 20):
                total += len(chunk)
                if total > self.file_max_bytes:  # grew after the check
                    raise ImageSourceError(f"image file {path} is above the {human_bytes(self.file_max_bytes)} limit")
                chunks.append(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        if not data:
            raise ImageSourceError(f"image file {path} is empty")
        return data
