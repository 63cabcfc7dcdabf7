"""Typed parsing of ComfyUI's websocket traffic (ComfyUI 0.3.64, see ``shared/comfyui/README.md`` section 2).

Text frames are always ``{"type": T, "data": {...}}``; :func:`parse_text` turns one into a pydantic model
per type (unknown types become :class:`UnknownMessage`, so a newer server never breaks the client). Binary
frames start with a big-endian ``u32`` event type; :func:`parse_binary` decodes previews (type 1, and type 4
with its JSON metadata) and progress text (type 3).

Node ids are strings everywhere. ``executing`` with ``node=None`` is the end marker of a prompt; the
``executing`` a server sends on reconnect has neither ``prompt_id`` nor ``display_node``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refinement.comfyui.errors import ComfyUIProtocolError

__all__ = [
    "BinaryMessage",
    "Executed",
    "Executing",
    "ExecutionCached",
    "ExecutionError",
    "ExecutionInterrupted",
    "ExecutionStart",
    "ExecutionSuccess",
    "FeatureFlags",
    "NodeProgress",
    "PreviewImage",
    "PreviewMetadata",
    "Progress",
    "ProgressState",
    "ProgressText",
    "ServerMessage",
    "Status",
    "TextMessage",
    "UnknownBinary",
    "UnknownMessage",
    "parse_binary",
    "parse_message",
    "parse_text",
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    type: ClassVar[str] = ""

    @classmethod
    def from_data(cls, data: Any) -> _Message:
        if not isinstance(data, dict):
            raise ComfyUIProtocolError(f"websocket message '{cls.type}' has no data object: {data!r:.200}")
        return cls.model_validate(data)


class Status(_Message):
    """Queue size (pending + running). ``sid`` is set only on the first message after connecting."""

    type: ClassVar[str] = "status"
    queue_remaining: int
    sid: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> Status:
        try:
            remaining = data["status"]["exec_info"]["queue_remaining"]
        except (KeyError, TypeError) as exc:
            raise ComfyUIProtocolError(f"malformed status message: {data!r:.200}") from exc
        sid = data.get("sid") if isinstance(data, dict) else None
        return cls(queue_remaining=remaining, sid=sid)


class FeatureFlags(_Message):
    """The server's answer to a client's first ``feature_flags`` message."""

    type: ClassVar[str] = "feature_flags"
    supports_preview_metadata: bool = False
    max_upload_size: int | None = None


class ExecutionStart(_Message):
    type: ClassVar[str] = "execution_start"
    prompt_id: str
    timestamp: int | None = None


class ExecutionCached(_Message):
    """The prompt's nodes whose outputs are cached (empty on a cold run)."""

    type: ClassVar[str] = "execution_cached"
    prompt_id: str
    nodes: list[str]
    timestamp: int | None = None


class Executing(_Message):
    """A node is about to run; ``node is None`` ends the prompt."""

    type: ClassVar[str] = "executing"
    node: str | None
    display_node: str | None = None
    prompt_id: str | None = None

    @property
    def is_end(self) -> bool:
        return self.node is None


class Progress(_Message):
    """A ProgressBar update (KSampler: value 1..steps)."""

    type: ClassVar[str] = "progress"
    value: int
    max: int
    prompt_id: str | None = None
    node: str | None = None


class NodeProgress(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    value: float
    max: float
    state: str
    node_id: str
    prompt_id: str | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None


class ProgressState(_Message):
    """Every node of the prompt that is not pending, with its progress (sent very often)."""

    type: ClassVar[str] = "progress_state"
    prompt_id: str
    nodes: dict[str, NodeProgress]


class Executed(_Message):
    """A node produced UI output (``output["images"]`` for SaveImage / PreviewImage). Also sent from cache."""

    type: ClassVar[str] = "executed"
    node: str
    display_node: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    prompt_id: str


class ExecutionSuccess(_Message):
    type: ClassVar[str] = "execution_success"
    prompt_id: str
    timestamp: int | None = None


class ExecutionError(_Message):
    """A node raised. ``exception_message`` ends with a newline; ``traceback`` is a list of strings."""

    type: ClassVar[str] = "execution_error"
    prompt_id: str
    node_id: str | None = None
    node_type: str | None = None
    executed: list[str] = Field(default_factory=list)
    exception_message: str = ""
    exception_type: str = ""
    traceback: list[str] = Field(default_factory=list)
    current_inputs: Any = None
    current_outputs: Any = None
    timestamp: int | None = None


class ExecutionInterrupted(_Message):
    """The interrupt flag was seen; ``node_id`` is the node that was about to run (or the sampling node)."""

    type: ClassVar[str] = "execution_interrupted"
    prompt_id: str
    node_id: str | None = None
    node_type: str | None = None
    executed: list[str] = Field(default_factory=list)
    timestamp: int | None = None


class UnknownMessage(_Message):
    """A text message of a type this client does not model (``logs``, ``display_component``, ...)."""

    type: ClassVar[str] = "unknown"
    message_type: str
    data: Any = None


class PreviewMetadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    node_id: str | None = None
    prompt_id: str | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None
    image_type: str | None = None


class PreviewImage(BaseModel):
    """Binary type 1 (legacy: image type only) or type 4 (with metadata naming node and prompt)."""

    model_config = ConfigDict(frozen=True)
    event_type: Literal[1, 4]
    image_type: str
    """MIME type: ``image/jpeg`` or ``image/png``."""
    data: bytes
    metadata: PreviewMetadata | None = None

    @property
    def prompt_id(self) -> str | None:
        return self.metadata.prompt_id if self.metadata else None


class ProgressText(BaseModel):
    """Binary type 3: text a node reports (e.g. GetImageSize). Always broadcast to every client."""

    model_config = ConfigDict(frozen=True)
    node_id: str
    text: str


class UnknownBinary(BaseModel):
    model_config = ConfigDict(frozen=True)
    event_type: int
    payload: bytes


TextMessage = (
    Status
    | FeatureFlags
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | UnknownMessage
)
BinaryMessage = PreviewImage | ProgressText | UnknownBinary
ServerMessage = TextMessage | BinaryMessage

_TEXT_TYPES: dict[str, type[_Message]] = {
    cls.type: cls
    for cls in (
        Status,
        FeatureFlags,
        ExecutionStart,
        ExecutionCached,
        Executing,
        Progress,
        ProgressState,
        Executed,
        ExecutionSuccess,
        ExecutionError,
        ExecutionInterrupted,
    )
}

_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}


