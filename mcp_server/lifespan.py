"""The server's shared state (:class:`AppState`) and where its components are built.

**Wiring point**: :func:`build_components` (with :mod:`mcp_server.wiring`) is the one place that constructs the
scorer, the refinement orchestrator (``Generator``), the object store and the generation index from settings.
Everything else in the server receives them through :class:`AppState` (``ctx.request_context.lifespan_context``).
A deployment can replace the built-in wiring without editing it:
``COMFY_QUALITY_MCP_COMPONENTS=package.module:function``
names a function ``(McpSettings) -> Components`` or ``(McpSettings) -> AsyncContextManager[Components]``
(the subprocess tests use this to run the server against in-test components).

Settings: the entry point loads the settings tree once (:class:`comfy_quality.settings.Settings`) and hands it
down: :func:`open_app_state` / :func:`build_components` take the tree (or the ``mcp`` section alone, the others
then read from the environment once), and every component is built from that tree's sections: the scorer from
``quality``, the orchestrator from ``refinement``, the store and index from ``storage``, the job backend from
``jobs``. :attr:`AppState.tree` keeps it for what is built later (the dashboard mounted next to the server).

Lifetime: :func:`open_app_state` is entered once per process (by ``python -m mcp_server`` around the transport,
or by the SDK lifespan for an in-memory server), so models load once and every connection (stdio, each SSE
stream, each streamable-HTTP session) shares them, the job table and the concurrency limits. Model loading starts
at once in a worker thread (with the built-in wiring: before the store, index and orchestrator are built, so it
overlaps with their imports), and the server answers ``initialize`` and ``tools/list`` immediately. A
``score_image`` that arrives while the models load waits for them at most the server's wait cap
(``max_wait_seconds``, counted from the call's start); past it, it gets :class:`~mcp_server.errors.ModelsLoadingError`
("the scoring models are still loading; retry in N s") instead of running into the host's tool-call timeout.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup

from comfy_quality.boundary import log_unexpected
from comfy_quality.errors import ComfyQualityError
from comfy_quality.settings import Settings, tree_of
from mcp_server.errors import McpServerConfigError, ModelsLoadingError, ScoringError
from mcp_server.generation_args import WorkflowResolver
from mcp_server.jobs import JobManager
from mcp_server.jobs_api import JobBackend
from mcp_server.limits import Gate
from mcp_server.netguard import UrlPolicy
from mcp_server.protocols import GenerationIndex, Generator, ImageScorer, ObjectStore
from mcp_server.settings import McpSettings
from mcp_server.sources import ImageSources
from quality.image_io import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)


@dataclass
class Components:
    """What the server is built from. Only the scorer is required; without a generator the generation tools
    answer 'not configured', without a store ``s3://`` images are refused, without an index
    ``list_generations`` shows this server's jobs only."""

    scorer_factory: Callable[[], ImageScorer]
    """Builds the scorer (blocking, loads the models); called once, in a worker thread."""
    generator: Generator | None = None
    store: ObjectStore | None = None
    index: GenerationIndex | None = None
    trusted_hosts: list[str] = field(default_factory=list)
    """``host[:port]`` of the server's own services (MinIO/S3 endpoint, ComfyUI): internal addresses that image
    downloads never go to, neither directly nor through a redirect (the store's own URLs are read through the
    store instead)."""
    max_image_bytes: int = DEFAULT_MAX_BYTES


@asynccontextmanager
async def build_components(settings: Settings | McpSettings) -> AsyncIterator[Components]:
    """THE WIRING POINT: build the real components from the settings tree (and close them on exit)."""
    tree = tree_of(settings, "mcp")
    if tree.mcp.components:
        async with _custom_components(tree.mcp) as custom:
            yield custom
        return

    quality_settings = tree.quality

    def build_scorer() -> ImageScorer:
        from quality.scorer import Scorer

        return Scorer(quality_settings)

    scorer_factory = start_now(build_scorer)
    from mcp_server.wiring import default_components

    async with default_components(scorer_factory, tree) as parts:
        yield Components(
            scorer_factory=scorer_factory,
            generator=parts["generator"],
            store=parts["store"],
            index=parts["index"],
            trusted_hosts=parts["trusted_hosts"],
            max_image_bytes=quality_settings.max_image_bytes,
        )


@asynccontextmanager
async def _custom_components(settings: McpSettings) -> AsyncIterator[Components]:
    target = settings.components or ""
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "components")
    except (ImportError, AttributeError, ValueError) as exc:
        raise McpServerConfigError(f"COMFY_QUALITY_MCP_COMPONENTS={target!r} cannot be imported: {exc}") from exc
    made = factory(settings)
    if isinstance(made, Components):
        yield made
    elif hasattr(made, "__aenter__"):
        async with cast(AbstractAsyncContextManager[Components], made) as components:
            yield components
    else:
        raise McpServerConfigError(
            f"{target} returned {type(made).__name__}, not Components or an async context manager"
        )


def start_now(factory: Callable[[], ImageScorer]) -> Callable[[], ImageScorer]:
    """Run ``factory`` in a daemon thread from now on; the returned factory waits for (and returns, to every
    caller, the same) result. The built-in wiring starts the scorer this way before the slower imports of the
    store, index and orchestrator, so the models load while they do."""
    future: Future[ImageScorer] = Future()

    def work() -> None:
        try:
            future.set_result(factory())
        except BaseException as exc:  # delivered to whoever waits for the scorer
            future.set_exception(exc)

    threading.Thread(target=work, name="load scoring models", daemon=True).start()
    return future.result


