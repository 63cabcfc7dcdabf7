"""The queue: one :class:`docket.Docket` per process, with comfy-quality's tasks registered.

docket (``pydocket``, the Redis queue behind FastMCP's background tasks) keeps tasks in a Redis stream read by a
consumer group: a worker acknowledges a task when it ends, renews its lease while it runs, and a task whose
worker stopped renewing (killed, lost) is claimed again by another worker after ``redelivery_timeout``
(XAUTOCLAIM). Adding a task under an existing key is a no-op, and ``Docket.cancel(key)`` removes a queued task
or signals the worker that runs it (which cancels the task's asyncio task). See ``docs/jobs.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from redis.asyncio import Redis

from jobqueue.settings import JobsSettings
from jobqueue.tasks import TASKS

#: Redis client options of our own connections (job records, pub/sub): fail fast when Redis is away instead of
#: hanging a tool call, and notice a dead connection on the next use.
REDIS_OPTIONS: dict[str, float | bool] = {
    "socket_connect_timeout": 3.0,
    "socket_timeout": 10.0,
    "health_check_interval": 15.0,
    "retry_on_timeout": False,
}


def open_redis(settings: JobsSettings) -> Redis:
    return Redis.from_url(settings.redis_url(), **REDIS_OPTIONS)  # type: ignore[arg-type]


@asynccontextmanager
async def open_docket(settings: JobsSettings, *, execution_ttl: float = 3600.0) -> AsyncIterator[object]:
    """The docket with our tasks registered (connections are opened on first use)."""
    from docket import Docket

    async with Docket(
        name=settings.name, url=settings.redis_url(), execution_ttl=timedelta(seconds=execution_ttl)
    ) as docket:
        for task in TASKS:
            docket.register(task)
        yield docket
