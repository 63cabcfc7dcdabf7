"""Scoring many files, in one process or several (throughput grows with cores).

Each worker process builds its own :class:`~quality.scorer.Scorer` once (models load once per process) and
scores its share of the files; results come back in input order. With ``jobs=1`` everything runs in this
process with one scorer.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from comfy_quality.boundary import recorded_reason
from quality.report import QualityReport
from quality.settings import QualitySettings

_worker: Any = None


def _init(settings_json: str, single_threaded: bool = False) -> None:
    global _worker
    from quality.scorer import Scorer

    settings = QualitySettings.model_validate_json(settings_json)
    options: dict[str, object] = {}
    if single_threaded:  # one process per core: threads inside each would only fight over the same cores
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        threadpool_limits(1)  # numpy's BLAS (the calibration's matrix products) too
        settings = settings.model_copy(update={"workers": 1})
        options["nss_threads"] = 1
    _worker = Scorer(settings, options=options)


def _score(item: tuple[str, str | None]) -> QualityReport | str:
    path, prompt = item
    try:
        report: QualityReport = _worker.score(path, prompt)
        return report
    except Exception as exc:  # one file must not sink the batch; a bug is logged with its traceback
        return recorded_reason(f"scoring {path}", exc)


def score_files(
    items: Sequence[tuple[Path, str | None]], settings: QualitySettings, *, jobs: int = 1, scorer: Any = None
) -> Iterator[QualityReport | str]:
    """Reports (or the error message for an unusable file), in the order of ``items``."""
    work = [(str(path), prompt) for path, prompt in items]
    if jobs <= 1 or len(work) <= 1:
        if scorer is not None:
            global _worker
            _worker = scorer
        else:
            _init(settings.model_dump_json())
        yield from map(_score, work)
        return
    # spawn, not fork: forking a process that already runs threads (torch, the scorer's pool) can deadlock
    context = multiprocessing.get_context("spawn")
    init = (settings.model_dump_json(), True)
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init, initargs=init) as pool:
        yield from pool.map(_score, work, chunksize=2)
