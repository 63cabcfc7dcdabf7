"""The prompt queue, history, cache and the worker that runs prompts with ComfyUI's message sequence.

Per prompt (README 2.3-2.4), to its client only unless noted: ``status`` (broadcast, when the worker takes
it), ``execution_start``, ``execution_cached``, then per node ``progress_state`` (running) → ``executing`` →
[``progress_state`` + ``progress`` per step] → [``executed``] → ``progress_state`` (finished); cached output
nodes only re-send ``executed`` + ``progress_state``. The end is ``execution_success`` | ``execution_error``
| ``execution_interrupted`` (broadcast when there is no client id), the history entry, a ``status``
broadcast and ``executing{node: null}``. Without a client id, ``executing`` / ``executed`` / ``execution_*``
are not sent and progress goes to everyone.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import heapq
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.fakes.comfyui_server import node_specs, nodes
from tests.fakes.comfyui_server.misbehaviour import Misbehaviour, Plan, draw_plan
from tests.fakes.comfyui_server.render import to_uint8
from tests.fakes.comfyui_server.sockets import (
    SocketRegistry,
    preview_frame,
    preview_with_metadata_frame,
    text_frame,
)

log = logging.getLogger(__name__)
MAX_HISTORY = 10000


class Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class NodeError(Exception):
    def __init__(self, node_id: str, exception_type: str, message: str, traceback: list[str]) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback


@dataclass
class QueueItem:
    number: float | int
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    seq: int = 0

    def sort_key(self) -> tuple[float, str, int]:
        return (self.number, self.prompt_id, self.seq)

    def __lt__(self, other: QueueItem) -> bool:
        return self.sort_key() < other.sort_key()

    def wire(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


@dataclass
class ExecutionRecord:
    """What happened to one prompt (for tests: ``server.executions``)."""

    prompt_id: str
    status: str  # success | error | interrupted
    client_id: str | None
    started: float
    finished: float
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    plan: Plan | None = None


class Engine:
    """Everything a real server loses on restart: queue, history, cache, flags."""

    def __init__(
        self,
        sockets: SocketRegistry,
        dirs: dict[str, Path],
        files: Callable[[], dict[str, list[str]]],
        misbehaviour: Misbehaviour,
        on_change: Callable[[], Awaitable[None]],
    ) -> None:
        self.sockets = sockets
        self.dirs = dirs
        self.files = files
        self.misbehaviour = misbehaviour
        self.on_change = on_change
        self.number = 0
        self.seq = 0
        self.heap: list[QueueItem] = []
        self.running: QueueItem | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, CacheEntry] = {}
        self.interrupt_flag = False
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.executions: list[ExecutionRecord] = []
        self.interrupt_event = asyncio.Event()
        self._wakeup = asyncio.Event()
        self.load_delay = 0.0

    # ------------------------------------------------------------------ queue
    @property
    def queue_remaining(self) -> int:
        return len(self.heap) + (1 if self.running is not None else 0)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue_remaining}}

    async def broadcast_status(self) -> None:
        await self.sockets.send_json("status", {"status": self.queue_info()}, None)

    async def put(self, item: QueueItem) -> None:
        self.seq += 1
        item.seq = self.seq
        heapq.heappush(self.heap, item)
        await self.broadcast_status()
        self._wakeup.set()
        await self.on_change()

    async def delete(self, prompt_id: str) -> bool:
        for i, item in enumerate(self.heap):
            if item.prompt_id == prompt_id:
                self.heap.pop(i)
                heapq.heapify(self.heap)
                await self.broadcast_status()
                await self.on_change()
                return True
        return False

    async def clear(self) -> None:
        self.heap.clear()
        await self.broadcast_status()
        await self.on_change()

    def interrupt(self, prompt_id: str | None) -> None:
        if prompt_id and (self.running is None or self.running.prompt_id != prompt_id):
            return  # a targeted interrupt for a prompt that is not running does nothing
        self.interrupt_flag = True
        self.interrupt_event.set()

    def check_interrupt(self, node_id: str) -> None:
        if self.interrupt_flag:
            self.interrupt_flag = False
            self.interrupt_event.clear()
            raise Interrupted(node_id)

    # ------------------------------------------------------------------ worker
    async def worker(self) -> None:
        while True:
            while not self.heap:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = heapq.heappop(self.heap)
            self.running = item
            await self.broadcast_status()
            try:
                await self.execute(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one prompt kill the worker
                log.exception("fake ComfyUI worker crashed on prompt %s", item.prompt_id)
                self.running = None

    async def _add_message(
        self, messages: list[Any], event: str, data: dict[str, Any], *, broadcast: bool = False
    ) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        messages.append([event, data])
        if self.client_id is not None or broadcast:
            await self.sockets.send_json(event, data, self.client_id)

    async def execute(self, item: QueueItem) -> None:
        prompt, prompt_id = item.prompt, item.prompt_id
        self.interrupt_flag = False
        self.interrupt_event.clear()
        self.client_id = item.extra_data.get("client_id")
        plan = draw_plan(self.misbehaviour)
        record = ExecutionRecord(prompt_id, "running", self.client_id, time.monotonic(), 0.0, plan=plan)
        messages: list[Any] = []
        await self._add_message(messages, "execution_start", {"prompt_id": prompt_id})
        keys = _cache_keys(prompt, self.dirs["input"])
        wanted = set(keys.values())
        self.cache = {k: v for k, v in self.cache.items() if k in wanted}
        cached = [n for n in prompt if keys[n] in self.cache]
        record.cached = cached
        await self._add_message(messages, "execution_cached", {"nodes": cached, "prompt_id": prompt_id})
        run = _Run(self, item, keys, plan)
        status = "success"
        try:
            await run.run_all()
            await self._add_message(messages, "execution_success", {"prompt_id": prompt_id})
        except Interrupted as exc:
            status = "interrupted"
            data = {
                "prompt_id": prompt_id,
                "node_id": exc.node_id,
                "node_type": prompt[exc.node_id]["class_type"],
                "executed": list(run.executed),
            }
            await self._add_message(messages, "execution_interrupted", data, broadcast=True)
        except NodeError as exc:
            status = "error"
            data = {
                "prompt_id": prompt_id,
                "node_id": exc.node_id,
                "node_type": prompt[exc.node_id]["class_type"],
                "executed": list(run.executed),
                "exception_message": exc.message + "\n",
                "exception_type": exc.exception_type,
                "traceback": exc.traceback,
                "current_inputs": run.current_inputs(exc.node_id),
                "current_outputs": list(prompt),
            }
            await self._add_message(messages, "execution_error", data)
        record.status = status
        record.executed = list(run.executed)
        self._task_done(item, run, status, messages)
        self.executions.append(record)
        record.finished = time.monotonic()
        await self.broadcast_status()
        if self.client_id is not None:
            await self.sockets.send_json("executing", {"node": None, "prompt_id": prompt_id}, self.client_id)
        self.last_node_id = None
        await self.on_change()

    def _task_done(self, item: QueueItem, run: _Run, status: str, messages: list[Any]) -> None:
        self.running = None
        if len(self.history) >= MAX_HISTORY:
            self.history.pop(next(iter(self.history)))
        extra = {
            k: v for k, v in item.extra_data.items() if k not in ("auth_token_comfy_org", "api_key_comfy_org")
        }
        self.history[item.prompt_id] = {
            "prompt": [item.number, item.prompt_id, item.prompt, extra, item.outputs],
            "outputs": dict(run.ui_outputs),
            "status": {
                "status_str": "success" if status == "success" else "error",
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {
                n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                for n in run.ui_outputs
            },
        }


class _Run:
    """One prompt's execution: node order, values, progress_state map."""

    def __init__(self, engine: Engine, item: QueueItem, keys: dict[str, str], plan: Plan) -> None:
        self.engine = engine
        self.item = item
        self.prompt = item.prompt
        self.prompt_id = item.prompt_id
        self.keys = keys
        self.plan = plan
        self.values: dict[str, tuple[Any, ...]] = {}
        self.executed: list[str] = []
        self.ui_outputs: dict[str, Any] = {}
        self.progress_nodes: dict[str, dict[str, Any]] = {}
        self.order = execution_order(self.prompt, item.outputs)
        self.sampled = False
        self.inputs_seen: dict[str, dict[str, Any]] = {}

    async def run_all(self) -> None:
        for index, node_id in enumerate(self.order):
            entry = self.engine.cache.get(self.keys[node_id])
            if entry is not None:
                await self._from_cache(node_id, entry)
                continue
            last = index == len(self.order) - 1
            await self._run_node(node_id, fault_here=last and not self.sampled and self.plan.anything)

    async def _from_cache(self, node_id: str, entry: CacheEntry) -> None:
        self.values[node_id] = entry.outputs
        if entry.ui is not None:
            self.ui_outputs[node_id] = entry.ui
            await self._send_client("executed", self._executed_data(node_id, entry.ui))
            self._set_progress(node_id, 1, 1, "finished")
            await self._send_progress_state()
        self.executed.append(node_id)

    async def _run_node(self, node_id: str, *, fault_here: bool) -> None:
        engine = self.engine
        class_type = self.prompt[node_id]["class_type"]
        self._set_progress(node_id, 0.0, 1.0, "running")
        await self._send_progress_state()
        engine.last_node_id = node_id
        await self._send_client(
            "executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}
        )
        engine.check_interrupt(node_id)
        inputs = self._resolve_inputs(node_id)
        self.inputs_seen[node_id] = inputs
        ctx = NodeContext(self, node_id)
        if fault_here:
            await ctx.apply_plan(1)
        impl = nodes.IMPLS.get(class_type)
        try:
            if impl is None:
                raise NotImplementedError(f"the fake ComfyUI server cannot run {class_type} nodes")
            result = await impl(ctx, **inputs)
        except (Interrupted, NodeError):
            raise
        except Exception as exc:
            raise NodeError(node_id, _type_name(exc), str(exc), _traceback_for(class_type)) from exc
        self.values[node_id] = result.outputs
        engine.cache[self.keys[node_id]] = CacheEntry(result.outputs, result.ui)
        if result.ui is not None:
            self.ui_outputs[node_id] = result.ui
            await self._send_client("executed", self._executed_data(node_id, result.ui))
        entry = self.progress_nodes[node_id]
        self._set_progress(node_id, entry["max"], entry["max"], "finished")
        await self._send_progress_state()
        self.executed.append(node_id)

    def _resolve_inputs(self, node_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for name, value in self.prompt[node_id].get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and value[0] in self.values:
                resolved[name] = self.values[value[0]][value[1]]
            elif name in _known_inputs(self.prompt[node_id]["class_type"]):
                resolved[name] = value
        return resolved

    def current_inputs(self, node_id: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for name, value in self.inputs_seen.get(node_id, {}).items():
            out[name] = [
                value if isinstance(value, int | float | str | bool) or value is None else _short(value)
            ]
        return out

    def _executed_data(self, node_id: str, ui: dict[str, Any]) -> dict[str, Any]:
        return {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}

    def _set_progress(self, node_id: str, value: float, max_: float, state: str) -> None:
        self.progress_nodes[node_id] = {
            "value": value,
            "max": max_,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    async def _send_progress_state(self) -> None:
        data = {"prompt_id": self.prompt_id, "nodes": copy.deepcopy(self.progress_nodes)}
        await self.engine.sockets.send_json("progress_state", data, self.engine.client_id)

    async def _send_client(self, event: str, data: dict[str, Any]) -> None:
        if self.engine.client_id is not None:
            await self.engine.sockets.send_json(event, data, self.engine.client_id)


class NodeContext:
    """What a node implementation may do: report progress, send text, look at the prompt."""

    def __init__(self, run: _Run, node_id: str) -> None:
        self._run = run
        self.node_id = node_id
        self.prompt_id = run.prompt_id
        self.prompt = run.prompt
        self.extra_data = run.item.extra_data
        self.dirs = run.engine.dirs

    async def progress(
        self, value: int, total: int, *, preview: tuple[np.ndarray, str] | None = None
    ) -> None:
        """One ProgressBar update: interrupt check, progress_state, [type-4 preview], progress, [type-1
        preview]."""
        engine = self._run.engine
        engine.check_interrupt(self.node_id)
        self._run._set_progress(self.node_id, value, total, "running")
        await self._run._send_progress_state()
        sid = engine.client_id
        image = None if preview is None else await asyncio.to_thread(_encode_preview, *preview)
        metadata_client = engine.sockets.supports_preview_metadata(sid)
        if image is not None and metadata_client:
            meta = {
                "node_id": self.node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": self.node_id,
                "parent_node_id": None,
                "real_node_id": self.node_id,
                "image_type": preview[1] if preview else "image/jpeg",
            }
            await engine.sockets.send_bytes(preview_with_metadata_frame(image, meta), sid)
        data = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id}
        await engine.sockets.send_json("progress", data, sid)
        if image is not None and not metadata_client:
            await engine.sockets.send_bytes(
                preview_frame(image, preview[1] if preview else "image/jpeg"), sid
            )

    async def sampling_steps(self, steps: int) -> None:
        """A sampler's steps 1..steps: delay, misbehaviour, progress (and a preview per step if enabled)."""
        self._run.sampled = True
        m = self._run.engine.misbehaviour
        for step in range(1, steps + 1):
            if m.step_delay > 0:
                await asyncio.sleep(m.step_delay)
            else:
                await asyncio.sleep(0)
            await self.apply_plan(step)
            preview = None
            if m.previews:
                shade = np.full((1, 64, 64, 3), step / max(1, steps), np.float32)
                preview = (shade[0], "image/jpeg")
            await self.progress(step, steps, preview=preview)

    async def apply_plan(self, step: int) -> None:
        plan = self._run.plan
        engine = self._run.engine
        if plan.drop_step is not None and step >= plan.drop_step and not plan.dropped:
            plan.dropped = True
            if engine.client_id is not None:
                await engine.sockets.close_client(engine.client_id)
        if plan.hang_step is not None and step >= plan.hang_step:
            plan.hang_step = None
            await engine.interrupt_event.wait()
            engine.check_interrupt(self.node_id)
        if plan.error_step is not None and step >= plan.error_step:
            plan.error_step = None
            class_type = self.prompt[self.node_id]["class_type"]
            raise NodeError(self.node_id, plan.error_type, plan.error_message, _traceback_for(class_type))

    async def send_text(self, text: str) -> None:
        await self._run.engine.sockets.send_bytes(text_frame(self.node_id, text), None)

    async def load_delay(self) -> None:
        if self._run.engine.load_delay > 0:
            await asyncio.sleep(self._run.engine.load_delay)


# ---------------------------------------------------------------------------------------- helpers
def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """A topological order of the nodes the outputs need; an output node runs as soon as it is ready."""
    post: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and value[0] in prompt:
                visit(value[0])
        post.append(node_id)

    for out in outputs:
        visit(out)
    deps = {
        n: {v[0] for v in prompt[n].get("inputs", {}).values() if isinstance(v, list) and len(v) == 2}
        for n in post
    }
    done: list[str] = []
    remaining = list(post)
    output_set = set(outputs)
    while remaining:
        ready = [n for n in remaining if deps[n] <= set(done)]
        pick = next((n for n in ready if n in output_set), ready[0])
        done.append(pick)
        remaining.remove(pick)
    return done


def _cache_keys(prompt: dict[str, Any], input_dir: Path) -> dict[str, str]:
    """Structural signature per node: class, literal inputs, and the signatures of linked upstream nodes."""
    memo: dict[str, str] = {}

    def key(node_id: str, stack: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt[node_id]
        parts: list[Any] = [node.get("class_type")]
        inputs = node.get("inputs", {})
        for name in sorted(inputs):
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and value[0] in prompt and value[0] not in stack:
                parts.append([name, "link", key(value[0], stack | {node_id}), value[1]])
            else:
                parts.append([name, value])
        changed = nodes.IS_CHANGED.get(str(node.get("class_type")))
        if changed is not None:
            parts.append(["is_changed", changed(inputs, input_dir)])
        memo[node_id] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        return memo[node_id]

    return {n: key(n, frozenset()) for n in prompt}


def _known_inputs(class_type: str) -> set[str]:
    spec = node_specs.ALL_SPECS.get(class_type, {}).get("input", {})
    return set(spec.get("required", {})) | set(spec.get("optional", {}))


def _encode_preview(image: np.ndarray, mime: str) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(to_uint8(image))
    if mime == "image/png":
        pil.save(buf, format="PNG")
    else:
        pil.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _traceback_for(class_type: str) -> list[str]:
    return [
        '  File "ComfyUI/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, '
        "has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n",
        '  File "ComfyUI/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n',
        f'  File "ComfyUI/nodes.py", line 1, in {class_type.lower()}\n    (fake server)\n',
    ]


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"tensor(shape={list(value.shape)})"
    return str(value)[:200]
