from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobqueue.services import RedisServer, redis_binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free 127.0.0.1 port, for this test only."""
    if redis_binary() is None:
        pytest.skip("redis-server is not installed: `apt-get install redis-server` (./run test installs it)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
