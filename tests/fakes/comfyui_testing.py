"""Helpers for tests that use the fake ComfyUI server: shared data paths, small workflows, raw sockets."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from refinement.params import GenerationParams
from refinement.workflows import load_template, patch

REPO = Path(__file__).resolve().parents[2]


SHARED_MISSING = (
    "needs the ComfyUI recordings and shared workflows (shared/comfyui, shared/workflows), not found next to the "
    "repository, at $COMFY_QUALITY_SHARED or at /work/shared; set COMFY_QUALITY_SHARED to that folder to run it"
)


@functools.cache
def find_shared() -> Path | None:
    """``../shared`` next to the repository (CI layout), else ``$COMFY_QUALITY_SHARED`` or ``/work/shared``;
    None when none holds the recordings. Resolved once, at import (before the tests clear the environment)."""
    for candidate in (
        REPO.parent / "shared",
        Path(os.environ.get("COMFY_QUALITY_SHARED", "/nonexistent")),
        Path("/work/shared"),
    ):
        if (candidate / "comfyui" / "README.md").is_file():
            return candidate
    return None


#: Marks a test that reads the shared recordings or workflows: skipped, with the reason, in a clone without them.
needs_shared = pytest.mark.skipif(find_shared() is None, reason=SHARED_MISSING)


def shared_dir() -> Path:
    """The shared data folder; skips the calling test (with the reason) when it is absent."""
    found = find_shared()
    if found is None:
        pytest.skip(SHARED_MISSING)
    return found


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir() / "comfyui" / name).read_text())
    return data


def shared_workflow_paths() -> list[Path]:
    """The shared workflows; empty when the folder is absent (tests using them carry :data:`needs_shared`)."""
    found = find_shared()
    return sorted((found / "workflows").glob("*.json")) if found else []


def tiny_workflow(
    *, steps: int = 4, size: int = 64, seed: int = 1, batch: int = 1, prompt: str | None = None
) -> dict:
    """The sd15 template, small and quick on the fake server."""
    params = GenerationParams(
        steps=steps, width=size, height=size, seed=seed, batch_size=batch, prompt=prompt
    )
    return patch(load_template("sd15"), params)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RawSocket:
    """A plain websocket client that records every frame (for protocol fidelity checks)."""

    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, client_id: str
    ) -> None:
        self.session = session
        self.ws = ws
        self.client_id = client_id
        self.frames: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base_url: str, client_id: str | None = None, *, path: str = "/ws") -> RawSocket:
        session = aiohttp.ClientSession()
        url = base_url.replace("http://", "ws://") + path + (f"?clientId={client_id}" if client_id else "")
        ws = await session.ws_connect(url, autoping=True)
        sock = cls(session, ws, client_id or "")
        await sock.wait_for(lambda frames: len(frames) >= 1)
        if not client_id:
            sock.client_id = sock.frames[0]["data"]["sid"]
        return sock

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    obj = json.loads(msg.data)
                    frame = {"kind": "text", "type": obj["type"], "data": obj["data"]}
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    frame = {"kind": "binary", "type": f"binary:{int.from_bytes(msg.data[:4], 'big')}",
                             "bytes": bytes(msg.data)}  # fmt: skip
                else:
                    continue
                async with self._new:
                    self.frames.append(frame)
                    self._new.notify_all()
        finally:
            async with self._new:
                self.frames.append({"kind": "closed", "type": "closed"})
                self._new.notify_all()

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(json.dumps(obj))

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout), self._new:
            while not (value := predicate(self.frames)):
                await self._new.wait()
            return value

    async def wait_end(self, prompt_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Frames up to and including ``executing{node: null, prompt_id}``."""

        def ended(frames: list[dict[str, Any]]) -> bool:
            return any(
                f["type"] == "executing"
                and f["data"].get("node") is None
                and f["data"].get("prompt_id") == prompt_id
                for f in frames
            )

        await self.wait_for(ended, timeout)
        return list(self.frames)

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames if f["type"] != "closed"]

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.session.close()


async def post_json(base_url: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(base_url + path, json=body) as resp:
        raw = await resp.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode()
        return resp.status, data, dict(resp.headers)


async def get_json(base_url: str, path: str, **params: Any) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url + path, params=params or None) as resp,
    ):
        raw = await resp.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw
        return resp.status, data, dict(resp.headers)
