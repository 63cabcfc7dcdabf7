"""Thumbnails: made once with Pillow, kept in a size-bounded disk cache, served with an ETag.

* A thumbnail is named by a hash of (format version, image key, size, image SHA-256 when known): store keys
  of generations never change content, so the name is also the ETag and a browser revalidation costs no
  store read and no decoding.
* Files are written atomically (temp file + rename), so concurrent processes sharing the folder never read a
  torn file. Reads refresh the file's mtime; when the folder grows past ``max_bytes`` the least recently
  used files are deleted until it is under 80 % of the bound.
* Work is bounded: at most ``workers`` images are decoded at once (in threads), the same thumbnail requested
  twice at once is made once, and images over ``max_pixels`` are refused instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from dashboard.errors import DashboardImageError

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
CONTENT_TYPE = "image/jpeg"
DEFAULT_MAX_PIXELS = 80_000_000


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    etag: str
    content_type: str = CONTENT_TYPE


def thumbnail_name(key: str, size: int, sha256: str | None = None) -> str:
    raw = f"{FORMAT_VERSION}|{key}|{size}|{sha256 or ''}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def etag_for(name: str) -> str:
    return f'"t{name}"'


def make_thumbnail(data: bytes, size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A JPEG whose longest side is at most ``size`` (never enlarged), EXIF orientation applied."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise DashboardImageError(
                    f"the image is {img.width}×{img.height} pixels, over the {max_pixels:,} pixel limit"
                )
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale directly
            frame = ImageOps.exif_transpose(img)
            frame.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
            if frame.mode in ("RGBA", "LA") or (frame.mode == "P" and "transparency" in frame.info):
                rgba = frame.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))
                background.paste(rgba, mask=rgba.getchannel("A"))
                frame = background
            elif frame.mode != "RGB":
                frame = frame.convert("RGB")
            out = io.BytesIO()
            frame.save(out, format="JPEG", quality=82, optimize=True, progressive=True)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DashboardImageError(f"cannot make a thumbnail: the stored file is not a readable image ({exc})") from exc


class ThumbnailCache:
    """The disk cache; :meth:`get` returns a cached thumbnail or makes one from ``load()``'s bytes."""

    def __init__(
        self, root: Path, *, max_bytes: int, workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._inflight: dict[str, asyncio.Future[Thumbnail]] = {}
        self._lock = threading.Lock()
        self._size: int | None = None  # bytes in the folder as this process knows it (None: not scanned)
        self.hits = 0
        self.misses = 0
        self.evicted = 0

    def path_of(self, name: str) -> Path:
        return self.root / name[:2] / f"{name}.jpg"

    def read(self, name: str) -> Thumbnail | None:
        path = self.path_of(name)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used* is evicted first
        return Thumbnail(data, etag_for(name))

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self._workers)
        return semaphore

    async def get(
        self, key: str, size: int, load: Callable[[], Awaitable[bytes]], *, sha256: str | None = None
    ) -> Thumbnail:
        name = thumbnail_name(key, size, sha256)
        cached = await asyncio.to_thread(self.read, name)
        if cached is not None:
            self.hits += 1
            return cached
        running = self._inflight.get(name)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Thumbnail] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            async with self._semaphore():
                source = await load()
                data = await asyncio.to_thread(make_thumbnail, source, size, max_pixels=self.max_pixels)
                await asyncio.to_thread(self._write, name, data)
            self.misses += 1
            thumb = Thumbnail(data, etag_for(name))
            future.set_result(thumb)
            return thumb
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._inflight.pop(name, None)

    # -- the folder ----------------------------------------------------------------------------------------
    def _write(self, name: str, data: bytes) -> None:
        path = self.path_of(name)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jpg")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk costs the cache, not the response
            log.warning("cannot write thumbnail %s (%s): serving it uncached", path, exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return
        with self._lock:
            if self._size is None:
                self._size = self._scan_size()
            else:
                self._size += len(data)
            if self._size > self.max_bytes:
                self._evict()

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for path in self.root.glob("??/*.jpg"):
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((st.st_mtime, st.st_size, path))
        return found

    def _scan_size(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _evict(self) -> None:
        files = sorted(self._files())  # oldest use first; rescanned: other processes may share the folder
        total = sum(size for _, size, _ in files)
        target = int(self.max_bytes * 0.8)
        for _, size, path in files:
            if total <= target:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                self.evicted += 1
        self._size = total

    def size_bytes(self) -> int:
        with self._lock:
            self._size = self._scan_size()
            return self._size
