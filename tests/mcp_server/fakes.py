"""In-test implementations of the server's protocols (real classes with real behaviour, not assert-nothing mocks).

* :class:`DirStore` — an :class:`~mcp_server.protocols.ObjectStore` over a folder: ``s3://test-bucket/<key>`` and
  ``http://store.test:9000/test-bucket/<key>`` name the file ``<root>/<key>``.
* :class:`ScriptedGenerator` — a :class:`~refinement.api.Generator` that "renders" by storing a real test image
  per attempt, reports sampler/scoring progress, takes its composite scores from a script, can be held at a
  checkpoint (to test waits, busy and cancellation) and records being cancelled.
* :class:`ListIndex` — a :class:`~mcp_server.protocols.GenerationIndex` over a list.
* :func:`subprocess_components` — what ``COMFY_QUALITY_MCP_COMPONENTS`` names in the subprocess tests.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio

from mcp_server.lifespan import Components
from mcp_server.models import GenerationSummary, JobState, RecentQuery
from mcp_server.protocols import ImageScorer
from mcp_server.settings import McpSettings
from quality.composite import Grade
from quality.report import QualityBlock, QualityReport
from refinement.api import (
    AttemptSummary,
    DimensionScores,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    ProgressUpdate,
)
from storage.errors import InvalidObjectURLError, ObjectNotFoundError, ObjectTooLargeError

REPO = Path(__file__).resolve().parents[2]
AGIQA = REPO / "tests" / "data" / "agiqa"
IMAGES = sorted(AGIQA.glob("*.jpg"))
BUCKET = "test-bucket"
ENDPOINT = "http://store.test:9000"


class DirStore:
    bucket = BUCKET

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.reads: list[str] = []

    def _key(self, url: str) -> str | None:
        for prefix in (f"s3://{BUCKET}/", f"{ENDPOINT}/{BUCKET}/"):
            if url.startswith(prefix):
                return url[len(prefix) :].split("?", 1)[0]
        return None

    def handles(self, url: str) -> bool:
        """Like the real store: every ``s3://`` URL (the server decides which buckets it may read) and the
        endpoint's URLs."""
        return url.startswith(("s3://", f"{ENDPOINT}/"))

    def put(self, key: str, data: bytes) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"s3://{BUCKET}/{key}"

    async def read(self, url: str, *, max_bytes: int) -> bytes:
        self.reads.append(url)
        key = self._key(url)
        if key is None or ".." in key.split("/"):
            raise InvalidObjectURLError(f"{url} names no object of this store")
        path = self.root / key
        if not path.is_file():
            raise ObjectNotFoundError(f"no object s3://{BUCKET}/{key}", key=key)
        if path.stat().st_size > max_bytes:  # as the real store: the storage error tree's class, not a ValueError
            raise ObjectTooLargeError(f"s3://{BUCKET}/{key} has {path.stat().st_size} bytes, over {max_bytes}")
        return path.read_bytes()


class ListIndex:
    def __init__(self, items: Sequence[GenerationSummary] = ()) -> None:
        self.items = list(items)
        self.queries: list[RecentQuery] = []

    async def recent(self, query: RecentQuery) -> list[GenerationSummary]:
        self.queries.append(query)
        words = (query.text or "").lower().split()
        out = [
            s
            for s in self.items
            if (not query.grades or s.grade in query.grades)
            and (not query.statuses or s.status in query.statuses)
            and all(w in s.prompt.lower() for w in words)
        ]
        out.sort(key=lambda s: s.created_at, reverse=True)
        return out[: query.limit]


def _grade(score: float) -> Grade:
    bounds: tuple[tuple[Grade, float], ...] = (("A", 8.0), ("B", 6.5), ("C", 5.0), ("D", 3.0))
    for grade, bound in bounds:
        if score >= bound:
            return grade
    return "F"


