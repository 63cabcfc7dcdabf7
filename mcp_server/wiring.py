"""Adapters from the real packages to the server's small protocols, and the default component set.

* :class:`StoreReader` — :class:`mcp_server.protocols.ObjectStore` over a :class:`storage.Store`: reads
  ``s3://bucket/key`` and the configured S3 endpoint's http(s) URLs (presigned or not). ``file://`` URLs are not
  accepted here: local files go through the configured roots only.
* :class:`IndexReader` — :class:`mcp_server.protocols.GenerationIndex` over :class:`storage.Index`, URLs
  resolved at read time (:mod:`mcp_server.urls`).
* :class:`LazyScorer` — the orchestrator's scorer, built on first use (models come from the process-wide cache,
  so it shares them with the ``score_image`` tool's scorer: nothing is loaded twice).
* :func:`default_components` — the orchestrator on a ComfyUI pool, the configured store and index
  (:func:`refinement.factory.open_orchestrator`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp_server.models import GenerationSummary, RecentQuery
from mcp_server.urls import Location, StorageState, StoreUrls
from quality.report import QualityReport
from storage import GenerationQuery, Index, InvalidObjectURLError, StorageSettings, Store
from storage.layout import normalize_endpoint, parse_object_url

if TYPE_CHECKING:
    from comfy_quality.settings import Settings


class StoreReader:
    def __init__(self, store: Store, settings: StorageSettings) -> None:
        self.store = store
        self._urls = StoreUrls(store)
        self.endpoint = settings.s3_endpoint if settings.backend == "s3" else None
        self.secure = settings.s3_secure
        self.bucket = settings.s3_bucket
        """The store's own bucket: the only one ``s3://`` images come from unless the server allows more."""

    def handles(self, url: str) -> bool:
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            return False
        if scheme == "s3":
            return True
        if scheme in ("http", "https") and self.endpoint:
            try:
                parse_object_url(url, endpoint=self.endpoint, secure=self.secure)
            except (InvalidObjectURLError, ValueError):
                return False
            return True
        return False

    def bucket_of(self, url: str) -> str | None:
        try:
            return parse_object_url(url, endpoint=self.endpoint, secure=self.secure).bucket
        except (InvalidObjectURLError, ValueError):
            return None

    async def read(self, url: str, *, max_bytes: int) -> bytes:
        return await self.store.read_url(url, max_bytes=max_bytes)

    def locate(self, keys: Iterable[str]) -> dict[str, Location]:
        """See :class:`mcp_server.urls.UrlLocator`: the job results' URLs are resolved through this."""
        return self._urls.locate(keys)


class IndexReader:
    """Rows of the index with their image URLs resolved now (:mod:`mcp_server.urls`): the store's URL once the
    object is in the store, ``image_url: null`` and ``storage: "pending_upload"`` while it waits in the spool."""

    def __init__(self, index: Index, store: Store | None = None) -> None:
        self.index = index
        self.store = store
        self.urls = StoreUrls(store) if store is not None else None

    def _rows(self, q: GenerationQuery) -> list[GenerationSummary]:
        rows = self.index.query(q).items
        found = self.urls.locate(r.image_key for r in rows if r.image_key) if self.urls is not None else {}
        out = []
        for row in rows:
            storage: StorageState | None = None
            if row.image_key and self.urls is not None:
                url, pending = found.get(row.image_key, (None, False))
                storage = "pending_upload" if pending else "stored"
            elif row.storage_status == "spooled":  # never the spool's file:// URL
                url, storage = None, "pending_upload"
            else:
                url = getattr(row, "image_url", None)
                storage = "stored" if row.storage_status else None
            out.append(
                GenerationSummary(
                    generation_id=row.generation_id,
                    created_at=row.timestamp,
                    prompt=row.prompt,
                    status=row.status,
                    grade=row.grade,
                    grade_status=row.grade_status,
                    composite_score=row.composite if row.grade is not None else None,
                    attempts_used=row.attempts_used,
                    workflow=row.workflow,
                    strategy=row.strategy,
                    image_url=url,
                    storage=storage,
                )
            )
        return out

    async def recent(self, query: RecentQuery) -> list[GenerationSummary]:
        q = GenerationQuery(grades=query.grades, statuses=query.statuses, text=query.text, limit=query.limit,
                            with_total=False)  # fmt: skip
        return await asyncio.to_thread(self._rows, q)


class LazyScorer:
    """Builds the scorer on first use (thread-safe)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._scorer: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._scorer is None:
                self._scorer = self._factory()
            return self._scorer

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport:
        report: QualityReport = self._get().score(image, prompt, source_name=source_name)
        return report


def host_port(url: str) -> str | None:
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return f"{parts.hostname}:{port}"


@asynccontextmanager
async def default_components(
    scorer_factory: Callable[[], Any], settings: Settings | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The orchestrator (on a ComfyUI pool), the store and the index, from the settings tree's ``refinement`` and
    ``storage`` sections (default: a tree read from the environment); closed on exit. The orchestrator's scorer
    is built on first use (:class:`LazyScorer`)."""
    from refinement.factory import open_orchestrator

    async with open_orchestrator(settings, scorer=LazyScorer(scorer_factory)) as parts:
        storage_settings = parts.storage_settings
        trusted = [h for h in (host_port(u) for u in parts.settings.comfyui_urls) if h]
        if storage_settings.backend == "s3" and storage_settings.s3_endpoint:
            netloc, secure = normalize_endpoint(storage_settings.s3_endpoint, secure=storage_settings.s3_secure)
            trusted.append(host_port(f"{'https' if secure else 'http'}://{netloc}") or netloc)
        yield {
            "generator": parts.orchestrator,
            "store": StoreReader(parts.store, storage_settings),
            "index": IndexReader(parts.index, parts.store),
            "trusted_hosts": trusted,
        }
