"""Several ComfyUI servers behind one ``run()``.

:class:`ComfyUIPool` sends each job to the least busy healthy server, measured by ``GET /queue`` (running +
pending). A server that fails (unreachable, or a 5xx answer) is skipped until it answers again: it is
re-probed after a backoff that doubles with every consecutive failure (``backoff_initial`` …
``backoff_max``). When every server is marked down, all of them are probed at once rather than failing a job
on stale information.

``max_in_flight`` bounds the jobs this pool runs on one server at once: a job that finds every healthy server
at the bound waits for a slot (the worker of ``comfy-quality-worker`` sets it per server).

If a job fails on a server for a transient reason (unreachable or 5xx, before or during the run), it is run
again on the next best server, at most once per server. Errors about the job itself (validation, execution,
timeout, missing models) are raised at once: another server would not fix them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict

from refinement.comfyui.client import ComfyUIClient
from refinement.comfyui.errors import ComfyUIError, ComfyUIServerError, ComfyUIUnreachableError
from refinement.comfyui.models import USE_CLIENT_DEFAULT, RunResult, RunTimeout
from refinement.comfyui.run import ProgressCallback
from refinement.errors import RefinementConfigError

log = logging.getLogger(__name__)

_TRANSIENT = (ComfyUIUnreachableError, ComfyUIServerError)


class ServerStatus(BaseModel):
    """A snapshot of one pool member (for reporting)."""

    model_config = ConfigDict(frozen=True)
    url: str
    healthy: bool
    load: int | None
    in_flight: int
    failures: int
    last_error: str | None
    retry_in_s: float | None


@dataclass
class _Member:
    client: ComfyUIClient
    index: int
    healthy: bool = True
    failures: int = 0
    next_probe: float = 0.0
    in_flight: int = 0
    load: int | None = None
    last_error: str | None = None


class ComfyUIPool:
    """Least-busy dispatch over several servers, with failure skipping and re-probing.

    Args:
        servers: base URLs, or ready :class:`ComfyUIClient` objects (then closed by :meth:`close` too).
        backoff_initial / backoff_max: seconds before a failed server is probed again (doubling per failure).
        probe_timeout: limit of one ``/queue`` probe.
        max_in_flight: most jobs of this pool on one server at once (None: no bound).
        **client_kwargs: passed to :class:`ComfyUIClient` for URL entries (``timeout=``,
        ``poll_interval=``, ...).
    """

    def __init__(
        self,
        servers: Sequence[str | ComfyUIClient],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        probe_timeout: float = 5.0,
        max_in_flight: int | None = None,
        **client_kwargs: Any,
    ) -> None:
        if not servers:
            raise RefinementConfigError("ComfyUIPool needs at least one server URL")
        if max_in_flight is not None and max_in_flight < 1:
            raise RefinementConfigError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._slot_freed = asyncio.Event()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.probe_timeout = probe_timeout
        self._members = [
            _Member(client=s if isinstance(s, ComfyUIClient) else ComfyUIClient(s, **client_kwargs), index=i)
            for i, s in enumerate(servers)
        ]
        urls = [m.client.base_url for m in self._members]
        if len(set(urls)) != len(urls):
            raise RefinementConfigError(f"ComfyUIPool got the same server twice: {urls}")
        self._rotation = itertools.count()

    @property
    def clients(self) -> list[ComfyUIClient]:
        return [m.client for m in self._members]

    async def __aenter__(self) -> ComfyUIPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(m.client.close() for m in self._members), return_exceptions=True)

    # ------------------------------------------------------------------ dispatch
    async def run(
        self,
        workflow: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        timeout: RunTimeout = USE_CLIENT_DEFAULT,
        extra_data: Mapping[str, Any] | None = None,
        download: bool = True,
    ) -> RunResult:
        """Run the job on the least busy healthy server; on a transient failure, on the next one.

        ``timeout`` as in :meth:`ComfyUIClient.run`: seconds, ``None`` (no limit) or
        :data:`~refinement.comfyui.models.USE_CLIENT_DEFAULT` (the chosen server's client's default)."""
        tried: set[int] = set()
        errors: list[str] = []
        while len(tried) < len(self._members):
            member = await self._pick(exclude=tried, bounded=True)
            tried.add(member.index)
            member.in_flight += 1
            try:
                return await member.client.run(
                    workflow,
                    on_progress=on_progress,
                    timeout=timeout,
                    extra_data=extra_data,
                    download=download,
                )
            except _TRANSIENT as exc:
                self._mark_down(member, exc)
                errors.append(f"{member.client.base_url}: {exc.message}")
                log.warning(
                    "ComfyUI server %s failed (%s); trying another", member.client.base_url, exc.message
                )
            finally:
                member.in_flight -= 1
                freed, self._slot_freed = self._slot_freed, asyncio.Event()
                freed.set()
        raise ComfyUIUnreachableError(
            "every ComfyUI server failed this job:\n" + "\n".join(f"  - {e}" for e in errors)
        )

    async def pick(self) -> ComfyUIClient:
        """The client a job would go to now (probes the servers)."""
        return (await self._pick(exclude=set())).client

    async def preflight(self, workflow: Mapping[str, Any], *, refresh: bool = False) -> None:
        """:meth:`ComfyUIClient.preflight` on the server a job would go to now."""
        await (await self.pick()).preflight(workflow, refresh=refresh)

    async def status(self) -> list[ServerStatus]:
        """Probe every server and report its state."""
        await asyncio.gather(*(self._probe(m) for m in self._members))
        now = time.monotonic()
        return [
            ServerStatus(
                url=m.client.base_url,
                healthy=m.healthy,
                load=m.load,
                in_flight=m.in_flight,
                failures=m.failures,
                last_error=m.last_error,
                retry_in_s=None if m.healthy else max(0.0, m.next_probe - now),
            )
            for m in self._members
        ]

    async def _pick(self, *, exclude: set[int], bounded: bool = False) -> _Member:
        while True:
            member = await self._pick_once(exclude=exclude)
            if not bounded or self.max_in_flight is None:
                return member
            free = [m for m in self._members if m.index not in exclude and m.healthy]
            free = [m for m in free if m.in_flight < self.max_in_flight]
            if member.in_flight < self.max_in_flight:
                return member
            if free:
                return min(free, key=lambda m: (max(m.load or 0, m.in_flight), m.in_flight))
            await self._slot_freed.wait()  # every healthy server is at its bound: wait for a slot

    async def _pick_once(self, *, exclude: set[int]) -> _Member:
        now = time.monotonic()
        candidates = [
            m for m in self._members if m.index not in exclude and (m.healthy or m.next_probe <= now)
        ]
        if not candidates:
            # Everything left is inside its backoff: probe it all rather than fail on stale information.
            candidates = [m for m in self._members if m.index not in exclude]
        await asyncio.gather(*(self._probe(m) for m in candidates))
        alive = [m for m in candidates if m.healthy]
        if not alive:
            details = "\n".join(f"  - {m.client.base_url}: {m.last_error}" for m in candidates)
            raise ComfyUIUnreachableError(
                f"no ComfyUI server is reachable:\n{details}\nStart a server or fix the configured URLs."
            )
        turn = next(self._rotation)
        n = len(self._members)

        def busy(m: _Member) -> tuple[int, int, int]:
            # The server's queue counts our submitted jobs; in_flight also counts those not submitted yet.
            return (max(m.load or 0, m.in_flight), m.in_flight, (m.index - turn) % n)

        return min(alive, key=busy)

    async def _probe(self, member: _Member) -> None:
        try:
            async with asyncio.timeout(self.probe_timeout):
                state = await member.client.queue()
        except TimeoutError:
            self._mark_down(
                member, ComfyUIUnreachableError(f"no answer to GET /queue in {self.probe_timeout} s")
            )
        except _TRANSIENT as exc:
            self._mark_down(member, exc)
        except ComfyUIError as exc:  # a broken answer: treat like a failure, it may recover
            self._mark_down(member, exc)
        else:
            if not member.healthy:
                log.info("ComfyUI server %s answers again", member.client.base_url)
            member.healthy = True
            member.failures = 0
            member.load = state.load
            member.last_error = None

    def _mark_down(self, member: _Member, exc: ComfyUIError) -> None:
        member.healthy = False
        member.failures += 1
        delay = min(self.backoff_max, self.backoff_initial * (2 ** (member.failures - 1)))
        member.next_probe = time.monotonic() + delay
        member.last_error = exc.message
        member.load = None
