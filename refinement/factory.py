"""One assembly of the orchestrator and its collaborators, shared by the CLI, the MCP server and the workers.

    async with open_orchestrator(load_settings()) as parts:     # the entry point's tree (or one section)
        result = await parts.orchestrator.generate(request)

:func:`open_orchestrator` opens, in this order, the configured store (a local folder or MinIO/S3) with the index
fed by its flushes, the scorer (loaded now in a thread unless one is given) and the ComfyUI pool; on exit it
closes the pool, the store (flushing what waits in its spool) and the scorer it loaded itself. What differs
between the entry points is a parameter: the MCP server passes a scorer built on first use, the worker bounds
the jobs per server (``max_in_flight``) and builds one orchestrator per job on the same parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comfy_quality.settings import Settings, tree_of
from refinement.orchestrator import Orchestrator, Scorer
from refinement.settings import RefinementSettings

if TYPE_CHECKING:
    from refinement.comfyui import ComfyUIPool
    from storage import Index, StorageSettings, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrchestratorParts:
    """The orchestrator and what it runs on (valid inside :func:`open_orchestrator`'s ``async with``)."""

    orchestrator: Orchestrator
    scorer: Scorer
    pool: ComfyUIPool
    store: Store
    index: Index
    settings: RefinementSettings
    storage_settings: StorageSettings


@asynccontextmanager
async def open_orchestrator(
    settings: Settings | RefinementSettings | None = None,
    *,
    storage_settings: StorageSettings | None = None,
    scorer: Scorer | None = None,
    max_in_flight: int | None = None,
) -> AsyncIterator[OrchestratorParts]:
    """The orchestrator on a ComfyUI pool, the configured store and index; everything closed on exit.

    Args:
        settings: the entry point's settings tree (its ``refinement``, ``storage`` and ``quality`` sections are
            used), or the refinement section alone (the others then come from the environment and ``.env``);
            default: a tree read from the environment and ``.env``.
        storage_settings: store and index settings (default: the tree's ``storage`` section).
        scorer: the scorer to use, left open on exit (default: a :class:`quality.scorer.Scorer` on the tree's
            ``quality`` section, loaded now in a thread and closed on exit).
        max_in_flight: most jobs on one ComfyUI server at once (see :class:`~refinement.comfyui.ComfyUIPool`).

    Configuration errors (a bad store setting, an unusable index path) are raised before any model is loaded.
    """
    from refinement.comfyui import ComfyUIPool
    from storage import Index, open_store

    tree = tree_of(settings, "refinement")
    refinement = tree.refinement
    storage_settings = storage_settings if storage_settings is not None else tree.storage
    store = open_store(storage_settings)
    index = Index(storage_settings.index_path)
    owned = scorer is None
    if scorer is None:
        from quality.scorer import Scorer as QualityScorer

        quality_settings = tree.quality
        log.info("loading the scoring models")
        scorer = await asyncio.to_thread(QualityScorer, quality_settings)
    try:
        pool = ComfyUIPool(refinement.comfyui_urls, max_in_flight=max_in_flight)
        try:
            async with store:
                store.add_flush_listener(index.add)
                yield OrchestratorParts(
                    orchestrator=Orchestrator(scorer, pool, store, index, refinement),
                    scorer=scorer,
                    pool=pool,
                    store=store,
                    index=index,
                    settings=refinement,
                    storage_settings=storage_settings,
                )
        finally:
            await pool.close()
    finally:
        close = getattr(scorer, "close", None) if owned else None
        if callable(close):
            close()
