"""Bounded concurrency with a bounded queue: a burst of calls cannot exhaust memory.

``Gate(running=2, queued=16)`` lets two holders in at once and up to sixteen more wait; the eighteen-th
concurrent caller gets :class:`~mcp_server.errors.ServerBusyError` at once instead of piling up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from mcp_server.errors import ServerBusyError


class Gate:
    def __init__(self, name: str, *, running: int, queued: int) -> None:
        self.name = name
        self.capacity = running
        self.queue_limit = queued
        self._semaphore = anyio.Semaphore(running)
        self._inside = 0  # holders + waiters

    @property
    def running(self) -> int:
        return self.capacity - self._semaphore.value

    @property
    def waiting(self) -> int:
        return self._inside - self.running

    def admit(self) -> None:
        """Count one more caller, or raise :class:`ServerBusyError` when running + waiting is at the bound."""
        if self._inside >= self.capacity + self.queue_limit:
            raise ServerBusyError(
                f"server busy: {self.running} {self.name} running and {self.waiting} waiting (limit "
                f"{self.capacity} + {self.queue_limit} queued); retry in a few seconds"
            )
        self._inside += 1

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[float]:
        """For a caller already counted by :meth:`admit`: wait for a free slot, yield the seconds spent
        waiting; the caller is uncounted on exit (also when cancelled while waiting)."""
        try:
            started = anyio.current_time()
            async with self._semaphore:
                yield anyio.current_time() - started
        finally:
            self._inside -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """:meth:`admit` then :meth:`admitted`."""
        self.admit()
        async with self.admitted() as waited:
            yield waited
