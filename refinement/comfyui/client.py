"""The async ComfyUI client.

Usage::

    async with ComfyUIClient("http://127.0.0.1:8188") as comfy:
        await comfy.preflight(workflow)                  # optional: missing custom nodes / model files
        result = await comfy.run(workflow, on_progress=print, timeout=300)
        png = result.saved_images[0].data

``base_url`` may carry a path prefix (``http://host:8188/api``): every route, the websocket included, is
then requested under it, as ComfyUI serves its whole API under ``/api`` too.

:meth:`run` cancels cleanly: if the task awaiting it is cancelled (or ``timeout`` passes), the prompt is
removed from the server's queue, or interrupted if it already runs, before the cancellation (or
:class:`~.errors.ComfyUITimeoutError`) propagates. Errors are the :mod:`~.errors` tree only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from refinement.comfyui.errors import (
    ComfyUIMissingModelsError,
    ComfyUIMissingNodesError,
    ComfyUIProtocolError,
    ComfyUITimeoutError,
    ComfyUIValidationError,
    ComfyUIWorkflowShapeError,
    MissingModel,
)
from refinement.comfyui.graph import MODEL_INPUTS, looks_like_model_file
from refinement.comfyui.models import (
    USE_CLIENT_DEFAULT,
    QueueItem,
    QueueState,
    RunResult,
    RunTimeout,
    SubmitResult,
    UploadedImage,
)
from refinement.comfyui.run import ProgressCallback, RunSession
from refinement.comfyui.transport import Http, normalize_base_url

log = logging.getLogger(__name__)


class ComfyUIClient:
    """One ComfyUI server.

    Args:
        base_url: ``http://host:port`` (optionally with a path prefix such as ``/api``).
        timeout: default wall-clock limit of :meth:`run` in seconds (``None``: no limit).
        request_timeout: limit of one HTTP request (downloads included).
        connect_timeout: limit for opening a TCP connection or the websocket.
        poll_interval: how often ``/history`` is polled once the websocket was lost.
        silence_check_interval: after this long without a message on a live socket, ``/queue`` is asked
        whether
            the prompt still exists (covers prompts deleted by others and lost end markers).
        reconnect_timeout: how long to keep reconnecting after the connection dropped mid-run.
        max_resubmissions: how often a prompt the server lost (restart) is submitted again.
        object_info_ttl: seconds :meth:`object_info` answers are reused by :meth:`preflight`.
        headers: extra HTTP headers (e.g. an auth token for a reverse proxy).
        http_client: bring your own :class:`httpx.AsyncClient` (not closed by :meth:`close`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = 600.0,
        request_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        poll_interval: float = 1.0,
        silence_check_interval: float = 15.0,
        reconnect_timeout: float = 60.0,
        max_resubmissions: int = 1,
        object_info_ttl: float = 60.0,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.silence_check_interval = silence_check_interval
        self.reconnect_timeout = reconnect_timeout
        self.max_resubmissions = max_resubmissions
        self.object_info_ttl = object_info_ttl
        self._own_http = http_client is None
        client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout), headers=dict(headers or {})
        )
        self._http = Http(self.base_url, client)
        self._object_info: tuple[float, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"ComfyUIClient({self.base_url!r})"

    async def __aenter__(self) -> ComfyUIClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http:
            await self._http.client.aclose()

    # ------------------------------------------------------------------ running workflows
    async def run(
        self,
        workflow: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        timeout: RunTimeout = USE_CLIENT_DEFAULT,
        extra_data: Mapping[str, Any] | None = None,
        download: bool = True,
    ) -> RunResult:
        """Submit an API-format workflow, follow it to its end and download its images.

        ``on_progress`` receives :class:`~.models.ProgressEvent` objects (sync or async callable; its
        exceptions are logged and ignored). ``timeout``: seconds, ``None`` (wait forever) or
        :data:`~.models.USE_CLIENT_DEFAULT` (the default: the client's ``timeout``). ``extra_data`` is stored with
        the prompt (``extra_pnginfo`` keys become PNG text chunks).

        Raises :class:`~.errors.ComfyUIValidationError` (400), :class:`~.errors.ComfyUIExecutionError`,
        :class:`~.errors.ComfyUIInterruptedError`, :class:`~.errors.ComfyUITimeoutError`,
        :class:`~.errors.ComfyUIUnreachableError`, :class:`~.errors.ComfyUIServerError` or
        :class:`~.errors.ComfyUIProtocolError`.
        """
        _check_workflow_shape(workflow)
        limit = self.timeout if timeout is USE_CLIENT_DEFAULT else timeout
        session = RunSession(self, workflow, on_progress=on_progress, extra_data=extra_data)
        try:
            async with asyncio.timeout(limit):
                return await session.execute(download=download)
        except TimeoutError:
            await _shielded(session.cancel_on_server())
            raise ComfyUITimeoutError(
                f"ComfyUI prompt {session.prompt_id} did not finish within {limit:.1f} s "
                f"(stage: {session.stage}); it was removed from the queue or interrupted. "
                "Raise the timeout for large images or many steps.",
                prompt_id=session.prompt_id,
                timeout=float(limit or 0.0),
                stage=session.stage,
                server=self.base_url,
            ) from None
        except asyncio.CancelledError:
            await _shielded(session.cancel_on_server())
            raise
        finally:
            await _shielded(session.close())

    async def submit(
        self,
        workflow: Mapping[str, Any],
        *,
        client_id: str | None = None,
        prompt_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
    ) -> SubmitResult:
        """``POST /prompt`` only. Raises :class:`~.errors.ComfyUIValidationError` when the server
        rejects it."""
        _check_workflow_shape(workflow)
        body: dict[str, Any] = {"prompt": dict(workflow)}
        if client_id is not None:
            body["client_id"] = client_id
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if front:
            body["front"] = True
        response = await self._http.request("POST", "/prompt", json_body=body, ok=(200, 400))
        data = self._http.decode(response, "POST /prompt")
        if response.status_code == 400:
            if not isinstance(data, dict):
                raise ComfyUIProtocolError(f"POST /prompt 400 without an error object: {data!r:.200}")
            raise ComfyUIValidationError(data.get("error"), data.get("node_errors"), server=self.base_url)
        if not isinstance(data, dict) or not isinstance(data.get("prompt_id"), str):
            raise ComfyUIProtocolError(f"POST /prompt answered without a prompt_id: {data!r:.200}")
        return SubmitResult(
            prompt_id=data["prompt_id"], number=data.get("number"), node_errors=data.get("node_errors") or {}
        )

    async def cancel(self, prompt_id: str) -> None:
        """Remove ``prompt_id`` from the pending queue; if it is already running, interrupt it (targeted)."""
        await self.delete_queued([prompt_id])
        state = await self.queue()
        if state.is_running(prompt_id):
            await self.interrupt(prompt_id)

    # ------------------------------------------------------------------ HTTP API
    async def system_stats(self) -> dict[str, Any]:
        return _expect_dict(await self._http.get_json("/system_stats"), "GET /system_stats")

    async def queue_remaining(self) -> int:
        """``GET /prompt``: pending + running, the cheapest liveness probe."""
        data = _expect_dict(await self._http.get_json("/prompt"), "GET /prompt")
        try:
            return int(data["exec_info"]["queue_remaining"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ComfyUIProtocolError(f"GET /prompt: unexpected body {data!r:.200}") from exc

    async def queue(self) -> QueueState:
        data = _expect_dict(await self._http.get_json("/queue"), "GET /queue")
        try:
            running = [QueueItem.from_wire(i) for i in data.get("queue_running") or []]
            pending = [QueueItem.from_wire(i) for i in data.get("queue_pending") or []]
        except ValueError as exc:
            raise ComfyUIProtocolError(f"GET /queue: {exc}", server=self.base_url) from exc
        return QueueState(running=running, pending=pending)

    async def delete_queued(self, prompt_ids: Sequence[str]) -> None:
        await self._http.request("POST", "/queue", json_body={"delete": list(prompt_ids)})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """``POST /interrupt``; with ``prompt_id`` only that prompt is interrupted (and only if it runs)."""
        body = {"prompt_id": prompt_id} if prompt_id else None
        await self._http.request("POST", "/interrupt", json_body=body)

    async def history(
        self, prompt_id: str | None = None, *, max_items: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """``GET /history[/{id}]``: ``{prompt_id: entry}`` (empty while a prompt is queued or running)."""
        params: dict[str, Any] = {}
        if max_items is not None:
            params["max_items"] = max_items
        if offset is not None:
            params["offset"] = offset
        path = f"/history/{prompt_id}" if prompt_id else "/history"
        return _expect_dict(await self._http.get_json(path, params=params or None), f"GET {path}")

    async def object_info(self, class_type: str | None = None, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /object_info`` (all classes, cached for ``object_info_ttl``) or ``/object_info/{class}``."""
        if class_type is not None:
            return _expect_dict(
                await self._http.get_json(f"/object_info/{class_type}"), "GET /object_info/{class}"
            )
        now = time.monotonic()
        if (
            not refresh
            and self._object_info is not None
            and now - self._object_info[0] < self.object_info_ttl
        ):
            return self._object_info[1]
        info = _expect_dict(await self._http.get_json("/object_info"), "GET /object_info")
        self._object_info = (now, info)
        return info

    async def view(
        self, filename: str, subfolder: str = "", type: str = "output"
    ) -> tuple[bytes, str | None]:
        """``GET /view``: the file's bytes and content type."""
        response = await self._http.request(
            "GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": type}, ok=(200, 404)
        )
        if response.status_code == 404:
            raise ComfyUIProtocolError(
                f"ComfyUI has no file {type}/{subfolder + '/' if subfolder else ''}{filename} "
                "(404 from /view); temp previews are wiped when the server restarts.",
                server=self.base_url,
            )
        return response.content, response.headers.get("content-type")

    async def upload_image(
        self,
        image: bytes | str | Path,
        filename: str | None = None,
        *,
        subfolder: str = "",
        type: str = "input",
        overwrite: bool = False,
    ) -> UploadedImage:
        """``POST /upload/image``. Use ``result.load_image_value`` as a ``LoadImage`` node's ``image``."""
        if isinstance(image, str | Path):
            path = Path(image)
            data = await asyncio.to_thread(path.read_bytes)
            filename = filename or path.name
        else:
            data = image
        if not filename:
            raise ValueError("upload_image needs a filename when given bytes")
        form = {"type": type, "subfolder": subfolder}
        if overwrite:
            form["overwrite"] = "true"
        response = await self._http.request(
            "POST", "/upload/image", files={"image": (filename, data, "image/png")}, data=form, ok=(200, 400)
        )
        if response.status_code == 400:
            raise ComfyUIProtocolError(
                f"ComfyUI refused the upload of {filename!r} to {type}/{subfolder} "
                "(400: a missing file part or a path that escapes the folder)",
                server=self.base_url,
            )
        return UploadedImage.model_validate(self._http.decode(response, "POST /upload/image"))

    # ------------------------------------------------------------------ pre-flight
    async def preflight(self, workflow: Mapping[str, Any], *, refresh: bool = False) -> None:
        """Check the workflow against ``/object_info`` before submitting.

        Raises :class:`~.errors.ComfyUIMissingNodesError` for unknown class types (custom nodes not
        installed) and :class:`~.errors.ComfyUIMissingModelsError` for model-file values (checkpoints,
        LoRAs, VAEs, CLIP, UNet, upscalers, ...) that the node's file list on the server does not contain.
        Other invalid values are left to the server's validation, which :meth:`run` reports as
        :class:`~.errors.ComfyUIValidationError`.
        """
        _check_workflow_shape(workflow)
        info = await self.object_info(refresh=refresh)
        check_against_object_info(workflow, info, server=self.base_url)


def check_against_object_info(
    workflow: Mapping[str, Any], object_info: Mapping[str, Any], *, server: str | None = None
) -> None:
    """The pure part of :meth:`ComfyUIClient.preflight` (usable with a saved ``/object_info``)."""
    missing_nodes: dict[str, list[str]] = {}
    missing_models: list[MissingModel] = []
    for node_id, node in workflow.items():
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or class_type not in object_info:
            missing_nodes.setdefault(str(class_type), []).append(str(node_id))
            continue
        spec = object_info[class_type].get("input") or {}
        for name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            choices = _combo_choices(spec, name)
            if choices is None or value in choices:
                continue
            if name in MODEL_INPUTS or looks_like_model_file(value):
                missing_models.append(MissingModel(str(node_id), class_type, name, value, choices))
    if missing_nodes:
        raise ComfyUIMissingNodesError(missing_nodes, server=server)
    if missing_models:
        raise ComfyUIMissingModelsError(missing_models, server=server)


def _combo_choices(spec: Mapping[str, Any], name: str) -> list[str] | None:
    for section in ("required", "optional"):
        entry = (spec.get(section) or {}).get(name)
        if isinstance(entry, list) and entry and isinstance(entry[0], list):
            return [str(c) for c in entry[0]]
        if isinstance(entry, list) and entry and entry[0] == "COMBO" and len(entry) > 1:
            options = entry[1] if isinstance(entry[1], dict) else {}
            return [str(c) for c in options.get("options", [])]
    return None


def _check_workflow_shape(workflow: Any) -> None:
    if not isinstance(workflow, Mapping) or not workflow:
        raise ComfyUIWorkflowShapeError(
            "a ComfyUI workflow must be a non-empty dict {node_id: {class_type, inputs}} (API format): export it "
            "with 'Save (API Format)'"
        )
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping) or ("inputs" not in node and "class_type" not in node):
            raise ComfyUIWorkflowShapeError(
                f"workflow node {node_id!r} is not an API-format node (class_type + inputs): export the workflow "
                "with 'Save (API Format)'"
            )


def _expect_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ComfyUIProtocolError(f"{what} returned {type(data).__name__}, expected a JSON object")
    return data


async def _shielded(coro: Any) -> None:
    """Run cleanup to completion even while the calling task is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task}, timeout=10)
        raise
    except Exception:
        log.exception("cleanup after a ComfyUI run failed")
