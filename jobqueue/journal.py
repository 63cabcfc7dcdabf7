"""Resuming a redelivered job without rendering again what was already rendered.

The orchestrator is deterministic for a given request once the seed is fixed (the replica fixes it when it
accepts the job): strategies are pure functions of the attempt number and the scores so far, and the scorer
gives the same scores for the same image. So a redelivered job simply runs the orchestrator again, through
:class:`JournalComfy`: every ComfyUI run is keyed by the SHA-256 of the exact workflow submitted, and its
images are stored (in the object store, under ``job-<job id>``, as soon as ComfyUI returns them) and recorded in
the job's journal hash in Redis. On a later delivery a workflow already in the journal is answered from the
stored images, so no stored attempt is ever rendered twice; attempts after the last stored one run on ComfyUI.

:class:`CapturingStore` records the generation the orchestrator stores, so a cancelled job still reports what
was made (the orchestrator stores it before the cancellation propagates).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from jobqueue.records import JobStore
from refinement.api import AttemptSummary, DimensionScores, GenerationResult
from refinement.comfyui import USE_CLIENT_DEFAULT, RunResult, RunTimeout
from refinement.comfyui.models import OutputImage

log = logging.getLogger(__name__)


def workflow_sha(workflow: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(workflow, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class JournalImage(BaseModel):
    key: str
    node_id: str
    filename: str
    subfolder: str = ""
    type: str = "output"
    content_type: str | None = None


class JournalEntry(BaseModel):
    prompt_id: str
    server: str
    images: list[JournalImage]


class JournalComfy:
    """A ComfyUI pool seen through the job's journal (see the module docstring)."""

    def __init__(self, comfy: Any, jobs: JobStore, store: Any, job_id: str, created_at: datetime) -> None:
        self.comfy = comfy
        self.jobs = jobs
        self.store = store
        self.job_id = job_id
        self.created_at = created_at
        self.replayed = 0
        self.rendered = 0
        self._pending: list[asyncio.Task[None]] = []

    async def preflight(self, workflow: Mapping[str, Any]) -> None:
        await self.comfy.preflight(workflow)

    async def run(
        self, workflow: Any, *, on_progress: Any = None, timeout: RunTimeout = USE_CLIENT_DEFAULT
    ) -> RunResult:
        sha = workflow_sha(workflow)
        entry = await self._lookup(sha)
        if entry is not None:
            replayed = await self._replay(entry)
            if replayed is not None:
                self.replayed += 1
                log.info("job %s: ComfyUI run %s… answered from its stored images", self.job_id, sha[:12])
                return replayed
        run: RunResult = await self.comfy.run(workflow, on_progress=on_progress, timeout=timeout)
        self.rendered += 1
        # journaled while the orchestrator scores the images (off the job's path); flush() waits for it
        self._pending.append(asyncio.create_task(self._record(sha, run), name=f"journal of job {self.job_id}"))
        return run

    async def flush(self) -> None:
        """Wait for the journal writes still running."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _lookup(self, sha: str) -> JournalEntry | None:
        try:
            raw = await self.jobs.redis.hget(self.jobs.keys.runs(self.job_id), sha)
        except Exception as exc:  # the journal is an optimisation: without it the run renders again
            log.warning("job %s: journal unreadable (%s); rendering", self.job_id, exc)
            return None
        return JournalEntry.model_validate_json(raw) if raw else None

    async def _replay(self, entry: JournalEntry) -> RunResult | None:
        images = []
        try:
            for img in entry.images:
                data = await self.store.get_image(img.key)
                images.append(
                    OutputImage(node_id=img.node_id, filename=img.filename, subfolder=img.subfolder, type=img.type,
                                data=data, content_type=img.content_type)
                )
        except Exception as exc:
            log.warning("job %s: a journaled image is unreadable (%s); rendering again", self.job_id, exc)
            return None
        return RunResult(prompt_id=entry.prompt_id, client_id="journal", server=entry.server, images=images)

    async def _record(self, sha: str, run: RunResult) -> None:
        images = run.saved_images or run.images
        if not images:
            return
        try:
            recorded = []
            for img in images:
                number = int(await self.jobs.redis.hincrby(self.jobs.keys.job(self.job_id), "images", 1))
                stored = await self.store.put_attempt_image(
                    f"job-{self.job_id}", self.created_at, number, img.data, content_type=img.content_type
                )
                recorded.append(
                    JournalImage(key=stored.key, node_id=img.node_id, filename=img.filename,
                                 subfolder=img.subfolder, type=img.type, content_type=img.content_type)
                )
            entry = JournalEntry(prompt_id=run.prompt_id, server=run.server, images=recorded)
            await self.jobs.redis.hset(self.jobs.keys.runs(self.job_id), sha, entry.model_dump_json())
        except Exception as exc:
            log.warning("job %s: rendered images not journaled (%s); a redelivery would render them again",
                        self.job_id, exc)  # fmt: skip


class CapturingStore:
    """The object store, remembering the generation the orchestrator stores (for a cancelled job's report)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.stored: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_generation(self, *args: Any, **kwargs: Any) -> Any:
        stored = await self._store.put_generation(*args, **kwargs)
        self.stored = stored
        return stored


def result_from_stored(stored: Any, url_for: Any = None) -> GenerationResult | None:
    """A :class:`GenerationResult` from what the orchestrator stored (used when the job was cancelled)."""
    if stored is None:
        return None
    md = stored.metadata
    attempts = []
    for rec in md.refinement.attempts:
        q = rec.quality
        attempts.append(
            AttemptSummary(
                attempt=rec.attempt,
                parameters=rec.parameters.model_dump(exclude_none=True),
                composite_score=q.composite_score if q else None,
                grade=q.grade if q else None,
                dimensions=DimensionScores(**q.dimension_scores()) if q is not None else DimensionScores(),
                accepted=False,
                rejected_reason=rec.rejected_reason,
                error=rec.error,
                image_url=rec.image_url,
            )
        )
    metadata_url = None
    if stored.status == "stored" and url_for is not None:
        try:
            metadata_url = url_for(stored.metadata_key)
        except Exception:
            metadata_url = None
    best = md.refinement.best_attempt
    return GenerationResult(
        generation_id=md.generation_id,
        status=md.refinement.status,
        image_url=stored.url if best else None,
        metadata_url=metadata_url,
        grade=md.quality.grade if md.quality else None,
        composite_score=md.quality.composite_score if md.quality else None,
        attempts_used=len(attempts),
        best_attempt=best,
        attempts=attempts,
        error="cancelled on request",
    )
