"""The job queue's plug-in for ``comfy-quality score`` (entry-point group ``comfy_quality.score_handlers``).

Kept apart from :mod:`jobqueue.rescore` so that every local ``score`` run, which asks this handler first, pays only
for reading the jobs settings: the queue, Redis and the records load only when the workers take the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any


def score_handler(args: Any, items: Sequence[str], prompt: str | None, out: IO[str]) -> int | None:
    """``comfy-quality score`` / ``python -m quality score`` on the workers for an ``s3://`` source, or for one
    folder when ``COMFY_QUALITY_JOBS_URL`` is set (unless ``--local``); None leaves the command to the local
    scorer. The jobs and storage sections come from one settings tree, read here once."""
    from comfy_quality.settings import Settings
    from jobqueue.settings import wants_workers

    tree = Settings()
    local = getattr(args, "local", False)
    try:
        wanted = wants_workers(items, local, tree.jobs)
    except ValueError:  # set but invalid: if the workers would take it, their path names the problem
        wanted = wants_workers(items, local)
    if not wanted:
        return None
    from jobqueue.rescore import cli_score

    return cli_score(args, items, prompt, out, settings=tree)
