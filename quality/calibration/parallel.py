"""One parallel map for the fit-time work (features of images, damage ladders, natural-photo ladders): a process
pool when ``jobs > 1``, a plain loop otherwise (same results, same order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def parallel_map(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    jobs: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> list[Any]:
    """``[fn(item) for item in items]``, over ``jobs`` processes (each started with ``initializer(*initargs)``)."""
    if jobs <= 1 or len(items) < 2:
        if initializer is not None:
            initializer(*initargs)
        return [fn(it) for it in items]
    with ProcessPoolExecutor(max_workers=jobs, initializer=initializer, initargs=initargs) as pool:
        return list(pool.map(fn, items, chunksize=8))
