"""generate_quality's arguments are checked at the call (issue 11 items 1, 2, 8): the workflow argument reads no
file outside the workflow folders (no existence oracle, no key leak, bounded), inline workflow JSON works as a
JSON object and as text, and parameters that used to fail inside the job are tool errors. A refused call starts
no job and stores nothing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mcp_server.lifespan import AppState
from refinement.workflows import load_template
from tests.mcp_server.conftest import components_for, connect, make_settings, text
from tests.mcp_server.fakes import ScriptedGenerator


def nothing_started(gen: ScriptedGenerator, state: AppState) -> bool:
    return not gen.calls and not state.jobs.active() and not state.jobs._jobs


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    secret = tmp_path / "outside" / "creds.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"aws_secret_access_key": "AKIAVERYSECRET", "region": "x"}))
    plain = tmp_path / "outside" / "shadow"
    plain.write_text("root:$6$hash:19000:0:99999:7:::\n")
    return {"secret": secret, "plain": plain, "missing": tmp_path / "outside" / "nope.json"}


async def test_workflow_files_outside_are_never_read_and_all_get_one_answer(offline_scorer, store, outside):
    gen = ScriptedGenerator(store)
    settings = make_settings()  # no workflow folders configured
    answers = []
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        for name in ("secret", "plain", "missing"):
            path = str(outside[name])
            result = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": path})
            assert result.is_error, result.content
            message = text(result)
            assert "aws_secret_access_key" not in message and "AKIA" not in message and "root:" not in message
            assert "COMFY_QUALITY_MCP_WORKFLOW_ROOTS" in message
            answers.append(re.sub(r"workflow '[^']*'( \(\d[\d,]* characters\))?", "workflow X", message))
        assert len(set(answers)) == 1  # no oracle: existing, readable, JSON or not, missing: the same answer
        assert nothing_started(gen, state)  # a refused argument stores no "failed" generation
        for bad in ("/etc/shadow", "../../etc/passwd", "~/.aws/credentials", "no-such-template"):
            result = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": bad})
            assert result.is_error and "is not a template" in text(result), text(result)
        assert nothing_started(gen, state)


async def test_workflow_files_under_the_workflow_folders(offline_scorer, store, tmp_path, outside):
    root = tmp_path / "workflows"
    (root / "sub").mkdir(parents=True)
    sd15 = load_template("sd15")
    (root / "sub" / "mine.json").write_text(json.dumps(sd15))
    (root / "big.json").write_text(json.dumps({"pad": "x" * 5000}))
    (root / "link-out.json").symlink_to(outside["secret"])
    os.link(outside["secret"], root / "hard.json")
    gen = ScriptedGenerator(store, scores=(8.0,))
    settings = make_settings(workflow_roots=[root], workflow_max_bytes=4000)
    async with connect(settings, components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        ok = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": "sub/mine.json"})
        assert not ok.is_error, ok.content
        assert json.loads(gen.calls[0].workflow or "") == sd15  # the orchestrator gets JSON, never a path
        cases = {
            "../outside/creds.json": "outside the allowed folders",
            str(outside["secret"]): "outside the allowed folders",
            "link-out.json": "outside the allowed folders",
            "hard.json": "hard links",
            "big.json": "above the 4 KB limit (COMFY_QUALITY_MCP_WORKFLOW_MAX_BYTES)",
            "sub/none.json": "workflow file not found",
            "sub": "not a regular file",
        }
        for arg, expected in cases.items():
            result = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": arg})
            assert result.is_error and expected in text(result), (arg, text(result))
            assert "AKIA" not in text(result) and "aws_secret" not in text(result)
        assert len(gen.calls) == 1 and len(state.jobs._jobs) == 1


async def test_inline_workflow_json_as_an_object_and_as_text(offline_scorer, store):
    sd15 = load_template("sd15")
    gen = ScriptedGenerator(store, scores=(8.0,))
    async with connect(make_settings(), components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        as_text = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": json.dumps(sd15)})
        assert not as_text.is_error, as_text.content
        as_object = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": sd15})
        assert not as_object.is_error, as_object.content
        template = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": "sdxl"})
        assert not template.is_error, template.content
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert [json.loads(c.workflow or "") for c in gen.calls[:2]] == [sd15, sd15] and gen.calls[2].workflow == "sdxl"
    schema = json.dumps(tools["generate_quality"].input_schema["properties"]["workflow"])
    assert '"object"' in schema and '"string"' in schema
    assert "JSON object" in (tools["generate_quality"].description or "")


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        ({"1": {"class_type": "KSampler", "inputs": {}}}, "no output node"),
        ({"1": "not a node"}, "node 1 is not an object"),
        ({"nodes": [], "links": []}, "UI format"),
        ('{"1": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}}', "not in the workflow"),
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "invalid arguments: workflow"),  # the SDK parses JSON-looking text: a list is no workflow
        ("7", "is not a template"),
        ("[" * 5000 + "]" * 5000, "nested"),
        ({"a": {"b": {"c": {}}}} | {"deep": json.loads("[" * 200 + "]" * 200)}, "nested more than 64"),
        ("   ", "workflow is empty"),
        ("x" * 5_000_000, "above the 4.2 MB limit"),
    ],
)
async def test_bad_inline_workflows_are_tool_errors(offline_scorer, store, workflow, expected):
    gen = ScriptedGenerator(store)
    async with connect(make_settings(), components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        result = await client.call_tool("generate_quality", {"prompt": "a fox", "workflow": workflow})
        assert result.is_error and expected in text(result), text(result)
        assert len(text(result)) < 1000
        assert nothing_started(gen, state)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"loras": [{"name": " detail.safetensors"}]}, "loras[0].name"),
        ({"loras": [{"name": "../../etc/x.safetensors"}]}, "plain file name"),
        ({"sampler": "not a sampler"}, "is not a ComfyUI sampler name"),
        ({"scheduler": "karras;rm -rf"}, "is not a ComfyUI scheduler name"),
        ({"sampler": "euler\u202e"}, "\\u202e"),
        ({"width": 100}, "not a multiple of 8"),
        ({"width": 4096, "height": 4096, "retry_strategy": "best_of_n", "best_of_n": 16}, "over 64 megapixels"),
    ],
)
async def test_parameters_that_used_to_fail_inside_the_job_are_refused_at_the_call(
    offline_scorer, store, arguments, expected
):
    gen = ScriptedGenerator(store)
    async with connect(make_settings(), components_for(offline_scorer, generator=gen, store=store)) as (client, state):
        result = await client.call_tool("generate_quality", {"prompt": "a fox", **arguments})
        assert result.is_error and expected in text(result), text(result)
        assert nothing_started(gen, state)
        good = await client.call_tool("generate_quality", {"prompt": "a fox", "sampler": "dpmpp_2m", "width": 512})
        assert not good.is_error, good.content
