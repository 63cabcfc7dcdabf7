"""HTTP and websocket plumbing shared by the client: URL handling and the mapping of transport failures
onto the
:mod:`~refinement.comfyui.errors` tree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from refinement.comfyui.errors import (
    ComfyUIProtocolError,
    ComfyUIServerError,
    ComfyUIUnreachableError,
)
from refinement.comfyui.messages import ServerMessage, Status, parse_message
from refinement.errors import RefinementConfigError

log = logging.getLogger(__name__)

#: The first message a client sends: ask for type-4 previews, which name the prompt they belong to.
FEATURE_FLAGS_MESSAGE = '{"type": "feature_flags", "data": {"supports_preview_metadata": true}}'


def normalize_base_url(base_url: str) -> str:
    """``http://host:port[/prefix]`` without a trailing slash. A prefix such as ``/api`` is kept for
    every route."""
    if "://" not in base_url:
        base_url = "http://" + base_url
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise RefinementConfigError(f"ComfyUI base URL must be http(s)://host:port, got {base_url!r}")
    if not parts.netloc:
        raise RefinementConfigError(f"ComfyUI base URL has no host: {base_url!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def websocket_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={client_id}", ""))


def new_client_id() -> str:
    return uuid.uuid4().hex


class Http:
    """A thin wrapper over :class:`httpx.AsyncClient` that raises our errors."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.client = client

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        url = self.base_url + path
        try:
            response = await self.client.request(
                method, url, json=json_body, params=params, files=files, data=data
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ComfyUIUnreachableError(
                f"cannot connect to ComfyUI at {self.base_url} ({_describe(exc)}). Is the server "
                f"running and is the "
                "address right?",
                server=self.base_url,
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ReadTimeout) as exc:
            raise ComfyUIUnreachableError(
                f"lost the connection to ComfyUI during {method} {path} ({_describe(exc)}). The server "
                f"may have "
                "restarted or be overloaded.",
                server=self.base_url,
            ) from exc
        except httpx.HTTPError as exc:
            raise ComfyUIUnreachableError(
                f"HTTP error talking to ComfyUI ({method} {path}: {_describe(exc)})", server=self.base_url
            ) from exc
        if response.status_code >= 500:
            raise ComfyUIServerError(
                f"ComfyUI answered {response.status_code} to {method} {path}: {response.text[:300]!r}. "
                "See the server log.",
                status=response.status_code,
                body=response.text,
                server=self.base_url,
            )
        if response.status_code not in ok:
            raise ComfyUIProtocolError(
                f"unexpected HTTP {response.status_code} from {method} {path}: {response.text[:300]!r}",
                server=self.base_url,
            )
        return response

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        response = await self.request("GET", path, params=params)
        return self.decode(response, f"GET {path}")

    def decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ComfyUIProtocolError(
                f"{what} did not return JSON: {response.text[:200]!r}", server=self.base_url
            ) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Closed:
    """Put on a :class:`Socket`'s queue when the connection ends."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Socket:
    """One websocket connection with its own client id; a reader task parses frames into ``queue``."""

    def __init__(self, connection: ClientConnection, client_id: str, base_url: str) -> None:
        self.connection = connection
        self.client_id = client_id
        self.base_url = base_url
        self.queue: asyncio.Queue[ServerMessage | Closed | ComfyUIProtocolError] = asyncio.Queue()
        self.alive = True
        self._reader = asyncio.create_task(self._read(), name=f"comfyui-ws-{client_id[:8]}")

    @classmethod
    async def open(cls, base_url: str, *, open_timeout: float) -> Socket:
        """Connect with a fresh client id, announce feature flags, and wait for the ``status`` that
        carries our
        ``sid``: once it arrived the server has registered the socket, so a prompt submitted now is
        routed here."""
        client_id = new_client_id()
        url = websocket_url(base_url, client_id)
        try:
            async with asyncio.timeout(open_timeout + 1):
                connection = await connect(
                    url, open_timeout=open_timeout, max_size=None, ping_interval=20, ping_timeout=60
                )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ComfyUIUnreachableError(
                f"cannot open the ComfyUI websocket {url} ({_describe(exc)}). Is the server running?",
                server=base_url,
            ) from exc
        sock = cls(connection, client_id, base_url)
        try:
            await connection.send(FEATURE_FLAGS_MESSAGE)
            async with asyncio.timeout(open_timeout):
                await sock._wait_for_sid()
        except (TimeoutError, ConnectionClosed, OSError) as exc:
            await sock.close()
            raise ComfyUIUnreachableError(
                f"the ComfyUI websocket {url} opened but did not greet us ({_describe(exc)})", server=base_url
            ) from exc
        return sock

    async def _wait_for_sid(self) -> None:
        # Messages before the greeting cannot exist (the server sends status{sid} first); keep anything else.
        held: list[ServerMessage | Closed | ComfyUIProtocolError] = []
        while True:
            item = await self.queue.get()
            if isinstance(item, Closed):
                raise ConnectionClosed(None, None)
            if isinstance(item, Status) and item.sid is not None:
                if item.sid != self.client_id:
                    log.warning("ComfyUI greeted us as %s, not %s", item.sid, self.client_id)
                break
            held.append(item)
        for item in held:
            self.queue.put_nowait(item)

    async def _read(self) -> None:
        reason = "closed"
        try:
            async for frame in self.connection:
                try:
                    self.queue.put_nowait(parse_message(frame))
                except ComfyUIProtocolError as exc:
                    self.queue.put_nowait(exc)
        except ConnectionClosed as exc:
            reason = f"closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except OSError as exc:
            reason = f"error: {exc}"
        finally:
            self.alive = False
            self.queue.put_nowait(Closed(reason))

    async def close(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.connection.close()
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
