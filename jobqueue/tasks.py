"""The docket tasks of comfy-quality. Both sides register the same functions: a replica to queue them by name,
a worker to run them. A task's body runs in the worker's :class:`Runtime` (set once per worker process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Runtime(Protocol):
    async def run_generation(self, job_id: str) -> None: ...

    async def score_chunk(self, run_id: str, chunk: int) -> None: ...


_runtime: Runtime | None = None


def install_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("no comfy-quality worker runtime in this process (tasks run in comfy-quality-worker)")
    return _runtime


async def run_generation(job_id: str) -> None:
    """Run generation job ``job_id`` (its request and state are in the job record)."""
    await _current().run_generation(job_id)


async def score_chunk(run_id: str, chunk: int) -> None:
    """Score chunk ``chunk`` of re-scoring run ``run_id``."""
    await _current().score_chunk(run_id, chunk)


TASKS: list[Callable[..., Awaitable[Any]]] = [run_generation, score_chunk]
