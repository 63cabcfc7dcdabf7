"""A stored generation follows storage/metadata.schema.json with no undeclared key, whatever the run went through.

Real orchestrator runs against the fake ComfyUI server (HTTP + websocket), the real offline scorer and a local
store; the metadata.json files on disk are validated with ``jsonschema`` against the checked-in schema made strict
(``additionalProperties: false`` on every object that lists its properties), so a field the orchestrator writes
without declaring it fails here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from refinement.api import GenerationRequest, ProgressUpdate
from refinement.comfyui import ComfyUIPool
from refinement.orchestrator import Orchestrator
from refinement.settings import RefinementSettings
from storage import GenerationMetadata, LocalStore
from tests.fakes.comfyui_server import FakeComfyUI

SCHEMA = Path(__file__).resolve().parents[2] / "storage" / "metadata.schema.json"


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever an object lists its properties and says nothing."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(strict(schema))


def problems(validator: Draft202012Validator, doc: Any) -> list[str]:
    """One line per error: where, and why (for a failed ``anyOf``, why each branch failed)."""

    def why(error: ValidationError) -> str:
        return error.message + "".join(f" [{why(sub)}]" for sub in error.context or [])

    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {why(e)}" for e in validator.iter_errors(doc)]


def request(**kw: Any) -> GenerationRequest:
    defaults = {"prompt": "a red fox in the snow", "width": 256, "height": 256, "steps": 6, "seed": 11,
                "quality_threshold": 10.0, "max_attempts": 3}  # fmt: skip
    return GenerationRequest(**(defaults | kw))


async def stored_documents(tmp_path: Path, scorer: Any) -> dict[str, dict[str, Any]]:
    """Three runs, each writing what the others do not: a failed attempt and retries with changes; a batch; a run
    stopped by an error no retry can fix after one attempt."""
    docs: dict[str, dict[str, Any]] = {}
    async with FakeComfyUI() as comfy:
        pool = ComfyUIPool([comfy.url])
        store = LocalStore(tmp_path / "store")
        settings = RefinementSettings(comfyui_urls=[comfy.url], attempt_timeout_seconds=30)
        orch = Orchestrator(scorer, pool, store, None, settings)
        try:
            comfy.misbehave(execution_error=1)
            runs = {"retries": await orch.generate(request(retry_strategy="progressive"))}
            runs["batch"] = await orch.generate(request(retry_strategy="best_of_n", best_of_n=3, max_attempts=1))

            def refuse_after_first(update: ProgressUpdate) -> None:
                if update.stage == "attempt_done" and update.attempt == 1:
                    comfy.misbehave(validation_error=1)

            runs["stopped"] = await orch.generate(request(), on_progress=refuse_after_first)
        finally:
            await pool.close()
    for name, result in runs.items():
        assert result.metadata_key, f"{name}: nothing stored ({result.error})"
        docs[name] = json.loads(store.path_for(result.metadata_key).read_bytes())
    return docs


async def test_stored_generations_follow_the_schema_with_no_undeclared_key(
    tmp_path: Path, offline_scorer: Any, validator: Draft202012Validator, caplog: pytest.LogCaptureFixture
) -> None:
    docs = await stored_documents(tmp_path, offline_scorer)

    # the runs did write the fields that were once undeclared: the check below covers them
    retries = docs["retries"]["refinement"]["attempts"]
    assert retries[0]["error"] and retries[0]["quality"] is None
    assert retries[0]["changes"] == [] and any(a["changes"] for a in retries[1:])
    batch = docs["batch"]["refinement"]["attempts"][0]
    assert len(batch["batch_scores"]) == 3 and batch["parameters"]["batch_index"] in (0, 1, 2)
    assert docs["batch"]["parameters"]["batch_index"] == batch["parameters"]["batch_index"]
    stopped = docs["stopped"]["refinement"]
    assert len(stopped["attempts"]) == 1 and "ComfyUI refused the workflow" in (stopped["error"] or "")

    for name, doc in docs.items():
        assert problems(validator, doc) == [], name
        with caplog.at_level(logging.INFO, logger="storage.metadata"):
            assert GenerationMetadata.from_dict(doc).model_dump(mode="json") == doc, name
        assert not [r for r in caplog.records if "does not know" in r.getMessage()], name


def test_the_strict_check_can_fail(validator: Draft202012Validator) -> None:
    from tests.storage.factories import make_metadata

    doc = json.loads(make_metadata(attempts=[4.0, 8.0]).to_json())
    assert problems(validator, doc) == []
    doc["refinement"]["attempts"][1]["energy_joules"] = 12.5
    doc["parameters"]["sigma_shift"] = 3.0
    doc["quality"]["technical"]["sharpness_v2"] = 0.4  # a score block of quality.report
    found = problems(validator, doc)
    assert len(found) == 3 and all("Additional properties are not allowed" in p for p in found), found
    assert {p.split(":")[0] for p in found} == {"refinement/attempts/1", "parameters", "quality"}
    for name in ("energy_joules", "sigma_shift", "sharpness_v2"):
        assert any(f"'{name}' was unexpected" in p for p in found), name
