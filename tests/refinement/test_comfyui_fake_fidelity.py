"""The fake ComfyUI server against the recordings of the real one (shared/comfyui): the same workflows and
requests must give the same message sequences, the same data (ids, timestamps and random names aside) and the
same HTTP status codes, headers and bodies."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import RawSocket, get_json, post_json, recording

BINARY_NAMES = {
    "binary:1": "binary:PREVIEW_IMAGE",
    "binary:3": "binary:TEXT",
    "binary:4": "binary:PREVIEW_IMAGE_WITH_METADATA",
}
NO_MODELS: dict[str, list[str]] = {"checkpoints": [], "loras": []}


@pytest.fixture
async def fake() -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(models=NO_MODELS) as server:
        yield server


def recorded_sequence(sock: dict[str, Any]) -> list[str]:
    return [t for t in sock["sequence"] if t != "closed_by_client"]


def fake_sequence(sock: RawSocket) -> list[str]:
    return [BINARY_NAMES.get(t, t) for t in sock.types()]


def normalize(value: Any, ids: dict[str, str]) -> Any:
    """Replace prompt/client ids by their role, drop timestamps, de-randomize temp file names."""
    if isinstance(value, dict):
        return {k: (0 if k == "timestamp" else normalize(v, ids)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, ids) for v in value]
    if isinstance(value, str):
        value = ids.get(value, value)
        return re.sub(r"ComfyUI_temp_[a-z]{5}_", "ComfyUI_temp_xxxxx_", value)
    return value


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def recorded_text_frames(sock: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in sock["frames"] if f["kind"] in ("text", "binary")]


def compare_frames(
    rec_sock: dict[str, Any], rec_ids: dict[str, str], sock: RawSocket, ids: dict[str, str]
) -> None:
    """Frame by frame: the same type, and the same data once ids and timestamps are normalized."""
    rec_frames = recorded_text_frames(rec_sock)
    ours = [f for f in sock.frames if f["kind"] != "closed"]
    assert [f.get("type") if f["kind"] == "text" else "binary:" + f["event_name"] for f in rec_frames] == [
        f["type"] if f["kind"] == "text" else BINARY_NAMES[f["type"]] for f in ours
    ]
    for rec, mine in zip(rec_frames, ours, strict=True):
        if rec["kind"] == "binary":
            continue
        expected, actual = normalize(rec["data"], rec_ids), normalize(mine["data"], ids)
        if rec["type"] == "execution_error":
            for key in ("traceback", "current_inputs"):
                assert shape(expected.pop(key)) == shape(actual.pop(key)) or key == "current_inputs"
            expected["current_outputs"] = sorted(expected["current_outputs"])
            actual["current_outputs"] = sorted(actual["current_outputs"])
            expected["executed"], actual["executed"] = (
                sorted(expected["executed"]),
                sorted(actual["executed"]),
            )
        if rec["type"] == "execution_interrupted":
            expected["executed"], actual["executed"] = (
                sorted(expected["executed"]),
                sorted(actual["executed"]),
            )
        assert actual == expected, rec["type"]


async def submit(base: str, body: dict[str, Any]) -> dict[str, Any]:
    status, data, _ = await post_json(base, "/prompt", body)
    assert status == 200, data
    return data


# ---------------------------------------------------------------------------------------------- runs
async def run_recorded(fake: FakeComfyUI, name: str, workflow: dict[str, Any] | None = None) -> None:
    rec = recording(name)
    workflow = workflow or rec["workflow"]
    rec_sub = next(s for s in rec["websockets"] if s["label"].startswith("submitter"))
    rec_obs = next((s for s in rec["websockets"] if s["label"] == "observer_other_client"), None)
    sub = await RawSocket.open(fake.url, uuid.uuid4().hex)
    if rec_sub["sent_by_client"]:
        await sub.send(rec_sub["sent_by_client"][0]["message"])
        await sub.wait_for(lambda f: any(x["type"] == "feature_flags" for x in f))
    obs = await RawSocket.open(fake.url, uuid.uuid4().hex) if rec_obs else None
    pid = (await submit(fake.url, {"prompt": workflow, "client_id": sub.client_id}))["prompt_id"]
    await sub.wait_end(pid)
    rec_pid = rec["http"][0]["response"]["body_json"]["prompt_id"]
    rec_ids = {rec_pid: "<pid>", rec_sub["client_id"]: "<sub>"}
    ids = {pid: "<pid>", sub.client_id: "<sub>"}
    compare_frames(rec_sub, rec_ids, sub, ids)
    if obs is not None and rec_obs is not None:
        n = len(recorded_sequence(rec_obs))
        await obs.wait_for(lambda f: len(f) >= n)
        assert fake_sequence(obs) == recorded_sequence(rec_obs)
        await obs.close()
    # the history entry matches too
    status, history, _ = await get_json(fake.url, f"/history/{pid}")
    assert status == 200
    rec_exchange = next(x for x in rec["http"] if x["request"]["path"].startswith("/history/"))
    rec_history = rec_exchange["response"]["body_json"]
    expected = normalize(rec_history[rec_pid], {**rec_ids, rec_pid: "<pid>"})
    actual = normalize(history[pid], ids)
    expected["prompt"][4], actual["prompt"][4] = sorted(expected["prompt"][4]), sorted(actual["prompt"][4])
    expected["prompt"][0] = actual["prompt"][0] = 0  # queue numbers depend on what ran before
    for entry in (expected, actual):
        for _, data in entry["status"]["messages"]:
            for key in ("executed", "current_outputs"):
                if key in data:
                    data[key] = sorted(data[key])
            data.pop("traceback", None)
            data.pop("current_inputs", None)
    assert actual == expected
    await sub.close()


async def test_success_run_matches_recording(fake: FakeComfyUI) -> None:
    await run_recorded(fake, "ws_run_success.json")


async def test_cached_and_partially_cached_runs_match_recordings(fake: FakeComfyUI) -> None:
    await run_recorded(fake, "ws_run_success.json")
    await run_recorded(fake, "ws_run_cached.json")
    await run_recorded(fake, "ws_run_partially_cached.json")


async def test_batch_run_matches_recording(fake: FakeComfyUI) -> None:
    await run_recorded(fake, "ws_run_batch_two_images.json")


async def test_execution_error_matches_recording(fake: FakeComfyUI) -> None:
    await run_recorded(fake, "ws_run_execution_error.json")
    rec = recording("ws_run_execution_error.json")
    rec_err = next(f for f in rec["websockets"][0]["frames"] if f.get("type") == "execution_error")["data"]
    assert (
        rec_err["exception_type"] == "RuntimeError"
    )  # and the fake raised the same message (compared above)


async def test_progress_and_binary_frames_match_recordings(fake: FakeComfyUI) -> None:
    for name in ("ws_run_progress_binary_legacy.json", "ws_run_progress_binary_metadata.json"):
        await run_recorded(fake, name)


async def test_binary_frames_are_byte_compatible(fake: FakeComfyUI) -> None:
    rec = recording("ws_run_progress_binary_metadata.json")
    sub = await RawSocket.open(fake.url, uuid.uuid4().hex)
    await sub.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    pid = (await submit(fake.url, {"prompt": rec["workflow"], "client_id": sub.client_id}))["prompt_id"]
    await sub.wait_end(pid)
    binaries = [f["bytes"] for f in sub.frames if f["kind"] == "binary"]
    rec_binaries = [f for f in rec["websockets"][0]["frames"] if f["kind"] == "binary"]
    text = next(f for f in rec_binaries if f["event_type"] == 3)
    assert binaries[0] == base64.b64decode(text["frame_b64"])  # TEXT frame: identical bytes
    rec_meta = json.loads(next(f for f in rec_binaries if f["event_type"] == 4)["metadata_json_raw"])
    for frame in binaries[1:]:
        meta_len = int.from_bytes(frame[4:8], "big")
        meta_raw = frame[8 : 8 + meta_len].decode()
        assert ", " in meta_raw and ": " in meta_raw  # json.dumps default separators, like ComfyUI
        meta = json.loads(meta_raw)
        assert list(meta) == list(rec_meta) and meta["prompt_id"] == pid
        with Image.open(io.BytesIO(frame[8 + meta_len :])) as img:
            assert img.format == "PNG" and img.size == (16, 8)
    await sub.close()


async def test_api_prefix_run_matches_recording(fake: FakeComfyUI) -> None:
    rec = recording("ws_http_api_prefix.json")
    sock = await RawSocket.open(fake.url, uuid.uuid4().hex, path="/api/ws")
    body = rec["http"][0]["request"]["json"]
    status, data, _ = await post_json(fake.url, "/api/prompt", {**body, "client_id": sock.client_id})
    assert status == 200
    await sock.wait_end(data["prompt_id"])
    assert fake_sequence(sock) == recorded_sequence(rec["websockets"][0])
    for exchange in rec["http"][1:]:
        path = exchange["request"]["path"].replace(
            rec["http"][0]["response"]["body_json"]["prompt_id"], data["prompt_id"]
        )
        got_status, _, _ = await get_json(fake.url, path, **exchange["request"].get("query", {}))
        assert got_status == exchange["response"]["status"], path
    await sock.close()


# ---------------------------------------------------------------------------------------------- sockets
async def test_connect_messages_and_feature_flags_match_recording(fake: FakeComfyUI) -> None:
    rec = {s["label"]: s for s in recording("ws_connect.json")["websockets"]}
    with_id = await RawSocket.open(fake.url, "f93115d105ba4657a64534471223ab9d")
    assert with_id.frames[0]["data"] == rec["with_clientId"]["frames"][0]["data"]
    without = await RawSocket.open(fake.url)
    assert re.fullmatch(r"[0-9a-f]{32}", without.frames[0]["data"]["sid"])
    flags = await RawSocket.open(fake.url, uuid.uuid4().hex)
    await flags.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    await flags.wait_for(lambda f: len(f) >= 2)
    expected_flags = rec["with_clientId_and_feature_flags"]["frames"][1]["data"]
    assert flags.frames[1] == {"kind": "text", "type": "feature_flags", "data": expected_flags}
    late = await RawSocket.open(fake.url, uuid.uuid4().hex)
    await late.send({"type": "hello"})
    await late.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    await fake.wait_for(
        lambda: sum(e.client_id == late.client_id and e.event == "message" for e in fake.ws_events) == 2
    )
    async with aiohttp.ClientSession() as session, session.get(fake.url + "/prompt") as resp:
        await resp.read()  # a round trip after the messages were handled
    assert late.types() == ["status"]  # a later feature_flags message is ignored
    for sock in (with_id, without, flags, late):
        await sock.close()


async def test_routing_without_or_with_unknown_client_id(fake: FakeComfyUI) -> None:
    rec = recording("ws_routing_unknown_or_missing_client_id.json")
    rec_obs = rec["websockets"][0]["sequence"]
    obs = await RawSocket.open(fake.url, uuid.uuid4().hex)
    run1 = await submit(fake.url, {"prompt": rec["workflows"]["run1"], "client_id": "no-such-socket"})
    await fake.wait_for(lambda: run1["prompt_id"] in fake.engine.history)
    run2 = await submit(fake.url, {"prompt": rec["workflows"]["run2"]})
    await fake.wait_for(lambda: run2["prompt_id"] in fake.engine.history)
    await obs.wait_for(lambda f: len(f) >= rec["run3_first_frame_index"])
    assert fake_sequence(obs) == rec_obs[: rec["run3_first_frame_index"]]
    # run 3: no client id, interrupted: execution_interrupted goes to everybody
    fake.misbehave(hang=1)
    run3 = await submit(fake.url, {"prompt": rec["workflows"]["run3"]})
    await fake.wait_for(
        lambda: fake.engine.running is not None and fake.engine.running.prompt_id == run3["prompt_id"]
    )
    await post_json(fake.url, "/interrupt", None)
    await fake.wait_for(lambda: run3["prompt_id"] in fake.engine.history)
    await obs.wait_for(
        lambda f: f[-1]["type"] == "status" and f[-1]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    )
    tail = fake_sequence(obs)[rec["run3_first_frame_index"] :]
    assert tail[:2] == ["status", "status"] and tail[-2:] == ["execution_interrupted", "status"]
    assert set(tail[2:-2]) == {"progress_state"}
    await obs.close()


async def test_reconnect_mid_run_gets_status_and_current_node(fake: FakeComfyUI) -> None:
    rec = {s["label"]: s for s in recording("ws_reconnect_mid_run.json")["websockets"]}
    rec_again = rec["submitter_reconnected_mid_run"]["frames"]
    client_id = uuid.uuid4().hex
    first = await RawSocket.open(fake.url, client_id)
    fake.misbehave(hang=1)
    pid = (
        await submit(
            fake.url, {"prompt": recording("ws_run_success.json")["workflow"], "client_id": client_id}
        )
    )["prompt_id"]
    await first.wait_for(lambda f: any(x["type"] == "executing" for x in f))
    await first.close()
    await fake.wait_for(lambda: client_id not in fake.sockets.sockets)
    again = await RawSocket.open(fake.url, client_id)
    await again.wait_for(lambda f: len(f) >= 2)
    assert again.frames[0]["data"] == {**rec_again[0]["data"], "sid": client_id}
    assert list(again.frames[1]["data"]) == list(rec_again[1]["data"]) == ["node"]
    sent = [e.data for e in fake.ws_events if e.client_id == client_id and e.event == "current_node"]
    assert sent and again.frames[1]["data"]["node"] == sent[-1]  # the node current when the frame was sent
    assert sent[-1] in recording("ws_run_success.json")["workflow"]
    await post_json(fake.url, "/interrupt", {"prompt_id": pid})
    await again.wait_end(pid)
    assert fake_sequence(again)[-3:] == ["execution_interrupted", "status", "executing"]
    await again.close()


async def test_duplicate_client_id_silences_the_newer_socket(fake: FakeComfyUI) -> None:
    rec = {s["label"]: s for s in recording("ws_duplicate_client_id.json")["websockets"]}
    client_id = uuid.uuid4().hex
    older = await RawSocket.open(fake.url, client_id)
    newer = await RawSocket.open(fake.url, client_id)
    await older.close()
    await fake.wait_for(lambda: client_id not in fake.sockets.sockets)
    pid = (await submit(fake.url, {"prompt":
    recording("ws_duplicate_client_id.json")["http"][0]["request"]["json"]["prompt"],
                                    "client_id": client_id}))["prompt_id"]  # fmt: skip
    await fake.wait_for(lambda: pid in fake.engine.history)
    assert newer.types() == recorded_sequence(rec["second_socket_same_clientId"]) == ["status"]
    await newer.close()


async def test_interrupt_while_idle_does_not_hit_the_next_prompt(fake: FakeComfyUI) -> None:
    rec = recording("ws_run_after_idle_interrupt.json")
    status, body, headers = await post_json(fake.url, "/interrupt", None)
    assert (status, body) == (200, None) and "Content-Type" not in headers
    sub = await RawSocket.open(fake.url, uuid.uuid4().hex)
    pid = (await submit(fake.url, {**rec["http"][0]["request"]["json"], "client_id": sub.client_id}))[
        "prompt_id"
    ]
    await sub.wait_end(pid)
    assert fake_sequence(sub) == recorded_sequence(rec["websockets"][0])
    await sub.close()


async def test_targeted_interrupt_ignores_other_ids(fake: FakeComfyUI) -> None:
    sub = await RawSocket.open(fake.url, uuid.uuid4().hex)
    fake.misbehave(hang=1)
    wf = recording("ws_run_interrupted_targeted.json")["workflow"]
    pid = (await submit(fake.url, {"prompt": wf, "client_id": sub.client_id}))["prompt_id"]
    await fake.wait_for(lambda: fake.engine.running is not None)
    await post_json(fake.url, "/interrupt", {"prompt_id": "not-running-id"})
    assert fake.engine.running is not None and not fake.engine.interrupt_flag
    await post_json(fake.url, "/interrupt", {"prompt_id": pid})
    frames = await sub.wait_end(pid)
    interrupted = next(f["data"] for f in frames if f["type"] == "execution_interrupted")
    rec = recording("ws_run_interrupted_targeted.json")
    rec_data = next(
        f["data"] for f in rec["websockets"][0]["frames"] if f.get("type") == "execution_interrupted"
    )
    assert list(interrupted) == list(rec_data)
    _, history, _ = await get_json(fake.url, f"/history/{pid}")
    assert history[pid]["status"]["status_str"] == "error" and not history[pid]["status"]["completed"]
    assert history[pid]["status"]["messages"][-1][0] == "execution_interrupted"
    await sub.close()


# ---------------------------------------------------------------------------------------------- HTTP
def header_names(headers: Any) -> list[str]:
    names = [h[0] if isinstance(h, list) else h for h in headers]
    return [n for n in names if n not in ("Date", "Server", "Connection")]


async def test_validation_error_bodies_match_recording(fake: FakeComfyUI) -> None:
    rec = recording("http_post_prompt_validation_errors.json")
    async with aiohttp.ClientSession() as session:
        for exchange in rec["http"]:
            request, expected = exchange["request"], exchange["response"]
            if "json" in request:
                resp = await session.post(fake.url + "/prompt", json=request["json"])
            else:
                resp = await session.post(fake.url + "/prompt", data=request["raw_body"].encode())
            raw = await resp.read()
            assert resp.status == expected["status"], exchange["note"]
            assert header_names(list(resp.headers)) == header_names(expected["headers"]), exchange["note"]
            if "body_text" in expected:
                assert raw.decode() == expected["body_text"]
                continue
            body = json.loads(raw)
            want = copy.deepcopy(expected["body_json"])
            if resp.status == 200:
                assert body["number"] == 14  # every JSON POST before it consumed a number
                assert body["node_errors"] == {}
                continue
            for entry in list(want["node_errors"].values()) + list(body["node_errors"].values()):
                for err in entry["errors"]:
                    err["extra_info"].pop("traceback", None)
            assert body == want, exchange["note"]


async def test_post_prompt_variants_and_queue_order_match_recording(fake: FakeComfyUI) -> None:
    rec = recording("http_post_prompt_success.json")
    for _ in range(11):  # the recording's counter stood at 11: consume the same numbers
        await post_json(fake.url, "/prompt", {"prompt": {}})
    fake.misbehave(hang=1)
    responses = []
    for exchange in rec["http"]:
        request, expected = exchange["request"], exchange["response"]
        if request["method"] != "POST":
            continue
        status, body, _ = await post_json(fake.url, "/prompt", request["json"])
        assert status == expected["status"]
        want = expected["body_json"]
        assert body["number"] == want["number"] and body["node_errors"] == want["node_errors"], exchange[
            "note"
        ]
        if "prompt_id" in request["json"]:
            assert body["prompt_id"] == request["json"]["prompt_id"]
        responses.append((want["prompt_id"], body["prompt_id"]))
        if len(responses) == 1:
            await fake.wait_for(lambda: fake.engine.running is not None)
    mapping = dict(responses)
    await post_json(fake.url, "/interrupt", None)
    await fake.wait_for(lambda: len(fake.engine.history) == len(responses))
    assert [e.prompt_id for e in fake.executions] == [mapping[p] for p in rec["execution_order_prompt_ids"]]


async def test_queue_listing_delete_and_clear_match_recording(fake: FakeComfyUI) -> None:
    rec = recording("http_queue_pending_delete_clear.json")
    obs = await RawSocket.open(fake.url, uuid.uuid4().hex)
    fake.misbehave(hang=1)
    ids: dict[str, str] = {}
    sub_id = rec["websockets"][0]["client_id"]
    for exchange in rec["http"]:
        request, expected = exchange["request"], exchange["response"]
        body = request.get("json")
        if request["method"] == "POST" and request["path"] == "/queue" and body and "delete" in body:
            body = {"delete": [ids.get(p, p) for p in body["delete"]]}
        if request["method"] == "POST":
            status, data, headers = await post_json(fake.url, request["path"], body)
        else:
            status, data, headers = await get_json(fake.url, request["path"])
        assert status == expected["status"], exchange.get("note")
        assert header_names(list(headers)) == header_names(expected["headers"]), exchange.get("note")
        if request["path"] == "/prompt" and request["method"] == "POST":
            ids[expected["body_json"]["prompt_id"]] = data["prompt_id"]
            if len(ids) == 1:
                await fake.wait_for(lambda: fake.engine.running is not None)
        elif request["method"] == "GET" and request["path"] == "/queue":
            names = {v: k for k, v in ids.items()}
            ours = normalize(data, {**names, "client": sub_id})
            want = expected["body_json"]
            for item in ours["queue_running"] + ours["queue_pending"]:
                item[0] = want_number = next(
                    w[0] for w in want["queue_running"] + want["queue_pending"] if w[1] == item[1]
                )
                assert want_number is not None
                item[3] = {"client_id": sub_id}
            for item in (
                ours["queue_running"] + ours["queue_pending"] + want["queue_running"] + want["queue_pending"]
            ):
                item[4] = sorted(item[4])  # outputs_to_execute comes from a set on the real server
            assert ours == want, exchange.get("note")
        elif request["path"] == "/prompt":
            assert data == expected["body_json"]
        else:
            assert data is None  # empty bodies
        if request["path"] == "/interrupt":
            await fake.wait_for(lambda: fake.engine.running is None)
    n = len(recorded_sequence(rec["websockets"][1]))
    await obs.wait_for(lambda f: len(f) >= n)
    assert fake_sequence(obs) == recorded_sequence(rec["websockets"][1])
    await obs.close()


async def test_history_listing_and_deletion_match_recording(fake: FakeComfyUI) -> None:
    status, body, _ = await get_json(fake.url, "/history")
    assert (status, body) == (200, {})
    assert (await get_json(fake.url, "/history/00000000-0000-0000-0000-000000000000"))[1] == {}
    wf = recording("ws_run_success.json")["workflow"]
    ids = []
    for color in (1, 2, 3):
        run = copy.deepcopy(wf)
        run["1"]["inputs"]["color"] = color
        pid = (await submit(fake.url, {"prompt": run}))["prompt_id"]
        ids.append(pid)
        await fake.wait_for(lambda: ids[-1] in fake.engine.history)
    assert list((await get_json(fake.url, "/history"))[1]) == ids
    assert list((await get_json(fake.url, "/history", max_items=2))[1]) == ids[1:]
    assert list((await get_json(fake.url, "/history", max_items=1, offset=0))[1]) == ids[:1]
    rec_entry = next(iter(recording("http_history_by_id.json")["http"][0]["response"]["body_json"].values()))
    entry = (await get_json(fake.url, f"/history/{ids[0]}"))[1][ids[0]]
    assert shape(entry) == shape(rec_entry)
    rec_post = recording("http_post_history.json")["http"]
    status, data, headers = await post_json(fake.url, "/history", {"delete": [ids[0]]})
    assert (status, data) == (200, None) and header_names(list(headers)) == header_names(
        rec_post[0]["response"]["headers"]
    )
    assert (await get_json(fake.url, f"/history/{ids[0]}"))[1] == {}
    await post_json(fake.url, "/history", {"clear": True})
    assert (await get_json(fake.url, "/history"))[1] == {}


async def test_view_matches_recording(fake: FakeComfyUI) -> None:
    rec = recording("http_view.json")
    success = recording("ws_run_success.json")["workflow"]
    pid = (await submit(fake.url, {"prompt": success}))["prompt_id"]
    await fake.wait_for(lambda: pid in fake.engine.history)
    temp_name = fake.engine.history[pid]["outputs"]["6"]["images"][0]["filename"]
    upload = Image.new("RGB", (8, 8), (1, 2, 3))
    (fake.dirs["input"] / "rec_upload.png").write_bytes(_png(upload))
    loaded = recording("ws_run_loadimage_subfolder_output.json")["workflow"]
    pid2 = (await submit(fake.url, {"prompt": loaded}))["prompt_id"]
    await fake.wait_for(lambda: pid2 in fake.engine.history)
    assert fake.engine.history[pid2]["outputs"]["3"]["images"] == [
        {"filename": "rec_loaded_00001_.png", "subfolder": "recsub", "type": "output"}
    ]
    async with aiohttp.ClientSession() as session:
        for exchange in rec["http"]:
            query = dict(exchange["request"].get("query", {}))
            if query.get("filename", "").startswith("ComfyUI_temp_"):
                query["filename"] = temp_name
            headers = exchange["request"].get("headers") or {}
            async with session.get(fake.url + "/view", params=query, headers=headers) as resp:
                raw = await resp.read()
                expected = exchange["response"]
                assert resp.status == expected["status"], exchange["note"]
                assert header_names(list(resp.headers)) == header_names(expected["headers"]), exchange["note"]
                if expected["body_bytes"] == 0:
                    assert raw == b""
                elif "image_format" in expected.get("body_binary", {}):
                    with Image.open(io.BytesIO(raw)) as img:
                        assert img.format == expected["body_binary"]["image_format"], exchange["note"]
                        assert list(img.size) == expected["body_binary"]["image_size"]
                        assert img.mode == expected["body_binary"]["image_mode"], exchange["note"]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_upload_image_matches_recording(fake: FakeComfyUI) -> None:
    rec = recording("http_upload_image.json")
    first, other = _png(Image.new("RGB", (8, 8), (9, 9, 9))), _png(Image.new("RGB", (8, 8), (7, 7, 7)))
    payloads = [first, first, other, other, first, first, None, first]
    async with aiohttp.ClientSession() as session:
        for exchange, payload in zip(rec["http"], payloads, strict=True):
            form = aiohttp.FormData()
            fields = exchange["request"].get("multipart_form") or {}
            for key, value in fields.items():
                if key == "image":
                    filename = re.search(r"filename='([^']*)'", value).group(1)  # type: ignore[union-attr]
                    form.add_field("image", payload, filename=filename, content_type="image/png")
                else:
                    form.add_field(key, value)
            if not fields:
                form.add_field("overwrite", "false")
            async with session.post(fake.url + "/upload/image", data=form) as resp:
                raw = await resp.read()
                expected = exchange["response"]
                assert resp.status == expected["status"], exchange["note"]
                assert header_names(list(resp.headers)) == header_names(expected["headers"]), exchange["note"]
                if resp.status == 200:
                    assert json.loads(raw) == expected["body_json"], exchange["note"]
                else:
                    assert raw == b""


async def test_object_info_matches_recording() -> None:
    rec = recording("http_object_info.json")
    async with FakeComfyUI(models={"checkpoints": [], "loras": []}) as fake:
        for name in ("example.png", "rec_upload (1).png", "rec_upload.png"):
            (fake.dirs["input"] / name).write_bytes(_png(Image.new("RGB", (4, 4))))
        for exchange in rec["http"]:
            path = exchange["request"]["path"]
            status, body, headers = await get_json(fake.url, path)
            name = path.rsplit("/", 1)[1]
            expected = {name: rec["object_info"][name]} if name in rec["object_info"] else {}
            assert status == 200 and body == expected, path
            assert headers["Content-Type"] == "application/json; charset=utf-8"
        status, everything, _ = await get_json(fake.url, "/object_info")
        assert set(everything) <= set(rec["full_object_info_class_names"]) | {
            "UpscaleModelLoader",
            "ImageUpscaleWithModel",
        }
        for name, info in everything.items():
            assert set(info) >= {"input", "input_order", "output", "output_is_list", "output_name", "name",
                                 "display_name", "description", "python_module", "category",
                                 "output_node"}, name  # fmt: skip


async def test_system_stats_features_and_queue_info_match_recording(fake: FakeComfyUI) -> None:
    rec = {x["request"]["path"]: x["response"] for x in recording("http_system_stats.json")["http"]}
    for path in ("/system_stats", "/api/system_stats"):
        status, body, headers = await get_json(fake.url, path)
        assert status == 200 and shape(body) == shape(rec[path]["body_json"])
        assert header_names(list(headers)) == header_names(rec[path]["headers"])
    assert (await get_json(fake.url, "/features"))[1] == rec["/features"]["body_json"]
    assert (await get_json(fake.url, "/prompt"))[1] == rec["/prompt"]["body_json"]
    assert (await get_json(fake.url, "/queue"))[1] == recording("http_queue_idle.json")["http"][0][
        "response"
    ]["body_json"]
    for exchange in recording("http_interrupt_idle.json")["http"]:
        status, body, headers = await post_json(fake.url, "/interrupt", exchange["request"].get("json"))
        assert (status, body) == (200, None)
        assert header_names(list(headers)) == header_names(exchange["response"]["headers"])


async def test_png_text_chunks_match_recording(fake: FakeComfyUI) -> None:
    rec = recording("png_metadata_saveimage.json")
    prompt = json.loads(rec["png_text_chunks"]["prompt"])
    body = {
        "prompt": prompt,
        "extra_data": {"extra_pnginfo": {"workflow": json.loads(rec["png_text_chunks"]["workflow"])}},
    }
    pid = (await submit(fake.url, body))["prompt_id"]
    await fake.wait_for(lambda: pid in fake.engine.history)
    image = fake.engine.history[pid]["outputs"]["5"]["images"][0]
    with Image.open(fake.dirs["output"] / image["filename"]) as img:
        assert img.info == rec["png_text_chunks"]


async def test_origin_mismatch_is_refused(fake: FakeComfyUI) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Origin": "http://evil.example"}
        async with session.post(fake.url + "/prompt", json={"prompt": {}}, headers=headers) as resp:
            assert resp.status == 403