def parse_text(raw: str | bytes) -> TextMessage:
    """Parse one text frame. Raises :class:`ComfyUIProtocolError` on anything that is not a valid message."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ComfyUIProtocolError(f"websocket text frame is not JSON: {raw!r:.200}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ComfyUIProtocolError(f"websocket message without a 'type': {raw!r:.200}")
    msg_type: str = obj["type"]
    data = obj.get("data")
    cls = _TEXT_TYPES.get(msg_type)
    if cls is None:
        return UnknownMessage(message_type=msg_type, data=data)
    try:
        message = cls.from_data(data)
    except ValidationError as exc:
        raise ComfyUIProtocolError(f"malformed '{msg_type}' message: {exc.errors()[:3]}") from exc
    return message  # type: ignore[return-value]


def parse_binary(frame: bytes) -> BinaryMessage:
    """Parse one binary frame: ``[u32 event_type][payload]``, integers big-endian."""
    if len(frame) < 4:
        raise ComfyUIProtocolError(f"binary frame too short ({len(frame)} bytes)")
    (event_type,) = struct.unpack(">I", frame[:4])
    payload = frame[4:]
    if event_type == 1:
        if len(payload) < 4:
            raise ComfyUIProtocolError("preview frame without an image type")
        (image_type,) = struct.unpack(">I", payload[:4])
        return PreviewImage(
            event_type=1,
            image_type=_IMAGE_TYPES.get(image_type, "application/octet-stream"),
            data=payload[4:],
        )
    if event_type == 3:
        if len(payload) < 4:
            raise ComfyUIProtocolError("text frame without a node id length")
        (id_len,) = struct.unpack(">I", payload[:4])
        if len(payload) < 4 + id_len:
            raise ComfyUIProtocolError("text frame shorter than its node id")
        node_id = payload[4 : 4 + id_len].decode("utf-8", errors="replace")
        text = payload[4 + id_len :].decode("utf-8", errors="replace")
        return ProgressText(node_id=node_id, text=text)
    if event_type == 4:
        if len(payload) < 4:
            raise ComfyUIProtocolError("preview-with-metadata frame without a metadata length")
        (meta_len,) = struct.unpack(">I", payload[:4])
        if len(payload) < 4 + meta_len:
            raise ComfyUIProtocolError("preview-with-metadata frame shorter than its metadata")
        try:
            meta = PreviewMetadata.model_validate_json(payload[4 : 4 + meta_len])
        except ValidationError as exc:
            raise ComfyUIProtocolError(f"preview metadata is not valid JSON: {exc.errors()[:2]}") from exc
        return PreviewImage(
            event_type=4,
            image_type=meta.image_type or "application/octet-stream",
            data=payload[4 + meta_len :],
            metadata=meta,
        )
    return UnknownBinary(event_type=event_type, payload=payload)


def parse_message(raw: str | bytes, *, binary: bool | None = None) -> ServerMessage:
    """Parse a frame as received from a websocket library: ``str`` is text, ``bytes`` is binary."""
    if binary is None:
        binary = isinstance(raw, bytes)
    if binary:
        return parse_binary(raw if isinstance(raw, bytes) else raw.encode())
    return parse_text(raw)


def message_prompt_id(message: ServerMessage) -> str | None:
    """The prompt a message belongs to, when it says."""
    if isinstance(message, PreviewImage):
        return message.prompt_id
    return getattr(message, "prompt_id", None)
