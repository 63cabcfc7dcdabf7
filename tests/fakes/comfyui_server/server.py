"""The fake ComfyUI server: lifecycle, installed files, misbehaviour switches, observation.

In-process (pytest)::

    async with FakeComfyUI() as comfy:            # 127.0.0.1, a free port
        comfy.misbehave(execution_error=1)         # the next prompt fails in its sampler
        ... ComfyUIClient(comfy.url) ...
        await comfy.wait_for(lambda: comfy.executions, timeout=10)
        comfy.requests                              # what clients sent

As a subprocess: ``python -m tests.fakes.comfyui_server --port N`` (see ``__main__``), controlled over HTTP:
``GET /_fake/state``, ``POST /_fake/misbehave`` (JSON fields of :class:`Misbehaviour`), ``POST
/_fake/reset``, ``GET /_fake/requests``, ``POST /_fake/restart {"down_s": 1.0}``, ``POST /_fake/models``
(``{"folder": [...]}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.comfyui_server.executor import Engine, ExecutionRecord
from tests.fakes.comfyui_server.misbehaviour import Misbehaviour
from tests.fakes.comfyui_server.routes import add_routes
from tests.fakes.comfyui_server.sockets import SocketRegistry

log = logging.getLogger(__name__)

#: Model files a fresh fake server lists: those the shipped templates and most shared workflows name.
DEFAULT_MODELS: dict[str, list[str]] = {
    "checkpoints": [
        "v1-5-pruned-emaonly-fp16.safetensors",
        "v1-5-pruned-emaonly.safetensors",
        "sd_xl_base_1.0.safetensors",
        "ponyDiffusionV6XL_v6StartWithThisOne.safetensors",
    ],
    "diffusion_models": ["flux1-dev-fp8.safetensors", "flux1-dev.safetensors"],
    "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors"],
    "vae": ["ae.safetensors", "sdxl_vae.safetensors"],
    "loras": ["add_detail.safetensors", "film_grain.safetensors", "watercolor_style.safetensors"],
    "upscale_models": ["4x-UltraSharp.pth"],
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    time: float


@dataclass
class WsEvent:
    client_id: str
    event: str  # connect | message | close | current_node (the node sent to a reconnecting submitter)
    data: Any
    time: float


@web.middleware
async def _origin_check(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """ComfyUI's cross-site guard: a loopback Host with a different Origin host gets 403."""
    host, origin = request.headers.get("Host"), request.headers.get("Origin")
    if host and origin:
        host_name = host.split(":")[0].lower()
        origin_name = origin.split("://")[-1].split(":")[0].split("/")[0].lower()
        if host_name in ("127.0.0.1", "localhost", "::1") and origin_name and host_name != origin_name:
            return web.Response(status=403)
    response: web.StreamResponse = await handler(request)
    return response


