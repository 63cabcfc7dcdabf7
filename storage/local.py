"""The embedded default store: a folder on local disk.

Every file is written atomically (a temp file in the same folder, fsync, rename), so a reader sees either the
old file or the whole new one, never a torn write; ``metadata.json`` is written after the images, so its
presence means the generation is complete. URLs are ``file://`` URLs, or ``<public_base_url>/<key>`` when a
public base URL is configured (e.g. the dashboard serving the folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage import layout
from storage.errors import (
    InvalidKeyError,
    InvalidObjectURLError,
    ObjectNotFoundError,
    ObjectTooLargeError,
)
from storage.metadata import Backend, GenerationMetadata
from storage.store import (
    AttemptImage,
    FlushReport,
    ObjectWrite,
    StoreBase,
    StoredObject,
    StoreHealth,
    finish,
    parse_pointer,
    plan_generation,
)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LocalStore(StoreBase):
    """Images and metadata in a folder (``root``), laid out as in :mod:`storage.layout`."""

    backend: Backend = "local"

    def __init__(self, root: Path | str, *, public_base_url: str | None = None) -> None:
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    # -- paths and URLs ------------------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        path = (self.root / layout.check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKeyError(f"key {key!r} points outside the store folder {self.root}")
        return path

    def url_for(self, key: str, *, presigned: bool | None = None, expires: timedelta | None = None) -> str:
        """``<public_base_url>/<key>`` or a ``file://`` URL (``presigned``/``expires`` do not apply here)."""
        if self.public_base_url:
            return f"{self.public_base_url}/{layout.quote_key(layout.check_key(key))}"
        return self.path_for(key).as_uri()

    def key_for_url(self, url: str) -> str:
        """The key a ``file://`` or public URL of this store names."""
        if self.public_base_url and url.startswith(self.public_base_url + "/"):
            return layout.check_key(unquote(urlsplit(url[len(self.public_base_url) + 1 :]).path))
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise InvalidObjectURLError(
                f"the local store reads file:// URLs under {self.root}"
                + (f" or {self.public_base_url}/..." if self.public_base_url else "")
                + f", not {url!r}; configure the s3 backend to read S3 URLs"
            )
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidObjectURLError(f"{url!r} is outside the store folder {self.root}")
        return path.relative_to(self.root).as_posix()

    # -- writing -------------------------------------------------------------------------------------------
    def _write(self, objects: list[ObjectWrite]) -> None:
        for obj in objects:  # images first, then metadata, then the pointer
            atomic_write(self.path_for(obj.key), obj.data)

    def _uri(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def _url(self, key: str) -> tuple[str, datetime | None]:
        return self.url_for(key), None

    async def put_generation(
        self,
        image_bytes: bytes | None,
        metadata: GenerationMetadata,
        *,
        content_type: str | None = None,
        attempt_images: Mapping[int, bytes] | None = None,
    ) -> StoredObject:
        plan = plan_generation(image_bytes, metadata, content_type, attempt_images)
        md, objects = finish(
            plan, backend="local", status="stored", bucket=None, uri=self._uri, url=self._url
        )
        await asyncio.to_thread(self._write, objects)
        return StoredObject(
            generation_id=md.generation_id,
            status="stored",
            key=plan.best_key,
            metadata_key=plan.metadata_key,
            url=md.storage.url if md.storage else None,
            metadata=md,
        )

    async def _write_attempt_image(self, generation_id: str, attempt: int, obj: ObjectWrite) -> AttemptImage:
        await asyncio.to_thread(atomic_write, self.path_for(obj.key), obj.data)
        return AttemptImage(attempt=attempt, key=obj.key, url=self.url_for(obj.key), status="stored")

    # -- reading -------------------------------------------------------------------------------------------
    def _read(self, key: str, max_bytes: int | None = None) -> bytes:
        path = self.path_for(key)
        try:
            if max_bytes is not None and path.stat().st_size > max_bytes:
                raise ObjectTooLargeError(
                    f"{key} has {path.stat().st_size} bytes, over the limit of {max_bytes}"
                )
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object {key!r} in the local store {self.root}", key=key) from exc

    async def get_image(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def read_url(self, url: str, *, max_bytes: int | None = None) -> bytes:
        return await asyncio.to_thread(self._read, self.key_for_url(url), max_bytes)

    async def get_metadata(self, ref: str) -> GenerationMetadata:
        key = await asyncio.to_thread(self._metadata_key, ref)
        data = await asyncio.to_thread(self._read, key)
        return GenerationMetadata.from_json(data, source=key)

    def _metadata_key(self, ref: str) -> str:
        if "/" in ref:
            return layout.check_key(ref)
        layout.check_generation_id(ref)
        try:
            return parse_pointer(self._read(layout.pointer_key(ref)))
        except (ObjectNotFoundError, InvalidKeyError, ValueError, KeyError):
            pass  # no pointer (a folder copied in by hand) or a damaged one: search the date folders
        found = sorted((self.root / "generations").glob(f"*/*/*/{ref}/{layout.METADATA_NAME}"))
        if not found:
            raise ObjectNotFoundError(f"no generation {ref!r} in the local store {self.root}", key=ref)
        return found[-1].relative_to(self.root).as_posix()

    def _walk(self, prefix: str) -> list[str]:
        base = self.root / "generations"
        keys = [p.relative_to(self.root).as_posix() for p in base.rglob(layout.METADATA_NAME) if p.is_file()]
        return sorted(k for k in keys if k.startswith(prefix))

    async def list_metadata_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._walk, prefix or layout.GENERATIONS_PREFIX):
            yield key

    # -- the rest of the protocol ----------------------------------------------------------------------------
    def _check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / ".health", b"ok")

    async def health(self) -> StoreHealth:
        try:
            await asyncio.to_thread(self._check)
        except OSError as exc:
            return StoreHealth(
                backend="local",
                ok=False,
                location=str(self.root),
                detail=f"cannot write to {self.root} ({exc}); fix its permissions or set "
                "COMFY_QUALITY_STORAGE_LOCAL_ROOT to a writable folder",
            )
        return StoreHealth(backend="local", ok=True, location=str(self.root), detail="folder is writable")

    async def flush_spool(self) -> FlushReport:
        """Nothing to do: the local store never spools."""
        return FlushReport()

    def pending_keys(self) -> set[str]:
        """Always empty: the local store writes every object at once."""
        return set()
