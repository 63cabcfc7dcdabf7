"""The websocket registry, with ComfyUI's routing rules (README 2.1-2.2).

One entry per clientId. A new socket with a known id replaces the entry while the old socket stays open;
when *any* socket closes, the entry for its id is removed, even if it now points at a newer socket (which is
then
silenced: the duplicate-clientId trap). ``sid=None`` means broadcast to every registered socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}


class SocketRegistry:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.all_open: set[web.WebSocketResponse] = set()

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self.metadata.get(sid, {}).get("feature_flags", {})
        return bool(flags.get("supports_preview_metadata"))

    def _targets(self, sid: str | None) -> list[web.WebSocketResponse]:
        if sid is None:
            return list(self.sockets.values())
        ws = self.sockets.get(sid)
        return [ws] if ws is not None else []

    async def send_json(self, event: str, data: Any, sid: str | None) -> None:
        text = json.dumps({"type": event, "data": data})
        for ws in self._targets(sid):
            await self._send(ws, text)

    async def send_bytes(self, frame: bytes, sid: str | None) -> None:
        for ws in self._targets(sid):
            await self._send(ws, frame)

    async def _send(self, ws: web.WebSocketResponse, payload: str | bytes) -> None:
        if ws.closed:
            return
        try:
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
            else:
                await ws.send_str(payload)
        except (ConnectionError, RuntimeError) as exc:  # a client that went away: ComfyUI logs and goes on
            log.debug("send to a closed websocket failed: %s", exc)

    async def close_client(self, sid: str) -> int:
        """Close every open socket registered under ``sid`` (simulates a dropped connection)."""
        closed = 0
        for ws in list(self.all_open):
            if getattr(ws, "_fake_sid", None) == sid:
                with contextlib.suppress(Exception):
                    await ws.close(code=1011, message=b"connection dropped (fake misbehaviour)")
                closed += 1
        return closed

    async def close_all(self) -> None:
        for ws in list(self.all_open):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")


def preview_frame(image_bytes: bytes, mime: str) -> bytes:
    """Binary type 1: ``[u32 1][u32 image_type (1 JPEG, 2 PNG)][image]``."""
    image_type = 2 if mime == "image/png" else 1
    return struct.pack(">II", PREVIEW_IMAGE, image_type) + image_bytes


def preview_with_metadata_frame(image_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """Binary type 4: ``[u32 4][u32 len][metadata JSON, json.dumps defaults][image]``."""
    meta = json.dumps(metadata).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image_bytes


def text_frame(node_id: str, text: str) -> bytes:
    """Binary type 3: ``[u32 3][u32 node id length][node id][text]``."""
    node = node_id.encode()
    return struct.pack(">II", TEXT, len(node)) + node + text.encode()