class FakeComfyUI:
    """A protocol-faithful ComfyUI 0.3.64 stand-in on 127.0.0.1."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        root: str | Path | None = None,
        models: Mapping[str, Sequence[str]] | None = None,
        misbehaviour: Misbehaviour | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake ComfyUI server only listens on loopback")
        self.host = host
        self.port = port
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="fake-comfyui-"))
        self.dirs = {kind: self.root / kind for kind in ("input", "output", "temp")}
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, list[str]] = {k: list(v) for k, v in (models or DEFAULT_MODELS).items()}
        self.misbehaviour = misbehaviour or Misbehaviour()
        self.sockets = SocketRegistry()
        self.requests: list[RecordedRequest] = []
        self.ws_events: list[WsEvent] = []
        self.executions: list[ExecutionRecord] = []
        self.restarts = 0
        self.load_delay = 0.0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.engine = self._new_engine()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def __aenter__(self) -> FakeComfyUI:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _new_engine(self) -> Engine:
        engine = Engine(self.sockets, self.dirs, self.files, self.misbehaviour, self.changed)
        engine.executions = self.executions
        engine.load_delay = self.load_delay
        return engine

    async def start(self) -> None:
        """Listen (again). State that a real restart loses (queue, history, cache, temp files) starts
        empty."""
        if self._runner is not None:
            return
        self.sockets = SocketRegistry()
        self.engine = self._new_engine()
        shutil.rmtree(self.dirs["temp"], ignore_errors=True)
        self.dirs["temp"].mkdir(parents=True, exist_ok=True)
        app = web.Application(middlewares=[_origin_check, self._record], client_max_size=100 * 1024 * 1024)
        add_routes(app, self)
        self._add_control_routes(app)
        app.on_shutdown.append(self._on_shutdown)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._runner, self._site = runner, site
        self._worker = asyncio.create_task(self.engine.worker(), name="fake-comfyui-worker")
        await self.changed()

    async def stop(self) -> None:
        """Stop listening and drop every connection (the running prompt is abandoned, like a crash)."""
        await self._crash()
        if self._runner is not None:
            runner, self._runner, self._site = self._runner, None, None
            await runner.cleanup()
        await self.changed()

    async def _crash(self) -> None:
        """At once: refuse new connections, drop the websockets, abandon the running prompt."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.sockets.close_all()

    async def restart(self, down_for: float = 0.0) -> None:
        """Go away and come back on the same port after ``down_for`` seconds, with fresh in-memory state."""
        await self.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self.restarts += 1
        await self.start()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.sockets.close_all()

    # ------------------------------------------------------------------ configuration
    def files(self) -> dict[str, list[str]]:
        listing = {folder: list(names) for folder, names in self.models.items()}
        listing["input"] = sorted(
            str(p.relative_to(self.dirs["input"])) for p in self.dirs["input"].rglob("*") if p.is_file()
        )
        return listing

    def install_model(self, folder: str, name: str) -> None:
        self.models.setdefault(folder, [])
        if name not in self.models[folder]:
            self.models[folder].append(name)

    def misbehave(self, **switches: Any) -> Misbehaviour:
        for key, value in switches.items():
            setattr(self.misbehaviour, key, value)
        return self.misbehaviour

    def reset_misbehaviour(self) -> None:
        fresh = Misbehaviour()
        for key in Misbehaviour.model_fields:
            setattr(self.misbehaviour, key, getattr(fresh, key))

    # ------------------------------------------------------------------ observation
    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every state change); returns its value."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value

    def prompts_posted(self) -> list[dict[str, Any]]:
        """Bodies of every ``POST /prompt`` (with or without ``/api``)."""
        return [r.json for r in self.requests if r.method == "POST" and r.path.endswith("/prompt")]

    async def note_ws(self, client_id: str, event: str, data: Any) -> None:
        self.ws_events.append(WsEvent(client_id, event, data, time.monotonic()))
        await self.changed()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not request.path.startswith("/_fake"):
            body: Any = None
            if request.method == "POST" and request.content_type == "application/json":
                raw = await request.read()
                try:
                    import json as _json

                    body = _json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.rel_url.query), body, time.monotonic()
                )
            )
        response: web.StreamResponse = await handler(request)
        if not request.path.startswith("/_fake"):
            await self.changed()
        return response

    def state(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "queue_remaining": self.engine.queue_remaining,
            "running": self.engine.running.prompt_id if self.engine.running else None,
            "pending": [item.prompt_id for item in self.engine.heap],
            "history": list(self.engine.history),
            "executions": [
                {
                    "prompt_id": e.prompt_id,
                    "status": e.status,
                    "client_id": e.client_id,
                    "executed": e.executed,
                }
                for e in self.executions
            ],
            "restarts": self.restarts,
            "misbehaviour": self.misbehaviour.model_dump(),
            "models": self.models,
            "connected_clients": sorted(self.sockets.sockets),
        }

    # ------------------------------------------------------------------ control routes (subprocess mode)
    def _add_control_routes(self, app: web.Application) -> None:
        async def get_state(request: web.Request) -> web.Response:
            return web.json_response(self.state())

        async def post_misbehave(request: web.Request) -> web.Response:
            body = await request.json()
            try:
                self.misbehave(**body)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(self.state())

        async def post_reset(request: web.Request) -> web.Response:
            self.reset_misbehaviour()
            self.requests.clear()
            self.ws_events.clear()
            return web.json_response(self.state())

        async def get_requests(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "requests": [
                        {"method": r.method, "path": r.path, "query": r.query, "json": r.json}
                        for r in self.requests
                    ],
                    "ws_events": [
                        {"client_id": e.client_id, "event": e.event, "data": e.data} for e in self.ws_events
                    ],
                }
            )

        async def post_restart(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            down = float(body.get("down_s", 0.5))
            await self._crash()  # from now on new connections are refused
            task = asyncio.get_running_loop().create_task(self._restart_soon(down))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return web.json_response({"restarting": True, "down_s": down})

        async def post_models(request: web.Request) -> web.Response:
            body = await request.json()
            for folder, names in body.items():
                self.models[folder] = list(names)
            return web.json_response(self.state())

        app.router.add_get("/_fake/state", get_state)
        app.router.add_post("/_fake/misbehave", post_misbehave)
        app.router.add_post("/_fake/reset", post_reset)
        app.router.add_get("/_fake/requests", get_requests)
        app.router.add_post("/_fake/restart", post_restart)
        app.router.add_post("/_fake/models", post_models)

    async def _restart_soon(self, down_for: float) -> None:
        await asyncio.sleep(0.05)  # let the control response go out before the remaining connections close
        await self.restart(max(0.0, down_for - 0.05))
