"""Following one prompt from submission to its images: the state machine behind :meth:`ComfyUIClient.run`.

The order of operations is the one the recordings demand (``shared/comfyui/README.md`` 2.1, 2.6):

1. open a websocket with a **fresh** clientId and wait for its ``status{sid}`` greeting (the server has
   registered the socket once it greeted us, so nothing for our prompt can be missed);
2. ``POST /prompt`` with that ``client_id`` and a prompt id chosen here (ComfyUI honours a client-chosen
   ``prompt_id``; knowing it before the answer arrives lets a cancellation remove a prompt whose answer
   never came);
3. consume the socket's messages for our prompt (others' broadcasts are ignored) until ``executing{node:
   null}``; ``execution_error`` / ``execution_interrupted`` end the run with an exception;
4. read ``/history/{id}`` (authoritative outputs, cached ones included) and download every image with
   ``/view``.

If the socket drops, the session reconnects with yet another fresh clientId (re-using the old id could hit
the duplicate-clientId trap: the old socket's late close silences the new one) and follows the prompt
through ``/queue`` and ``/history`` instead, polling on every ``status`` broadcast and every
``poll_interval``. A prompt that is neither queued nor in the history was lost (the server restarted): it is
submitted again, at most ``max_resubmissions`` times. Silence on a live socket triggers the same check, so a
prompt deleted by someone else or a missed end marker cannot hang the run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from refinement.comfyui.errors import (
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterruptedError,
    ComfyUIProtocolError,
    ComfyUIServerError,
    ComfyUIUnreachableError,
)
from refinement.comfyui.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    ServerMessage,
    Status,
)
from refinement.comfyui.models import (
    OutputImage,
    ProgressEvent,
    ProgressStage,
    QueueState,
    RunResult,
    RunTimings,
    SubmitResult,
)
from refinement.comfyui.transport import Closed, Socket

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], Any]


class RunServer(Protocol):
    """What a :class:`RunSession` needs of the server it follows a prompt on (:class:`~.client.ComfyUIClient`
    is one; this module never imports it, the client imports this module)."""

    base_url: str
    connect_timeout: float
    poll_interval: float
    silence_check_interval: float
    reconnect_timeout: float
    max_resubmissions: int

    async def submit(
        self,
        workflow: Mapping[str, Any],
        *,
        client_id: str | None = None,
        prompt_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
    ) -> SubmitResult: ...

    async def cancel(self, prompt_id: str) -> None: ...

    async def queue(self) -> QueueState: ...

    async def history(
        self, prompt_id: str | None = None, *, max_items: int | None = None, offset: int | None = None
    ) -> dict[str, Any]: ...

    async def view(self, filename: str, subfolder: str = "", type: str = "output") -> tuple[bytes, str | None]: ...


class _Lost(Exception):
    """The server no longer knows the prompt (restart): submit again."""


class RunSession:
    """State of one :meth:`ComfyUIClient.run` call. Not reusable."""

    def __init__(
        self,
        client: RunServer,
        workflow: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None,
        extra_data: Mapping[str, Any] | None,
    ) -> None:
        self.client = client
        self.workflow = dict(workflow)
        self.on_progress = on_progress
        self.extra_data = dict(extra_data or {})
        self.socket: Socket | None = None
        self.prompt_id: str | None = None
        self.number: float | int | None = None
        self.node_errors: dict[str, Any] = {}
        self.stage: ProgressStage = "queued"
        self.t0 = time.monotonic()
        self.t_submitted: float | None = None
        self.t_started: float | None = None
        self.t_ended: float | None = None
        self.submit_s = 0.0
        self.cached_nodes: list[str] = []
        self.executed_nodes: list[str] = []
        self.ws_outputs: dict[str, Any] = {}
        self.node_started: dict[str, float] = {}
        self.nodes_s: dict[str, float] = {}
        self.current_node: str | None = None
        self.succeeded = False
        self.history_fallback = False
        self.ws_reconnects = 0
        self.resubmissions = 0
        self.queue_position: int | None = None
        self.queue_remaining: int | None = None
        self._last_queue_check = 0.0
        self._following_by_history = False

    # ------------------------------------------------------------------ public
    async def execute(self, *, download: bool) -> RunResult:
        while True:
            try:
                await self._submit()
                entry = await self._follow()
                break
            except _Lost:
                if self.resubmissions >= self.client.max_resubmissions:
                    raise ComfyUIProtocolError(
                        f"ComfyUI lost prompt {self.prompt_id} (it is neither queued nor in the "
                        f"history: the server "
                        "probably restarted) and it was already submitted again "
                        f"{self.resubmissions} time(s). Submit the job again once the server is stable.",
                        server=self.client.base_url,
                    ) from None
                self.resubmissions += 1
                log.warning("ComfyUI lost prompt %s (restart?); submitting it again", self.prompt_id)
                self._reset_for_resubmit()
        outputs = self._outputs_from(entry)
        t_dl = time.monotonic()
        images = await self._download(outputs) if download else []
        download_s = time.monotonic() - t_dl
        await self._emit("done")
        end = self.t_ended or time.monotonic()
        timings = RunTimings(
            submit_s=self.submit_s,
            queued_s=max(0.0, (self.t_started or end) - (self.t_submitted or self.t0)),
            execution_s=max(0.0, end - (self.t_started or end)),
            download_s=download_s,
            total_s=time.monotonic() - self.t0,
            nodes_s=dict(self.nodes_s),
        )
        assert self.prompt_id is not None and self.socket is not None
        return RunResult(
            prompt_id=self.prompt_id,
            client_id=self.socket.client_id,
            number=self.number,
            server=self.client.base_url,
            images=images,
            outputs=outputs,
            cached_nodes=self.cached_nodes,
            executed_nodes=self.executed_nodes,
            node_errors=self.node_errors,
            timings=timings,
            history_fallback=self.history_fallback,
            ws_reconnects=self.ws_reconnects,
            resubmissions=self.resubmissions,
        )

    async def cancel_on_server(self) -> None:
        """Remove our prompt from the queue, or interrupt it if it already runs. Never raises."""
        if self.prompt_id is None or self.t_ended is not None:
            return
        try:
            await self.client.cancel(self.prompt_id)
        except ComfyUIError as exc:
            log.warning("could not cancel ComfyUI prompt %s: %s", self.prompt_id, exc)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()

    # ------------------------------------------------------------------ submission
    async def _submit(self) -> None:
        if self.socket is None or not self.socket.alive:
            if self.socket is not None:
                await self.socket.close()
            self.socket = await Socket.open(self.client.base_url, open_timeout=self.client.connect_timeout)
        self.prompt_id = str(uuid.uuid4())
        t = time.monotonic()
        result = await self.client.submit(
            self.workflow,
            client_id=self.socket.client_id,
            prompt_id=self.prompt_id,
            extra_data=self.extra_data,
        )
        self.submit_s = time.monotonic() - t
        self.t_submitted = time.monotonic()
        self.prompt_id = result.prompt_id  # a server that ignores client-chosen ids assigns its own
        self.number = result.number
        self.node_errors = dict(result.node_errors)
        if self.node_errors:
            log.warning(
                "ComfyUI accepted prompt %s but dropped outputs that failed validation: %s",
                self.prompt_id,
                self.node_errors,
            )
        if self.on_progress is not None:
            await self._refresh_queue_position(force=True)

    def _reset_for_resubmit(self) -> None:
        self.stage = "queued"
        self.t_started = None
        self.t_ended = None
        self.cached_nodes = []
        self.executed_nodes = []
        self.ws_outputs = {}
        self.current_node = None
        self._following_by_history = False

    # ------------------------------------------------------------------ following
    async def _follow(self) -> dict[str, Any] | None:
        """Consume events until the prompt ended. Returns the history entry (None if the server has none)."""
        assert self.socket is not None
        while True:
            if not self.socket.alive and self.socket.queue.empty():
                await self._reconnect()
                if (entry := await self._check_server_side()) is not None:
                    return entry
                continue
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives together with a message, and cancelling run() must always work.
                async with asyncio.timeout(self._wait_timeout()):
                    item = await self.socket.queue.get()
            except TimeoutError:
                if (entry := await self._check_server_side()) is not None:
                    return entry
                continue
            if isinstance(item, Closed):
                log.info(
                    "ComfyUI websocket dropped (%s) while following prompt %s", item.reason, self.prompt_id
                )
                continue
            if isinstance(item, ComfyUIProtocolError):
                log.warning("ignoring a malformed websocket frame: %s", item)
                continue
            if await self._handle(item):
                return await self._history_entry()
            if (
                self._following_by_history
                and isinstance(item, Status)
                and (entry := await self._check_server_side()) is not None
            ):
                return entry

    def _wait_timeout(self) -> float:
        if self._following_by_history:
            return self.client.poll_interval
        return self.client.silence_check_interval

    async def _handle(self, msg: ServerMessage) -> bool:
        """Update the state with one message; True when our prompt's end marker arrived."""
        pid = self.prompt_id
        if isinstance(msg, Status):
            self.queue_remaining = msg.queue_remaining
            if self.stage == "queued" and self.on_progress is not None:
                await self._refresh_queue_position()
            return False
        if getattr(msg, "prompt_id", None) != pid:
            return False
        if isinstance(msg, ExecutionStart):
            self.t_started = time.monotonic()
            self.stage = "running"
            await self._emit("running")
        elif isinstance(msg, ExecutionCached):
            self.cached_nodes = list(msg.nodes)
        elif isinstance(msg, Executing):
            now = time.monotonic()
            self._close_node(now)
            if msg.node is None:
                self.t_ended = now
                return True
            self.current_node = msg.node
            self.node_started[msg.node] = now
            self.executed_nodes.append(msg.node)
            self.stage = "running"
            await self._emit("running", node=msg.node)
        elif isinstance(msg, Progress):
            node = msg.node or self.current_node
            stage: ProgressStage = "sampling" if _is_sampler(self._class_of(node)) else "running"
            self.stage = stage
            await self._emit(stage, node=node, value=msg.value, max_=msg.max)
        elif isinstance(msg, Executed):
            self.ws_outputs[msg.node] = msg.output
        elif isinstance(msg, ExecutionSuccess):
            self.succeeded = True
        elif isinstance(msg, ExecutionError):
            self.t_ended = time.monotonic()
            await self._emit("done")
            raise self._execution_error(msg.model_dump())
        elif isinstance(msg, ExecutionInterrupted):
            self.t_ended = time.monotonic()
            await self._emit("done")
            raise self._interrupted_error(msg.model_dump())
        return False

    def _close_node(self, now: float) -> None:
        if self.current_node is not None and self.current_node in self.node_started:
            self.nodes_s[self.current_node] = now - self.node_started[self.current_node]
        self.current_node = None

    async def _reconnect(self) -> None:
        """The socket dropped: open a new one (fresh client id) and follow the prompt through /history."""
        assert self.socket is not None
        await self.socket.close()
        self.history_fallback = True
        self._following_by_history = True
        deadline = time.monotonic() + self.client.reconnect_timeout
        delay = min(0.2, self.client.poll_interval)
        last_error: ComfyUIError | None = None
        while time.monotonic() < deadline:
            try:
                self.socket = await Socket.open(
                    self.client.base_url, open_timeout=self.client.connect_timeout
                )
                self.ws_reconnects += 1
                return
            except ComfyUIUnreachableError as exc:
                last_error = exc
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
        raise ComfyUIUnreachableError(
            f"lost the connection to ComfyUI while prompt {self.prompt_id} was running and could not "
            f"reconnect "
            f"within {self.client.reconnect_timeout:.0f} s ({last_error}). The job may still finish on "
            f"the server.",
            server=self.client.base_url,
        )

    async def _check_server_side(self) -> dict[str, Any] | None:
        """Where is our prompt? Queued/running → None (keep waiting); finished → its history entry; else lost.

        /queue is asked before /history: a prompt moves from the queue into the history atomically on the
        server, so one that is in neither after these two reads really is gone.
        """
        assert self.prompt_id is not None
        try:
            state = await self.client.queue()
            if state.contains(self.prompt_id):
                if self.stage == "queued":
                    self.queue_position = state.position(self.prompt_id)
                return None
            entry = await self._history_entry()
        except (ComfyUIUnreachableError, ComfyUIServerError) as exc:
            if self.socket is not None and not self.socket.alive:
                raise
            log.info("ComfyUI did not answer a status check (%s); still waiting", exc)
            return None
        if entry is None:
            raise _Lost()
        self.history_fallback = self.history_fallback or self._following_by_history
        self.t_ended = self.t_ended or time.monotonic()
        self._raise_for_history(entry)
        return entry

    async def _history_entry(self) -> dict[str, Any] | None:
        assert self.prompt_id is not None
        data = await self.client.history(self.prompt_id)
        entry = data.get(self.prompt_id) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    def _raise_for_history(self, entry: Mapping[str, Any]) -> None:
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        for item in messages:
            if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], dict)):
                continue
            event, data = item
            if event == "execution_cached" and not self.cached_nodes:
                self.cached_nodes = [str(n) for n in data.get("nodes", [])]
            if event == "execution_start" and self.t_started is None:
                self.t_started = self.t_submitted
            if event == "execution_error":
                raise self._execution_error(data)
            if event == "execution_interrupted":
                raise self._interrupted_error(data)
        if status.get("status_str") == "error":
            raise ComfyUIProtocolError(
                f"ComfyUI reports prompt {self.prompt_id} as failed without saying why: {status!r:.300}",
                server=self.client.base_url,
            )

    async def _refresh_queue_position(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_queue_check < self.client.poll_interval:
            return
        self._last_queue_check = now
        assert self.prompt_id is not None
        try:
            state = await self.client.queue()
        except (ComfyUIUnreachableError, ComfyUIServerError, ComfyUIProtocolError) as exc:
            log.debug("queue position unavailable: %s", exc)
            return
        if self.stage != "queued":
            return
        self.queue_position = state.position(self.prompt_id)
        self.queue_remaining = state.load
        await self._emit("queued")

    # ------------------------------------------------------------------ results
    def _outputs_from(self, entry: Mapping[str, Any] | None) -> dict[str, Any]:
        if entry is not None:
            self._raise_for_history(entry)
            outputs = entry.get("outputs")
            if isinstance(outputs, dict):
                return outputs
        return dict(self.ws_outputs)

    async def _download(self, outputs: Mapping[str, Any]) -> list[OutputImage]:
        wanted: list[tuple[str, dict[str, Any]]] = []
        for node_id, ui in outputs.items():
            if not isinstance(ui, dict):
                continue
            for image in ui.get("images") or []:
                if isinstance(image, dict) and isinstance(image.get("filename"), str):
                    wanted.append((str(node_id), image))
        semaphore = asyncio.Semaphore(4)
        cached = set(self.cached_nodes)

        async def fetch(node_id: str, image: dict[str, Any]) -> OutputImage:
            async with semaphore:
                data, content_type = await self.client.view(
                    image["filename"],
                    image.get("subfolder", "") or "",
                    image.get("type", "output") or "output",
                )
            return OutputImage(
                node_id=node_id,
                filename=image["filename"],
                subfolder=image.get("subfolder", "") or "",
                type=image.get("type", "output") or "output",
                data=data,
                content_type=content_type,
                cached=node_id in cached,
            )

        return list(await asyncio.gather(*(fetch(n, i) for n, i in wanted)))

    def _execution_error(self, data: Mapping[str, Any]) -> ComfyUIExecutionError:
        return ComfyUIExecutionError(
            prompt_id=str(data.get("prompt_id") or self.prompt_id),
            node_id=_opt_str(data.get("node_id")),
            node_type=_opt_str(data.get("node_type")),
            exception_type=str(data.get("exception_type") or "Exception"),
            exception_message=str(data.get("exception_message") or ""),
            traceback=[str(x) for x in data.get("traceback") or []],
            executed=[str(x) for x in data.get("executed") or []],
            server=self.client.base_url,
        )

    def _interrupted_error(self, data: Mapping[str, Any]) -> ComfyUIInterruptedError:
        node_id = _opt_str(data.get("node_id"))
        node_type = _opt_str(data.get("node_type"))
        where = f" at node {node_id} ({node_type})" if node_id else ""
        return ComfyUIInterruptedError(
            f"ComfyUI prompt {self.prompt_id} was interrupted{where} by another client or the server's user. "
            "Submit it again if it should run.",
            prompt_id=str(self.prompt_id),
            node_id=node_id,
            node_type=node_type,
            executed=[str(x) for x in data.get("executed") or []],
            server=self.client.base_url,
        )

    # ------------------------------------------------------------------ progress
    def _class_of(self, node: str | None) -> str | None:
        if node is None:
            return None
        entry = self.workflow.get(node)
        cls = entry.get("class_type") if isinstance(entry, dict) else None
        return cls if isinstance(cls, str) else None

    async def _emit(
        self,
        stage: ProgressStage,
        *,
        node: str | None = None,
        value: int | None = None,
        max_: int | None = None,
    ) -> None:
        if self.on_progress is None:
            return
        event = ProgressEvent(
            stage=stage,
            prompt_id=self.prompt_id,
            node=node,
            node_type=self._class_of(node),
            value=value,
            max=max_,
            queue_position=self.queue_position if stage == "queued" else None,
            queue_remaining=self.queue_remaining,
            elapsed_s=time.monotonic() - self.t0,
            server=self.client.base_url,
        )
        try:
            result = self.on_progress(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("progress callback failed (ignored)")


def _is_sampler(class_type: str | None) -> bool:
    return class_type is not None and "sampler" in class_type.lower() and class_type != "KSamplerSelect"


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
