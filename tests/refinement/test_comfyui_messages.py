"""The websocket message parser, on every frame the real ComfyUI sent in the recordings."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from refinement.comfyui.errors import ComfyUIProtocolError
from refinement.comfyui.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    PreviewImage,
    Progress,
    ProgressState,
    ProgressText,
    Status,
    UnknownBinary,
    UnknownMessage,
    message_prompt_id,
    parse_binary,
    parse_message,
    parse_text,
)
from tests.fakes.comfyui_testing import find_shared, needs_shared, shared_dir

EXPECTED_CLASS = {
    "status": Status,
    "feature_flags": FeatureFlags,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionError,
    "execution_interrupted": ExecutionInterrupted,
}


def _all_frames() -> list[tuple[str, dict[str, Any]]]:
    frames: list[tuple[str, dict[str, Any]]] = []
    found = find_shared()
    for path in sorted((found / "comfyui").glob("ws_*.json")) if found else []:
        data = json.loads(path.read_text())
        sockets = data.get("websockets") or [{"frames": data.get("websocket_frames", [])}]
        for sock in sockets:
            frames.extend((path.name, f) for f in sock["frames"] if f["kind"] in ("text", "binary"))
    return frames


FRAMES = _all_frames()


@needs_shared
def test_the_recordings_have_every_message_type() -> None:
    text_types = {f["type"] for _, f in FRAMES if f["kind"] == "text"}
    assert text_types == set(EXPECTED_CLASS)
    assert {f["event_type"] for _, f in FRAMES if f["kind"] == "binary"} == {1, 3, 4}


@needs_shared
def test_every_recorded_text_frame_parses_into_its_model() -> None:
    for name, frame in FRAMES:
        if frame["kind"] != "text":
            continue
        raw = json.dumps({"type": frame["type"], "data": frame["data"]})
        msg = parse_message(raw)
        assert isinstance(msg, EXPECTED_CLASS[frame["type"]]), (name, frame["type"])
        data = frame["data"]
        if isinstance(msg, Status):
            assert msg.queue_remaining == data["status"]["exec_info"]["queue_remaining"]
            assert msg.sid == data.get("sid")
        elif isinstance(msg, Executing):
            assert msg.node == data["node"] and msg.prompt_id == data.get("prompt_id")
            assert msg.is_end == (data["node"] is None)
        elif isinstance(msg, Progress):
            assert (msg.value, msg.max, msg.node) == (data["value"], data["max"], data["node"])
        elif isinstance(msg, ProgressState):
            assert set(msg.nodes) == set(data["nodes"])
            assert all(n.state in ("running", "finished") for n in msg.nodes.values())
        elif isinstance(msg, Executed):
            assert msg.output == data["output"] and msg.node == data["node"]
        elif isinstance(msg, ExecutionError):
            assert msg.exception_message.endswith("\n") and msg.traceback and msg.node_type
        elif isinstance(msg, ExecutionCached):
            assert msg.nodes == data["nodes"]
        if "prompt_id" in data:
            assert message_prompt_id(msg) == data["prompt_id"]


@needs_shared
def test_every_recorded_binary_frame_decodes_byte_exact() -> None:
    for name, frame in FRAMES:
        if frame["kind"] != "binary":
            continue
        raw = base64.b64decode(frame["frame_b64"])
        assert len(raw) == frame["frame_bytes"]
        msg = parse_message(raw)
        if frame["event_type"] == 3:
            assert isinstance(msg, ProgressText)
            assert (msg.node_id, msg.text) == (frame["node_id"], frame["text"])
        elif frame["event_type"] == 1:
            assert isinstance(msg, PreviewImage) and msg.metadata is None
            assert msg.image_type == "image/png" and msg.data.startswith(b"\x89PNG")
            assert len(msg.data) == frame["image_bytes"]
        else:
            assert isinstance(msg, PreviewImage) and msg.metadata is not None, name
            assert msg.metadata.model_dump() == json.loads(frame["metadata_json_raw"])
            assert msg.prompt_id == msg.metadata.prompt_id and msg.image_type == "image/png"
            assert msg.data.startswith(b"\x89PNG")


def test_replaying_a_recorded_run_reconstructs_it() -> None:
    """Feed the KSampler recording through the parser and rebuild what a client needs from it."""
    rec = json.loads((shared_dir() / "comfyui" / "ws_run_ksampler_tiny_sd15.json").read_text())
    prompt_id = rec["prompt_response"]["body"]["prompt_id"]
    steps, outputs, ended, started = [], {}, False, False
    for frame in rec["websocket_frames"]:
        msg = parse_text(json.dumps({"type": frame["type"], "data": frame["data"]}))
        if message_prompt_id(msg) not in (None, prompt_id):
            continue
        assert not ended, "nothing for the prompt after its end marker"
        if isinstance(msg, ExecutionStart):
            started = True
        elif isinstance(msg, Progress):
            steps.append((msg.node, msg.value, msg.max))
        elif isinstance(msg, Executed):
            outputs[msg.node] = msg.output
        elif isinstance(msg, Executing) and msg.is_end:
            ended = True
    assert started and ended
    assert steps == [("3", k, 4) for k in range(1, 5)]
    assert outputs == rec["history"][prompt_id]["outputs"]


def test_unknown_and_malformed_messages() -> None:
    unknown = parse_text('{"type": "logs", "data": {"entries": []}}')
    assert isinstance(unknown, UnknownMessage) and unknown.message_type == "logs"
    assert isinstance(parse_binary(struct.pack(">I", 9) + b"xyz"), UnknownBinary)
    for bad in (
        "not json",
        '{"data": {}}',
        '{"type": "status", "data": {"status": {}}}',
        '{"type": "progress"}',
    ):
        with pytest.raises(ComfyUIProtocolError):
            parse_text(bad)
    for bad_bytes in (b"\x00", struct.pack(">I", 3) + b"\x00", struct.pack(">II", 4, 50) + b"{}"):
        with pytest.raises(ComfyUIProtocolError):
            parse_binary(bad_bytes)


def test_typed_messages_from_constructed_frames() -> None:
    meta = {"node_id": "9", "prompt_id": "p", "display_node_id": "9", "parent_node_id": None,
    "real_node_id": "9",
            "image_type": "image/jpeg"}  # fmt: skip
    meta_bytes = json.dumps(meta).encode()
    frame = struct.pack(">II", 4, len(meta_bytes)) + meta_bytes + b"\xff\xd8jpeg"
    msg = parse_binary(frame)
    assert isinstance(msg, PreviewImage) and msg.image_type == "image/jpeg" and msg.data == b"\xff\xd8jpeg"
    legacy = parse_binary(struct.pack(">II", 1, 1) + b"\xff\xd8")
    assert isinstance(legacy, PreviewImage) and legacy.image_type == "image/jpeg" and legacy.prompt_id is None
    reconnect = parse_text('{"type": "executing", "data": {"node": "2"}}')
    assert isinstance(reconnect, Executing) and reconnect.prompt_id is None and not reconnect.is_end
