"""Process-wide cache of loaded backends: every model is loaded at most once per process.

The original ComfyGen reloaded every model on each retry. Here :func:`load_backend` keys each backend on its
class, device, weights folder and options; a second :class:`~quality.scorer.Scorer` (or a second retry, or a
second MCP call) gets the already-loaded instance. :data:`LOAD_COUNTS` counts real loads per backend, which the
tests and the benchmark use to prove that nothing is loaded twice.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from collections.abc import Iterator

from quality.backends.base import Backend, LoadContext

_cache: dict[tuple[object, ...], Backend] = {}
_lock = threading.RLock()
LOAD_COUNTS: Counter[str] = Counter()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send anything written to ``sys.stdout`` to stderr instead (pyiqa and friends print while loading, which
    would corrupt a stdio MCP stream)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def load_backend(cls: type[Backend], ctx: LoadContext) -> Backend:
    """The loaded instance of ``cls`` for ``ctx``, loading it on first use. Load errors propagate (uncached, so a
    later call can succeed once the weights are there)."""
    backend = cls()
    key = backend.cache_key(ctx)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        with quiet_stdout():
            backend.load(ctx)
        LOAD_COUNTS[backend.name] += 1
        _cache[key] = backend
        return backend


def clear_cache() -> None:
    """Forget every loaded backend (tests; frees memory once no scorer holds them)."""
    with _lock:
        _cache.clear()
        LOAD_COUNTS.clear()
