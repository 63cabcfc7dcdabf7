"""The :class:`Store` protocol, what it returns, the shared write plan and the base both stores build on.

A store keeps images and their metadata sidecars under the key layout of :mod:`storage.layout`. Two
implementations: :class:`storage.local.LocalStore` (a folder, the default) and :class:`storage.s3.S3Store`
(MinIO / S3 with a local spool so no image is lost while S3 is down); :func:`storage.factory.open_store` picks
one from the settings (this module never imports them: they import it). All I/O methods are async and do their
blocking work in threads; :meth:`Store.url_for` is a pure computation and stays sync.

Typical use (the orchestrator, after the last attempt)::

    async with open_store(StorageSettings()) as store:
        stored = await store.put_generation(png_bytes, metadata, attempt_images={1: first_png})
        index.add(stored.metadata)          # metadata.storage is filled in
        print(stored.url, stored.status)    # 'stored', or 'spooled' while S3 is down
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel, Field

from storage import layout
from storage.errors import EmptyImageError, StorageError
from storage.metadata import Backend, GenerationMetadata, StorageInfo, StorageStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

FlushListener = Callable[[GenerationMetadata], Awaitable[object] | object]
"""Called with the final metadata of every generation the spool flusher uploaded (e.g. ``index.add``)."""


class StoredObject(BaseModel):
    """What :meth:`Store.put_generation` wrote."""

    generation_id: str
    status: StorageStatus = Field(description="'stored', or 'spooled' when S3 was down (uploaded later)")
    key: str | None = Field(description="image key (null for a run that produced no image)")
    metadata_key: str
    url: str | None = Field(
        description="where the image can be fetched now (a file:// URL of the server's spool when spooled: for "
        "local use only, never for remote clients; resolve with url_for/pending_keys once uploaded)"
    )
    metadata: GenerationMetadata = Field(description="the document as stored, with ``storage`` filled in")

    @property
    def spooled(self) -> bool:
        return self.status == "spooled"


class AttemptImage(BaseModel):
    """What :meth:`Store.put_attempt_image` wrote."""

    attempt: int
    key: str
    url: str | None
    status: StorageStatus


class StoreHealth(BaseModel):
    backend: Backend
    ok: bool = Field(description="the backend answered and is writable")
    detail: str = Field(description="what was checked, or what is wrong and what to do")
    location: str = Field(description="folder, or endpoint/bucket")
    spooled: int = Field(0, description="generations waiting in the spool for upload")


class FlushReport(BaseModel):
    """Result of one pass over the spool."""

    uploaded: list[str] = Field(default_factory=list, description="spool entries uploaded and removed")
    failed: dict[str, str] = Field(default_factory=dict, description="entry → error; they stay spooled")
    remaining: int = Field(0, description="entries still in the spool after this pass")

    @property
    def ok(self) -> bool:
        return not self.failed


class GenerationWriter(Protocol):
    """The part of a :class:`Store` that records generations: what the orchestrator needs of it."""

    async def put_generation(
        self,
        image_bytes: bytes | None,
        metadata: GenerationMetadata,
        *,
        content_type: str | None = None,
        attempt_images: Mapping[int, bytes] | None = None,
    ) -> StoredObject:
        """Write the best image (``None`` for a failed run), the other attempts' images and, last, the
        metadata sidecar with ``storage`` filled in (and ``attempts[n].image_key/url`` for
        ``attempt_images``)."""
        ...

    async def put_attempt_image(
        self,
        generation_id: str,
        timestamp: datetime,
        attempt: int,
        image_bytes: bytes,
        *,
        content_type: str | None = None,
    ) -> AttemptImage:
        """Write one attempt's image early (its sidecar is the generation's metadata.json, written by
        :meth:`put_generation` with the same ``generation_id`` and ``timestamp``)."""
        ...

    def url_for(self, key: str, *, presigned: bool | None = None, expires: timedelta | None = None) -> str: ...


@runtime_checkable
class Store(GenerationWriter, Protocol):
    """What the orchestrator, MCP server and dashboard use. See the module docstring."""

    backend: Backend

    async def get_image(self, key: str) -> bytes: ...

    async def get_metadata(self, ref: str) -> GenerationMetadata:
        """By generation id or by metadata key."""
        ...

    async def read_url(self, url: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of an object named by a URL of this store (file://, s3://, endpoint or public URL)."""
        ...

    def list_metadata_keys(self, prefix: str | None = None) -> AsyncIterator[str]: ...

    def list_metadata(self, prefix: str | None = None) -> AsyncIterator[GenerationMetadata]:
        """Every readable metadata document (unreadable ones are logged and skipped)."""
        ...

    async def health(self) -> StoreHealth: ...

    async def flush_spool(self) -> FlushReport: ...

    def pending_keys(self) -> set[str]:
        """Keys written to the local spool and not yet uploaded (S3 down): no URL of this store serves them
        yet, so show them as "pending upload" rather than hand out a URL (see :meth:`S3Store.pending_keys`)."""
        ...

    def add_flush_listener(self, listener: FlushListener) -> None: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass
