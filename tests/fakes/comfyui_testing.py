"""Helpers for tests that use the fake ComfyUI server: shared data paths, small workflows, raw sockets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from refinement.params import GenerationParams
from refinement.workflows import load_template, patch

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``../shared`` next to the repository (CI layout), else ``$COMFY_QUALITY_SHARED`` or
    ``/work/shared``."""
    for candidate in (
        REPO.parent / "shared",
        Path(os.environ.get("COMFY_QUALITY_SHARED", "/nonexistent")),
        Path("/work/shared"),
    ):
        if (candidate / "comfyui" / "README.md").is_file():
            return candidate
    raise FileNotFoundError(
        "the shared data folder (shared/comfyui, shared/workflows) was not found next to the repository; "
        "set COMFY_QUALITY_SHARED to its path"
    )


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir() / "comfyui" / name).read_text())
    return data


def shared_workflow_paths() -> list[Path]:
    return sorted((shared_dir() / "workflows").glob("*.json"))


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