class ScriptedGenerator:
    """Attempt k scores ``scores[k-1]`` (the last value repeats); stops at the request's threshold."""

    def __init__(
        self,
        store: DirStore,
        scores: Sequence[float] = (5.0, 7.5),
        *,
        steps: int = 4,
        hold: anyio.Event | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.store = store
        self.scores = list(scores)
        self.steps = steps
        self.hold = hold
        self.fail = fail
        self.calls: list[GenerationRequest] = []
        self.started = anyio.Event()
        self.cancelled = anyio.Event()
        self.finished = 0

    async def _emit(self, on_progress: ProgressCallback | None, update: ProgressUpdate) -> None:
        if on_progress is None:
            return
        outcome = on_progress(update)
        if inspect.isawaitable(outcome):
            await outcome

    async def generate(
        self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None
    ) -> GenerationResult:
        self.calls.append(request)
        self.started.set()
        try:
            return await self._generate(request, on_progress)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()  # here the real orchestrator interrupts its ComfyUI job
            raise

    async def _generate(self, request: GenerationRequest, on_progress: ProgressCallback | None) -> GenerationResult:
        generation_id = uuid.uuid4().hex[:12]
        n = request.max_attempts
        attempts: list[AttemptSummary] = []
        for k in range(1, n + 1):
            for step in range(1, self.steps + 1):
                fraction = (k - 1 + 0.8 * step / self.steps) / n
                update = ProgressUpdate(
                    stage="sampling",
                    attempt=k,
                    max_attempts=n,
                    progress=fraction,
                    message="sampling",
                    step=step,
                    steps=self.steps,
                )
                await self._emit(on_progress, update)
                if self.hold is not None and k == 1 and step == 1:
                    await self.hold.wait()
            if self.fail is not None:
                raise self.fail
            await self._emit(
                on_progress,
                ProgressUpdate(stage="scoring", attempt=k, max_attempts=n, progress=(k - 0.1) / n, message="scoring"),
            )
            score = self.scores[min(k, len(self.scores)) - 1]
            image = IMAGES[(k - 1) % len(IMAGES)]
            url = self.store.put(f"{generation_id}/attempt-{k}.jpg", image.read_bytes())
            attempts.append(
                AttemptSummary(
                    attempt=k,
                    parameters={"seed": (request.seed or 1000) + k - 1, "steps": request.steps or 20},
                    composite_score=score,
                    grade=_grade(score),
                    dimensions=DimensionScores(technical=score, detail=score),
                    accepted=score >= request.quality_threshold,
                    rejected_reason=None if score >= request.quality_threshold else "below the threshold",
                    image_url=url,
                )
            )
            if score >= request.quality_threshold:
                break
        best = max(attempts, key=lambda a: a.composite_score or 0.0)
        status = "success" if best.accepted else "best_effort"
        self.finished += 1
        assert best.composite_score is not None
        return GenerationResult(
            generation_id=generation_id,
            status=status,
            image_url=best.image_url,
            metadata_url=f"s3://{BUCKET}/{generation_id}/metadata.json",
            grade=best.grade,
            composite_score=best.composite_score,
            quality=QualityBlock(composite_score=best.composite_score, grade=best.grade or "F"),
            partial=True,
            attempts_used=len(attempts),
            best_attempt=best.attempt,
            attempts=attempts,
        )


class BlockingScorer:
    """An ImageScorer that blocks in its worker thread until released (busy-queue and cancellation tests)."""

    def __init__(self, inner: ImageScorer) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def score(self, image: bytes, prompt: str | None = None, *, source_name: str | None = None) -> QualityReport:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("BlockingScorer was never released")
        return self.inner.score(image, prompt, source_name=source_name)


def summary(prompt: str, grade: Grade, status: JobState, minutes_ago: int) -> GenerationSummary:
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).replace(minute=59 - minutes_ago)
    return GenerationSummary(
        generation_id=f"gen-{prompt.replace(' ', '-')}",
        created_at=created,
        prompt=prompt,
        status=status,
        grade=grade,
        composite_score={"A": 8.5, "B": 7.0, "C": 5.5, "D": 3.5, "F": 1.0}[grade],
        attempts_used=2,
        image_url=f"s3://{BUCKET}/{prompt.replace(' ', '-')}.jpg",
    )


def subprocess_components(settings: McpSettings) -> Components:
    """Components for a server subprocess: the real (offline) scorer, a DirStore in $COMFY_QUALITY_TEST_STORE,
    a ScriptedGenerator and a small index. Prints to stdout while loading, as careless libraries do: the stdio
    test proves that this never reaches the protocol stream."""
    store = DirStore(Path(os.environ["COMFY_QUALITY_TEST_STORE"]))

    def scorer_factory() -> ImageScorer:
        print("noise on stdout from a library while loading models")
        sys.stdout.flush()
        from quality.scorer import Scorer

        return Scorer()

    index = ListIndex([summary("a red fox", "B", "success", 5), summary("a blue car", "D", "best_effort", 3)])
    return Components(
        scorer_factory=scorer_factory,
        generator=ScriptedGenerator(store, scores=(5.0, 7.5), steps=3),
        store=store,
        index=index,
    )