class ObjectWrite:
    """One object to write: ``role`` is 'image', 'metadata' or 'pointer' (metadata and pointer go last)."""

    key: str
    data: bytes
    content_type: str
    role: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class GenerationPlan:
    """Keys and bytes of a generation, before the backend decides on URLs and status."""

    metadata: GenerationMetadata
    images: list[ObjectWrite]
    best: layout.ImageFacts | None
    best_key: str | None
    metadata_key: str


def _object_meta(metadata: GenerationMetadata, kind: str, attempt: int | None = None) -> dict[str, str]:
    meta = {"generation-id": metadata.generation_id, "kind": kind}
    if attempt is not None:
        meta["attempt"] = str(attempt)
    if metadata.quality is not None:
        meta["grade"] = metadata.quality.grade or "ungraded"
        meta["composite"] = f"{metadata.quality.composite_score:.3f}"
    return meta


def plan_generation(
    image_bytes: bytes | None,
    metadata: GenerationMetadata,
    content_type: str | None,
    attempt_images: Mapping[int, bytes] | None,
) -> GenerationPlan:
    """Validate and lay out a generation's objects (images only; metadata is rendered by :func:`finish`)."""
    md = metadata.model_copy(deep=True)
    gid, ts = md.generation_id, md.timestamp
    images = [
        attempt_image_write(gid, ts, number, data, meta=_object_meta(md, "attempt", number))
        for number, data in sorted((attempt_images or {}).items())
    ]
    best: layout.ImageFacts | None = None
    best_key: str | None = None
    if image_bytes is not None:
        if not image_bytes:
            raise EmptyImageError("the image is empty (0 bytes): nothing to store")
        best = layout.image_facts(image_bytes, content_type)
        best_key = layout.best_key(gid, ts, best.ext)
        if best.format is None:
            log.warning("generation %s: the image bytes are not a recognised image format", gid)
        images.append(
            ObjectWrite(best_key, image_bytes, best.content_type, "image", _object_meta(md, "best"))
        )
    return GenerationPlan(md, images, best, best_key, layout.metadata_key(gid, ts))


def attempt_image_write(
    generation_id: str,
    timestamp: datetime,
    attempt: int,
    image_bytes: bytes,
    *,
    content_type: str | None = None,
    meta: dict[str, str] | None = None,
) -> ObjectWrite:
    """The one check and layout of an attempt's image, for :meth:`Store.put_attempt_image` and for the
    ``attempt_images`` of :meth:`Store.put_generation`: it must not be empty; its key comes from its format."""
    if not image_bytes:
        raise EmptyImageError(f"attempt {attempt}'s image is empty (0 bytes): nothing to store")
    facts = layout.image_facts(image_bytes, content_type)
    key = layout.attempt_key(generation_id, timestamp, attempt, facts.ext)
    if meta is None:
        meta = {"generation-id": generation_id, "kind": "attempt", "attempt": str(attempt)}
    return ObjectWrite(key, image_bytes, facts.content_type, "image", meta)


