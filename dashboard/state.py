"""What the web app holds: settings, the index, the store (read only) and the thumbnail cache.

Everything is opened when :func:`dashboard.build_app` is called, so a mounted app (whose lifespan the outer app
may not run) works the same as a standalone one. The store is never entered as a context manager: entering an
:class:`storage.S3Store` starts its spool flusher, which writes; the dashboard only reads.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from dashboard.errors import DashboardImageError, NotFoundError
from dashboard.settings import DashboardSettings
from dashboard.thumbs import ThumbnailCache
from storage.errors import ObjectNotFoundError
from storage.factory import open_store
from storage.index import AttemptRow, GenerationRow, Index
from storage.metadata import GENERATION_ID_PATTERN
from storage.store import Store

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
BEST = "best"


@dataclass(frozen=True)
class ImageRef:
    """Which stored object shows a generation (``which='best'``) or one of its attempts (``'attempt-N'``)."""

    generation_id: str
    which: str
    key: str


class AggregateCache:
    """Chart aggregates and facets, kept while the index holds the same number of rows (and at most ``ttl``
    seconds): they scan every matching row (tens of milliseconds at 100,000 generations, more with a score
    range), while the row count costs a tenth of a millisecond. Used from the event loop only."""

    def __init__(self, ttl: float = 60.0, max_entries: int = 256) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[int, float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, version: int) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version or time.monotonic() - entry[1] > self.ttl:
            self.misses += 1
            return False, None
        self._entries.move_to_end(key)
        self.hits += 1
        return True, entry[2]

    def put(self, key: str, version: int, value: Any) -> None:
        self._entries[key] = (version, time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class DashboardState:
    settings: DashboardSettings
    index: Index
    store: Store
    thumbnails: ThumbnailCache
    owns: list[object] = field(default_factory=list)
    aggregates: AggregateCache = field(default_factory=AggregateCache)

    @classmethod
    def open(
        cls, settings: DashboardSettings, *, store: Store | None = None, index: Index | None = None
    ) -> DashboardState:
        owns: list[object] = []
        if index is None:
            index = Index(settings.storage.index_path)
            owns.append(index)
            if index.recreated:
                log.warning(
                    "the index %s was recreated (new schema): run `python -m dashboard rebuild-index`",
                    index.path,
                )
        if store is None:
            try:
                store = open_store(settings.storage)
            except BaseException:
                if owns:
                    index.close()
                raise
            owns.append(store)
        thumbnails = ThumbnailCache(
            settings.thumbnail_cache_dir, max_bytes=settings.thumbnail_cache_max_bytes
        )
        return cls(settings=settings, index=index, store=store, thumbnails=thumbnails, owns=owns)

    async def aclose(self) -> None:
        owned, self.owns = self.owns, []
        for thing in owned:
            if thing is self.index:
                self.index.close()
            elif thing is self.store:
                await self.store.aclose()

    @property
    def max_image_bytes(self) -> int:
        return self.settings.max_image_bytes

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run an index call in a worker thread (aggregates over 100k rows take tens of milliseconds)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def aggregate(self, fn: Callable[..., T], f: BaseModel | None = None, **options: Any) -> T:
        """``fn(f, **options)`` (an index aggregate), from the cache while the index is unchanged."""
        key = json.dumps([fn.__name__, f.model_dump(mode="json") if f is not None else None, options], sort_keys=True)
        version = await self.call(self.index.count)
        found, value = self.aggregates.get(key, version)
        if found:
            return value
        result = await self.call(fn, f, **options) if f is not None else await self.call(fn, **options)
        self.aggregates.put(key, version, result)
        return result

    # -- lookups -------------------------------------------------------------------------------------------
    async def generation(self, generation_id: str) -> GenerationRow:
        check_id(generation_id)
        row = await self.call(self.index.get, generation_id)
        if row is None:
            raise NotFoundError(
                f"no generation {generation_id!r} in the index; if it was stored recently by another "
                "machine, run `python -m dashboard rebuild-index`"
            )
        return row

    async def image_ref(self, generation_id: str, which: str) -> ImageRef:
        """The stored object behind ``which`` ('best' or 'attempt-N')."""
        row = await self.generation(generation_id)
        if which == BEST:
            if not row.image_key:
                raise NotFoundError(f"generation {generation_id} has no image (every attempt failed)")
            return ImageRef(generation_id, which, row.image_key)
        number = attempt_number(which)
        attempts = await self.call(self.index.attempts, generation_id)
        found = next((a for a in attempts if a.attempt == number), None)
        if found is None:
            raise NotFoundError(f"generation {generation_id} has no attempt {number}")
        key = attempt_key(found, row)
        if key is None:
            raise NotFoundError(
                f"the image of attempt {number} of generation {generation_id} was not stored "
                "(only the kept image is, unless attempt images are stored too)"
            )
        return ImageRef(generation_id, which, key)

    async def image_bytes(self, key: str) -> bytes:
        try:
            data = await self.store.get_image(key)
        except ObjectNotFoundError as exc:
            raise NotFoundError(
                f"the image {key} is in the index but not in the store ({exc}); "
                "run `python -m dashboard rebuild-index` if the store was cleaned"
            ) from exc
        if len(data) > self.max_image_bytes:
            raise DashboardImageError(
                f"the image {key} is {len(data) / 2**20:.1f} MiB, over the dashboard's limit of "
                f"{self.max_image_bytes / 2**20:g} MiB (COMFY_QUALITY_DASHBOARD_MAX_IMAGE_BYTES)"
            )
        return data


def attempt_key(attempt: AttemptRow, row: GenerationRow) -> str | None:
    """The attempt's own image, or the kept image for the best attempt when it has none of its own."""
    if attempt.image_key:
        return attempt.image_key
    if attempt.is_best and row.image_key:
        return row.image_key
    return None


def attempt_number(which: str) -> int:
    prefix = "attempt-"
    if not which.startswith(prefix) or not which[len(prefix) :].isdigit():
        raise NotFoundError(f"{which!r} names no image: use 'best' or 'attempt-N'")
    number = int(which[len(prefix) :])
    if not 1 <= number <= 10_000:
        raise NotFoundError(f"{which!r} names no attempt")
    return number


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_id(generation_id: str) -> str:
    """Refuse ids that cannot exist (see ``GENERATION_ID_PATTERN``) before any lookup."""
    if not generation_id or len(generation_id) > 128 or not set(generation_id) <= _ID_CHARS:
        raise NotFoundError(f"{generation_id[:80]!r} is not a generation id ({GENERATION_ID_PATTERN})")
    return generation_id
