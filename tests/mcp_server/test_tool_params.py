"""generate_quality's parameters are GenerationRequest's fields: one source for names, types, bounds, defaults and
descriptions, so a field or bound added to the model reaches the tool's input schema (and its validation) with no
second edit; argument errors still name the field and the rule, never the value."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from pydantic import Field

from mcp_server import generation_args
from mcp_server.generation_args import build_request, takes_request_fields
from mcp_server.server import QualityServer, build_server
from refinement.api import CALLER_SET_FIELDS, GenerationRequest
from tests.mcp_server.conftest import components_for, connect, make_settings, text
from tests.mcp_server.fakes import ScriptedGenerator
from tests.mcp_server.polling import until_final

#: the tool's own arguments (how to answer), not the generation's
TOOL_OWN = {"return_scores", "include_preview", "wait_seconds", "request_id"}


async def _input_schema(server: Any, tool: str) -> dict[str, Any]:
    return {t.name: t for t in await server.list_tools()}[tool].input_schema


async def test_the_tool_schema_is_the_request_models_schema() -> None:
    schema = await _input_schema(build_server(make_settings()), "generate_quality")
    model = GenerationRequest.model_json_schema()
    fields = set(GenerationRequest.model_fields) - CALLER_SET_FIELDS
    assert set(schema["properties"]) == fields | TOOL_OWN
    assert schema["required"] == model["required"] == ["prompt"]
    for name in fields - {"workflow", "loras"}:
        assert schema["properties"][name] == model["properties"][name], name
    # a list field also takes null (its default) at the MCP boundary; bounds and description are the model's
    loras, model_loras = schema["properties"]["loras"], model["properties"]["loras"]
    assert loras["anyOf"] == [{k: v for k, v in model_loras.items() if k not in ("title", "description")},
                              {"type": "null"}]  # fmt: skip
    assert loras["anyOf"][0]["maxItems"] == 8 and loras["description"] == model_loras["description"]
    assert loras["default"] is None and schema["$defs"]["LoraRequest"] == model["$defs"]["LoraRequest"]
    # workflow: the boundary's own type (a JSON object too) and text (server-side workflow folders)
    workflow = schema["properties"]["workflow"]
    assert {arm.get("type") for arm in workflow["anyOf"]} == {"string", "object", "null"}
    assert "workflow folders" in workflow["description"]
    # what the tool's description and clients rely on
    assert schema["properties"]["seed"]["anyOf"][0] == {"minimum": 0, "exclusiveMaximum": 2**63, "type": "integer"}
    assert schema["properties"]["quality_threshold"]["default"] == 7.0
    assert schema["properties"]["retry_strategy"]["enum"] == list(model["properties"]["retry_strategy"]["enum"])


class Extended(GenerationRequest):
    """GenerationRequest as a developer might grow it: a new field, a tighter bound."""

    denoise: float = Field(1.0, ge=0, le=1, description="how much of the first image to redraw")
    steps: int | None = Field(None, ge=1, le=50, description="sampler steps of the first attempt")


async def test_a_field_or_bound_added_to_the_model_reaches_the_tool_with_no_second_edit(monkeypatch) -> None:
    monkeypatch.setattr(generation_args, "GenerationRequest", Extended)
    received: list[GenerationRequest] = []

    @takes_request_fields()
    async def tool(return_scores: bool = True, **request_fields: Any) -> str:
        received.append(build_request(request_fields, source="mcp"))
        return "ok"

    server = QualityServer("extended")
    server.add_tool(tool, name="generate_quality")
    schema = await _input_schema(server, "generate_quality")
    assert schema["properties"]["denoise"] == {
        "default": 1.0, "description": "how much of the first image to redraw", "maximum": 1, "minimum": 0,
        "title": "Denoise", "type": "number",
    }  # fmt: skip
    assert schema["properties"]["steps"]["anyOf"][0]["maximum"] == 50 and "return_scores" in schema["properties"]
    async with Client(server) as client:
        refused = await client.call_tool("generate_quality", {"prompt": "a fox", "denoise": 7.25, "steps": 99})
        assert refused.is_error
        assert "denoise" in text(refused) and "less than or equal to 1" in text(refused)
        assert "steps" in text(refused) and "50" in text(refused)
        assert "7.25" not in text(refused) and "99" not in text(refused)
        ok = await client.call_tool("generate_quality", {"prompt": "a fox", "denoise": 0.5, "loras": None})
        assert not ok.is_error, text(ok)
    assert isinstance(received[0], Extended) and received[0].denoise == 0.5 and received[0].loras == []
    assert received[0].source == "mcp"


def test_the_decorator_refuses_a_tool_parameter_that_shadows_a_field() -> None:
    async def shadowing(steps: int = 3, **request_fields: Any) -> None: ...

    with pytest.raises(TypeError, match="steps"):
        takes_request_fields()(shadowing)
    with pytest.raises(TypeError, match="nonsense"):
        takes_request_fields(overrides={"nonsense": (str, None)})(shadowing)

    async def closed(return_scores: bool = True) -> None: ...

    with pytest.raises(TypeError, match="request_fields"):
        takes_request_fields()(closed)


async def test_arguments_reach_the_request_with_the_models_defaults(offline_scorer, store) -> None:
    gen = ScriptedGenerator(store, scores=(8.0,))
    async with connect(make_settings(), components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        result = await client.call_tool(
            "generate_quality",
            {"prompt": "a fox", "loras": None, "steps": 12, "sampler": "euler", "width": 512, "include_preview": False},
        )
        result = await until_final(client, result, include_preview=False)
        assert not result.is_error, text(result)
    request = gen.calls[0]
    defaults = GenerationRequest(prompt="a fox")
    given = (request.steps, request.sampler, request.width, request.loras, request.source)
    assert given == (12, "euler", 512, [], "mcp")
    unset = set(GenerationRequest.model_fields) - {"prompt", "steps", "sampler", "width", "source", "workflow"}
    assert {n: getattr(request, n) for n in unset} == {n: getattr(defaults, n) for n in unset}


async def test_bound_violations_name_the_field_and_the_rule_never_the_value(offline_scorer, store) -> None:
    gen = ScriptedGenerator(store)
    async with connect(make_settings(), components_for(offline_scorer, generator=gen, store=store)) as (client, _):
        long_prompt = await client.call_tool("generate_quality", {"prompt": "SECRET-" * 700})
        many = [{"name": f"PRIVATE{i}.safetensors"} for i in range(9)]
        loras = await client.call_tool("generate_quality", {"prompt": "a fox", "loras": many})
        steps = await client.call_tool("generate_quality", {"prompt": "a fox", "steps": 4321})
    assert long_prompt.is_error and "prompt" in text(long_prompt) and "4000 characters" in text(long_prompt)
    assert "SECRET" not in text(long_prompt)
    assert loras.is_error and "loras" in text(loras) and "at most 8" in text(loras) and "PRIVATE" not in text(loras)
    assert steps.is_error and "steps" in text(steps) and "200" in text(steps) and "4321" not in text(steps)
    assert gen.calls == []
