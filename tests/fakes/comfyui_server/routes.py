"""ComfyUI's HTTP and websocket routes, as recorded (README section 3). Every route also lives under
``/api``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mimetypes
import os
import platform
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from PIL import Image

from tests.fakes.comfyui_server import node_specs
from tests.fakes.comfyui_server.executor import QueueItem
from tests.fakes.comfyui_server.sockets import SERVER_FEATURES
from tests.fakes.comfyui_server.validation import Outcome, validate_prompt

if TYPE_CHECKING:
    from tests.fakes.comfyui_server.server import FakeComfyUI

log = logging.getLogger(__name__)


def add_routes(app: web.Application, fake: FakeComfyUI) -> None:
    handlers = _Handlers(fake)
    table = [
        ("GET", "/ws", handlers.websocket),
        ("POST", "/prompt", handlers.post_prompt),
        ("GET", "/prompt", handlers.get_prompt),
        ("GET", "/queue", handlers.get_queue),
        ("POST", "/queue", handlers.post_queue),
        ("POST", "/interrupt", handlers.post_interrupt),
        ("GET", "/history", handlers.get_history),
        ("GET", "/history/{prompt_id}", handlers.get_history_id),
        ("POST", "/history", handlers.post_history),
        ("GET", "/view", handlers.view),
        ("POST", "/upload/image", handlers.upload_image),
        ("GET", "/object_info", handlers.object_info),
        ("GET", "/object_info/{node_class}", handlers.object_info_class),
        ("GET", "/system_stats", handlers.system_stats),
        ("GET", "/features", handlers.features),
        ("GET", "/embeddings", handlers.embeddings),
        ("GET", "/models", handlers.models),
        ("GET", "/models/{folder}", handlers.models_folder),
    ]
    for method, path, handler in table:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


class _Handlers:
    def __init__(self, fake: FakeComfyUI) -> None:
        self.fake = fake

    @property
    def engine(self) -> Any:
        return self.fake.engine

    # ------------------------------------------------------------------ websocket
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        registry = self.fake.sockets
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            registry.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        ws._fake_sid = sid  # type: ignore[attr-defined]
        registry.sockets[sid] = ws
        registry.metadata[sid] = {"feature_flags": {}}
        registry.all_open.add(ws)
        await self.fake.note_ws(sid, "connect", None)
        try:
            await registry.send_json("status", {"status": self.engine.queue_info(), "sid": sid}, sid)
            node = self.engine.last_node_id if self.engine.client_id == sid else None
            if node is not None:
                await self.fake.note_ws(sid, "current_node", node)  # what is sent, as sent (tests compare it)
                await registry.send_json("executing", {"node": node}, sid)
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self.fake.note_ws(sid, "message", msg.data)
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    registry.metadata.setdefault(sid, {})["feature_flags"] = data.get("data", {})
                    await registry.send_json("feature_flags", SERVER_FEATURES, sid)
                first = False
        finally:
            registry.all_open.discard(ws)
            registry.sockets.pop(sid, None)
            registry.metadata.pop(sid, None)
            await self.fake.note_ws(sid, "close", None)
        return ws

    # ------------------------------------------------------------------ prompts and queue
    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()  # not JSON: aiohttp answers 500 text/plain, like ComfyUI
        engine = self.engine
        if "number" in body:
            number: float | int = float(body["number"])
        else:
            number = engine.number
            if body.get("front"):
                number = -number
            engine.number += 1
        if "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}  # fmt: skip
            return _json({"error": error, "node_errors": {}}, 400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        if self.fake.misbehaviour.validation_error > 0 and isinstance(prompt, dict):
            self.fake.misbehaviour.validation_error -= 1
            outcome = _forced_validation_error(prompt)
        else:
            outcome = validate_prompt(
                prompt,
                self.fake.files(),
                partial_targets=body.get("partial_execution_targets"),
                custom={"LoadImage": (["image"], self._load_image_ok)},
            )
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not outcome.ok:
            return _json({"error": outcome.error, "node_errors": outcome.node_errors}, 400)
        await engine.put(QueueItem(number, prompt_id, prompt, extra_data, outcome.outputs))
        return _json({"prompt_id": prompt_id, "number": number, "node_errors": outcome.node_errors})

    def _load_image_ok(self, inputs: dict[str, Any]) -> bool | str:
        name = str(inputs.get("image", ""))
        name, _, _ = name.partition(" [")
        if (self.fake.dirs["input"] / name).is_file():
            return True
        return f"Invalid image file: {inputs.get('image')}"

    async def get_prompt(self, request: web.Request) -> web.Response:
        return _json(self.engine.queue_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        running = [self.engine.running.wire()] if self.engine.running is not None else []
        pending = [item.wire() for item in self.engine.heap]
        return _json({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            await self.engine.clear()
        for prompt_id in body.get("delete", []) or []:
            await self.engine.delete(prompt_id)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        self.engine.interrupt(prompt_id)
        await self.fake.changed()
        return web.Response(status=200)

    # ------------------------------------------------------------------ history
    async def get_history(self, request: web.Request) -> web.Response:
        history = self.engine.history
        max_items = request.rel_url.query.get("max_items")
        limit = int(max_items) if max_items is not None else None
        offset = int(request.rel_url.query.get("offset", -1))
        if offset < 0 and limit is not None:
            offset = len(history) - limit
        out: dict[str, Any] = {}
        for i, key in enumerate(history):
            if i >= offset:
                out[key] = history[key]
                if limit is not None and len(out) >= limit:
                    break
        return _json(out)

    async def get_history_id(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.engine.history.get(prompt_id)
        return _json({prompt_id: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.engine.history.clear()
        for prompt_id in body.get("delete", []) or []:
            self.engine.history.pop(prompt_id, None)
        return web.Response(status=200)

    # ------------------------------------------------------------------ files
    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, annotated_dir = self._annotated(query["filename"])
        if not filename:
            return web.Response(status=400)
        if filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        base = annotated_dir or self.fake.dirs.get(query.get("type", "output"))
        if base is None:
            return web.Response(status=400)
        base_abs = str(base.resolve())
        folder = base
        if "subfolder" in query:
            candidate = base / query["subfolder"]
            if os.path.commonpath((str(candidate.resolve()), base_abs)) != base_abs:
                return web.Response(status=403)
            folder = candidate
        filename = os.path.basename(filename)
        path = folder / filename
        if not path.is_file():
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            spec = query["preview"].split(";")
            fmt = spec[0] if spec[0] in ("webp", "jpeg") and "a" not in query.get("channel", "") else "webp"
            quality = int(spec[-1]) if spec[-1].isdigit() else 90
            with Image.open(path) as opened:
                img = opened.convert("RGB") if fmt == "jpeg" or query.get("channel", "") == "rgb" else opened
                buf = io.BytesIO()
                img.save(buf, format=fmt, quality=quality)
            return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
        channel = query.get("channel", "rgba")
        if channel in ("rgb", "a"):
            with Image.open(path) as img:
                if channel == "rgb":
                    out = img.convert("RGB")
                else:
                    alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
                    out = Image.new("RGBA", img.size)
                    out.putalpha(alpha)
                buf = io.BytesIO()
                out.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})

    def _annotated(self, name: str) -> tuple[str, Path | None]:
        for kind in ("output", "input", "temp"):
            suffix = f" [{kind}]"
            if name.endswith(suffix):
                return name[: -len(suffix)], self.fake.dirs[kind]
        return name, None

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if image is None or not hasattr(image, "file"):
            return web.Response(status=400)
        upload_type = str(post.get("type") or "input")
        base = self.fake.dirs.get(upload_type)
        if base is None:
            base, upload_type = self.fake.dirs["input"], "input"
        filename = getattr(image, "filename", "") or ""
        if not filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        folder = base / os.path.normpath(subfolder)
        target = (folder / filename).resolve()
        base_abs = str(base.resolve())
        if os.path.commonpath((base_abs, str(target))) != base_abs:
            return web.Response(status=400)
        folder.mkdir(parents=True, exist_ok=True)
        data = image.file.read()
        stem, ext = os.path.splitext(filename)
        overwrite = str(post.get("overwrite", "")) in ("true", "1")
        duplicate = False
        if not overwrite:
            i = 1
            while (folder / filename).exists():
                existing = (folder / filename).read_bytes()
                if hashlib.sha256(existing).digest() == hashlib.sha256(data).digest():
                    duplicate = True
                    break
                filename = f"{stem} ({i}){ext}"
                i += 1
        if not duplicate:
            (folder / filename).write_bytes(data)
        await self.fake.changed()
        return _json({"name": filename, "subfolder": subfolder, "type": upload_type})

    # ------------------------------------------------------------------ info
    async def object_info(self, request: web.Request) -> web.Response:
        files = self.fake.files()
        return _json({name: node_specs.object_info(name, files) for name in node_specs.ALL_SPECS})

    async def object_info_class(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        if name not in node_specs.ALL_SPECS:
            return _json({})
        return _json({name: node_specs.object_info(name, self.fake.files())})

    async def system_stats(self, request: web.Request) -> web.Response:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        return _json(
            {
                "system": {
                    "os": os.name,
                    "ram_total": total,
                    "ram_free": free,
                    "comfyui_version": "0.3.64",
                    "required_frontend_version": "1.27.10",
                    "installed_templates_version": "0.1.95",
                    "required_templates_version": "0.1.95",
                    "python_version": sys.version,
                    "pytorch_version": "2.13.0+cpu",
                    "embedded_python": False,
                    "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.fake.port)],
                },
                "devices": [
                    {
                        "name": f"cpu ({platform.machine()}, fake ComfyUI)",
                        "type": "cpu",
                        "index": None,
                        "vram_total": total,
                        "vram_free": free,
                        "torch_vram_total": total,
                        "torch_vram_free": free,
                    }
                ],
            }
        )

    async def features(self, request: web.Request) -> web.Response:
        return _json(SERVER_FEATURES)

    async def embeddings(self, request: web.Request) -> web.Response:
        return _json([])

    async def models(self, request: web.Request) -> web.Response:
        return _json(sorted(self.fake.models))

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.fake.models:
            return web.Response(status=404)
        return _json(sorted(self.fake.models[folder]))


def _forced_validation_error(prompt: dict[str, Any]) -> Outcome:
    """The misbehaviour switch: reject as a server that lacks the workflow's sampler would."""
    target = next(
        (
            n
            for n, node in prompt.items()
            if isinstance(node, dict) and "sampler_name" in node.get("inputs", {})
        ),
        None,
    )
    outputs = [n for n, node in prompt.items() if node_specs.ALL_SPECS.get(node.get("class_type", ""),
    {}).get(
        "output_node")]  # fmt: skip
    if target is None:
        target = outputs[0] if outputs else next(iter(prompt))
        err = {"type": "required_input_missing", "message": "Required input is missing", "details": "images",
               "extra_info": {"input_name": "images"}}  # fmt: skip
    else:
        value = prompt[target]["inputs"]["sampler_name"]
        err = {
            "type": "value_not_in_list",
            "message": "Value not in list",
            "details": f"sampler_name: '{value}' not in (list of length {len(node_specs.SAMPLER_NAMES)})",
            "extra_info": {"input_name": "sampler_name", "input_config": None, "received_value": value},
        }
    node_errors = {
        target: {
            "errors": [err],
            "dependent_outputs": outputs,
            "class_type": prompt[target].get("class_type"),
        }
    }
    error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
             "details": "", "extra_info": {}}  # fmt: skip
    return Outcome(False, error, [], node_errors)