class ScorerHandle:
    """The scorer, loading in a worker thread from start-up; :meth:`get` waits for it, at most ``wait_seconds``."""

    def __init__(self, factory: Callable[[], ImageScorer], *, wait_seconds: float = 25.0) -> None:
        self._factory = factory
        self._wait_seconds = wait_seconds
        self._ready = anyio.Event()
        self._scorer: ImageScorer | None = None
        self._error: str | None = None
        self._started = time.monotonic()

    def start(self, tg: TaskGroup) -> None:
        self._started = time.monotonic()
        tg.start_soon(self._load, name="load scoring models")

    async def _load(self) -> None:
        try:
            self._scorer = await anyio.to_thread.run_sync(self._factory, abandon_on_cancel=True)
            log.info("scoring models loaded")
        except ComfyQualityError as exc:  # e.g. weights that fail their checksum: the message says what to do
            log.error("the scorer could not be loaded: %s", exc)
            self._error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug: logged with its traceback
            log_unexpected("loading the scoring models", exc, log)
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def retry_after(self) -> int:
        """Seconds a caller turned away while the models load should wait before retrying: half the loading
        time so far (a load that has run long is likely to run a while longer), 2–30 s."""
        return min(30, max(2, math.ceil((time.monotonic() - self._started) / 2)))

    async def get(self, wait_seconds: float | None = None) -> ImageScorer:
        """The loaded scorer. While the models load, waits at most ``wait_seconds`` (default: the handle's cap),
        then raises :class:`ModelsLoadingError` with a retry hint."""
        if not self._ready.is_set():
            cap = self._wait_seconds if wait_seconds is None else max(0.0, min(wait_seconds, self._wait_seconds))
            with anyio.move_on_after(cap):
                await self._ready.wait()
            if not self._ready.is_set():
                loading = time.monotonic() - self._started
                retry = self.retry_after()
                raise ModelsLoadingError(
                    f"the scoring models are loading ({loading:.0f} s so far); retry in {retry} s",
                    retry_after=retry,
                )
        if self._scorer is None:
            raise ScoringError(f"the scorer could not be loaded on this server ({self._error}); see its log")
        return self._scorer

    def close(self) -> None:
        close = getattr(self._scorer, "close", None)
        if callable(close):
            close()


@dataclass
class AppState:
    """Everything the tools share; ``ctx.request_context.lifespan_context`` in a tool."""

    settings: McpSettings
    scorer: ScorerHandle
    sources: ImageSources
    score_gate: Gate
    jobs: JobBackend
    """In-process (default) or Redis (``COMFY_QUALITY_JOBS_URL``): see :mod:`mcp_server.jobs_api`."""
    store: ObjectStore | None
    index: GenerationIndex | None
    workflows: WorkflowResolver = field(default_factory=WorkflowResolver)
    """Checks ``generate_quality``'s ``workflow`` argument (templates, inline JSON, files under the roots)."""
    tree: Settings | None = None
    """The settings tree the state was built from (``settings`` is its ``mcp`` section)."""


def _job_backend(tree: Settings, components: Components) -> Any:
    """The Redis backend when ``COMFY_QUALITY_JOBS_URL`` is set, else the in-process one (the default)."""
    settings = tree.mcp
    try:
        jobs_settings = tree.jobs
    except ValueError as exc:
        raise McpServerConfigError(f"job queue settings: {exc}") from exc
    if jobs_settings.enabled:
        from mcp_server.jobs_redis import RedisJobBackend

        return RedisJobBackend(jobs_settings, retention_seconds=settings.job_retention_seconds)
    generation_gate = Gate("generations", running=settings.generation_concurrency, queued=settings.generation_queue)
    return JobManager(
        components.generator,
        generation_gate,
        retention_seconds=settings.job_retention_seconds,
        max_kept=settings.max_jobs_kept,
    )


@asynccontextmanager
async def open_app_state(
    settings: Settings | McpSettings, components: Components | None = None
) -> AsyncIterator[AppState]:
    """Build the shared state (components from :func:`build_components` unless given) and close it on exit.
    ``settings``: the process's settings tree, or its ``mcp`` section alone."""
    tree = tree_of(settings, "mcp")
    if components is None:
        async with build_components(tree) as built, open_app_state(tree, built) as state:
            yield state
        return
    settings = tree.mcp
    policy = UrlPolicy(
        allowlist=list(settings.url_allowlist),
        internal_hosts=list(components.trusted_hosts),
        allow_private_networks=settings.allow_private_networks,
        max_bytes=min(settings.download_max_bytes, components.max_image_bytes),
        timeout_seconds=settings.download_timeout_seconds,
        max_redirects=settings.max_redirects,
    )
    sources = ImageSources(
        roots=list(settings.roots),
        policy=policy,
        store=components.store,
        base64_max_bytes=min(settings.base64_max_bytes, components.max_image_bytes),
        file_max_bytes=components.max_image_bytes,
        s3_buckets=list(settings.s3_buckets) or None,
        allow_hardlinks=settings.allow_hardlinks,
    )
    scorer = ScorerHandle(components.scorer_factory, wait_seconds=settings.max_wait_seconds)
    jobs = _job_backend(tree, components)
    async with anyio.create_task_group() as tg, jobs:
        scorer.start(tg)
        try:
            yield AppState(
                settings=settings,
                scorer=scorer,
                sources=sources,
                score_gate=Gate("score requests", running=settings.score_concurrency, queued=settings.score_queue),
                jobs=jobs,
                store=components.store,
                index=components.index,
                workflows=WorkflowResolver(
                    roots=list(settings.workflow_roots),
                    max_bytes=settings.workflow_max_bytes,
                    allow_hardlinks=settings.allow_hardlinks,
                ),
                tree=tree,
            )
        finally:
            tg.cancel_scope.cancel()
            scorer.close()
