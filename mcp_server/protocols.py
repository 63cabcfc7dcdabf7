"""What the server needs from the rest of comfy-quality, as small protocols.

The server is built around these; :func:`mcp_server.lifespan.build_components` plugs in the real
implementations (the refinement orchestrator, the storage package's store and SQLite index), and tests plug in
simple in-memory ones. Keep them small: an adapter over a richer class is a few lines.

* :class:`~refinement.api.Generator` (from :mod:`refinement.api`): ``await generate(request, on_progress=...)``.
* :class:`ObjectStore`: read an image the store holds, by ``s3://bucket/key`` or by the store's own http(s)
  URL (the configured MinIO/S3 endpoint, presigned or not).
* :class:`GenerationIndex`: list recent generations.
* :class:`ImageScorer`: :class:`quality.Scorer`'s ``score`` (blocking; the server runs it in a thread).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mcp_server.models import GenerationSummary, RecentQuery
from quality.report import QualityReport
from refinement.api import Generator

__all__ = ["GenerationIndex", "Generator", "ImageScorer", "ObjectStore"]


@runtime_checkable
class ObjectStore(Protocol):
    def handles(self, url: str) -> bool:
        """True for URLs this store serves: ``s3://bucket/key`` and its endpoint's http(s) URLs."""
        ...

    async def read(self, url: str, *, max_bytes: int) -> bytes:
        """The object's bytes. Raises (any exception, with a message naming the object) when it is missing,
        unreadable, or larger than ``max_bytes``."""
        ...


@runtime_checkable
class GenerationIndex(Protocol):
    async def recent(self, query: RecentQuery) -> list[GenerationSummary]:
        """Stored generations matching ``query``, newest first, at most ``query.limit``."""
        ...


class ImageScorer(Protocol):
    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport:
        """Score one encoded image (blocking). Raises :class:`quality.errors.QualityError` for unusable input."""
        ...
