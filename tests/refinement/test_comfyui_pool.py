"""ComfyUIPool: least-busy dispatch, skipping dead servers, re-probing them, failing over mid-job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from refinement.comfyui import (
    USE_CLIENT_DEFAULT,
    ComfyUIClient,
    ComfyUIPool,
    ComfyUITimeoutError,
    ComfyUIUnreachableError,
)
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import free_port, tiny_workflow


@pytest.fixture
async def two() -> AsyncIterator[tuple[FakeComfyUI, FakeComfyUI]]:
    async with FakeComfyUI() as a, FakeComfyUI() as b:
        yield a, b


class _Busy:
    """One running and ``jobs - 1`` pending slow prompts from another client."""

    def __init__(self, server: FakeComfyUI, jobs: int) -> None:
        self.server = server
        self.jobs = jobs
        self.client = ComfyUIClient(server.url)
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> _Busy:
        self.server.misbehave(step_delay=0.05)
        self.tasks = [
            asyncio.create_task(self.client.run(tiny_workflow(steps=400, seed=1000 + i)))
            for i in range(self.jobs)
        ]
        await self.server.wait_for(lambda: self.server.engine.queue_remaining == self.jobs)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.close()
        self.server.misbehave(step_delay=0.0)


async def test_jobs_go_to_the_least_busy_server(two: tuple[FakeComfyUI, FakeComfyUI]) -> None:
    a, b = two
    async with _Busy(a, jobs=2), ComfyUIPool([a.url, b.url]) as pool:
        assert (await pool.pick()).base_url == b.url
        result = await pool.run(tiny_workflow(seed=3))
        assert result.server == b.url and result.images
        assert result.prompt_id in b.engine.history and result.prompt_id not in a.engine.history
        status = {s.url: s for s in await pool.status()}
        assert status[a.url].load == 2 and status[b.url].load == 0


async def test_concurrent_jobs_spread_over_idle_servers(two: tuple[FakeComfyUI, FakeComfyUI]) -> None:
    a, b = two
    async with ComfyUIPool([a.url, b.url]) as pool:
        results = await asyncio.gather(*(pool.run(tiny_workflow(seed=s)) for s in (1, 2)))
    assert {r.server for r in results} == {a.url, b.url}


async def test_a_dead_server_is_skipped_and_reprobed_when_back(two: tuple[FakeComfyUI, FakeComfyUI]) -> None:
    a, b = two
    await b.stop()
    async with ComfyUIPool([b.url, a.url], backoff_initial=0.0) as pool:
        result = await pool.run(tiny_workflow())
        assert result.server == a.url
        status = {s.url: s for s in await pool.status()}
        assert not status[b.url].healthy and "cannot connect" in (status[b.url].last_error or "")
        await b.start()
        async with _Busy(a, jobs=1):
            assert (await pool.pick()).base_url == b.url  # back, healthy and idle
            assert {s.url: s.healthy for s in await pool.status()} == {a.url: True, b.url: True}


async def test_a_failed_server_is_not_probed_during_its_backoff(two: tuple[FakeComfyUI, FakeComfyUI]) -> None:
    a, b = two
    await b.stop()
    async with ComfyUIPool([b.url, a.url], backoff_initial=60.0) as pool:
        assert (await pool.pick()).base_url == a.url
        await b.start()
        b.requests.clear()
        assert (await pool.pick()).base_url == a.url
        assert not b.requests  # still inside its backoff: not even probed


async def test_job_fails_over_when_its_server_dies_mid_run(two: tuple[FakeComfyUI, FakeComfyUI]) -> None:
    a, b = two
    a.misbehave(step_delay=0.02)
    sampling = asyncio.Event()
    clients = [
        ComfyUIClient(url, poll_interval=0.05, reconnect_timeout=0.3, connect_timeout=0.5)
        for url in (a.url, b.url)
    ]
    async with ComfyUIPool(clients) as pool:
        task = asyncio.create_task(
            pool.run(
                tiny_workflow(steps=40), on_progress=lambda e: sampling.set() if e.server == a.url else None
            )
        )
        await asyncio.wait_for(sampling.wait(), 10)
        await a.stop()
        result = await asyncio.wait_for(task, 20)
    assert result.server == b.url and result.images


async def test_all_servers_down_is_unreachable() -> None:
    async with ComfyUIPool([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]) as pool:
        with pytest.raises(ComfyUIUnreachableError, match="no ComfyUI server is reachable"):
            await pool.run(tiny_workflow())


def test_pool_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ComfyUIPool([])
    with pytest.raises(ValueError, match="same server twice"):
        ComfyUIPool(["http://127.0.0.1:1", "http://127.0.0.1:1/"])


async def test_max_in_flight_bounds_the_jobs_per_server_and_queues_the_rest(
    two: tuple[FakeComfyUI, FakeComfyUI],
) -> None:
    a, b = two
    for server in two:
        server.misbehave(step_delay=0.02)
    peak: dict[str, int] = {a.url: 0, b.url: 0}
    async with ComfyUIPool([a.url, b.url], max_in_flight=1) as pool:

        async def watch() -> None:
            while True:
                for m in pool._members:
                    peak[m.client.base_url] = max(peak[m.client.base_url], m.in_flight)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            results = await asyncio.gather(*(pool.run(tiny_workflow(steps=10, seed=50 + i)) for i in range(5)))
        finally:
            watcher.cancel()
    assert all(r.images for r in results)
    assert peak == {a.url: 1, b.url: 1}  # never two of this pool's jobs on one server
    assert {r.server for r in results} == {a.url, b.url}
    with pytest.raises(ValueError, match="max_in_flight"):
        ComfyUIPool([a.url], max_in_flight=0)


async def test_timeout_none_means_no_limit_through_the_pool_and_the_default_is_the_clients(
    two: tuple[FakeComfyUI, FakeComfyUI],
) -> None:
    a, _ = two
    a.misbehave(step_delay=0.02)  # 40 steps: about 0.8 s, well over the clients' 0.2 s default
    async with ComfyUIPool([a.url], timeout=0.2) as pool:
        with pytest.raises(ComfyUITimeoutError) as caught:
            await pool.run(tiny_workflow(steps=40, seed=7))  # USE_CLIENT_DEFAULT: the client's 0.2 s
        assert caught.value.timeout == pytest.approx(0.2)
        with pytest.raises(ComfyUITimeoutError):
            await pool.run(tiny_workflow(steps=40, seed=8), timeout=USE_CLIENT_DEFAULT)
        result = await pool.run(tiny_workflow(steps=40, seed=9), timeout=None)  # no limit, not the default
    assert result.server == a.url and result.images