def finish(
    plan: GenerationPlan,
    *,
    backend: Backend,
    status: StorageStatus,
    bucket: str | None,
    uri: Callable[[str], str],
    url: Callable[[str], tuple[str, datetime | None]],
) -> tuple[GenerationMetadata, list[ObjectWrite]]:
    """Fill ``storage`` and the attempts' image keys/URLs; return the metadata and every object to write."""
    md = plan.metadata
    attempt_keys = {int(w.meta["attempt"]): w.key for w in plan.images if "attempt" in w.meta}
    for record in md.refinement.attempts:
        if record.attempt in attempt_keys:
            record.image_key = attempt_keys[record.attempt]
            record.image_url = url(record.image_key)[0]
        elif record.image_key is not None:
            record.image_url = url(record.image_key)[0]
    best = plan.best
    best_url, expires = url(plan.best_key) if plan.best_key else (None, None)
    md.storage = StorageInfo(
        backend=backend,
        status=status,
        bucket=bucket,
        key=plan.best_key,
        metadata_key=plan.metadata_key,
        uri=uri(plan.best_key) if plan.best_key else None,
        url=best_url,
        url_expires_at=expires,
        size_bytes=best.size_bytes if best else None,
        format=best.format if best else None,
        width=best.width if best else None,
        height=best.height if best else None,
        content_type=best.content_type if best else None,
        sha256=best.sha256 if best else None,
    )
    meta = _object_meta(md, "metadata")
    meta["schema-version"] = str(md.schema_version)
    objects = [
        *plan.images,
        ObjectWrite(plan.metadata_key, md.to_json(), "application/json", "metadata", meta),
        ObjectWrite(
            layout.pointer_key(md.generation_id),
            pointer_json(md.generation_id, plan.metadata_key, md.timestamp),
            "application/json",
            "pointer",
            {"generation-id": md.generation_id, "kind": "pointer"},
        ),
    ]
    return md, objects


def pointer_json(generation_id: str, metadata_key: str, timestamp: datetime) -> bytes:
    doc = {"generation_id": generation_id, "metadata_key": metadata_key, "timestamp": timestamp.isoformat()}
    return json.dumps(doc).encode()


def parse_pointer(data: bytes) -> str:
    """The metadata key a pointer object names."""
    key = json.loads(data)["metadata_key"]
    return layout.check_key(str(key))


def expiry_time(expires: timedelta) -> datetime:
    return datetime.now(UTC) + expires


async def notify(listeners: list[FlushListener], metadata: GenerationMetadata) -> None:
    for listener in listeners:
        try:
            result = listener(metadata)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("flush listener %r failed for generation %s", listener, metadata.generation_id)


async def bounded_gather(items: list[str], fn: Callable[[str], Awaitable[T]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(item: str) -> T:
        async with semaphore:
            return await fn(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


class StoreBase:
    """What both stores share: listing with bounded concurrency, flush listeners, async context manager."""

    list_concurrency = 8

    def __init__(self) -> None:
        self._listeners: list[FlushListener] = []

    def add_flush_listener(self, listener: FlushListener) -> None:
        self._listeners.append(listener)

    def list_metadata_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        raise NotImplementedError

    async def get_metadata(self, ref: str) -> GenerationMetadata:
        raise NotImplementedError

    async def put_attempt_image(
        self,
        generation_id: str,
        timestamp: datetime,
        attempt: int,
        image_bytes: bytes,
        *,
        content_type: str | None = None,
    ) -> AttemptImage:
        """Check and lay out the image (:func:`attempt_image_write`), then let the backend write it."""
        obj = attempt_image_write(generation_id, timestamp, attempt, image_bytes, content_type=content_type)
        return await self._write_attempt_image(generation_id, attempt, obj)

    async def _write_attempt_image(self, generation_id: str, attempt: int, obj: ObjectWrite) -> AttemptImage:
        """Write the checked attempt image ``obj`` (each backend's own part of :meth:`put_attempt_image`)."""
        raise NotImplementedError

    async def list_metadata(self, prefix: str | None = None) -> AsyncIterator[GenerationMetadata]:
        batch: list[str] = []
        async for key in self.list_metadata_keys(prefix):
            batch.append(key)
            if len(batch) >= 64:
                for md in await bounded_gather(batch, self._load_or_none, self.list_concurrency):
                    if md is not None:
                        yield md
                batch = []
        for md in await bounded_gather(batch, self._load_or_none, self.list_concurrency):
            if md is not None:
                yield md

    async def _load_or_none(self, key: str) -> GenerationMetadata | None:
        try:
            return await self.get_metadata(key)
        except StorageError as exc:
            log.warning("skipping %s: %s", key, exc)
            return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
