"""The metadata document: round trips, schema export, forward and backward compatibility."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from quality.report import Coverage, ImageInfo, MetricResult, QualityReport
from storage.__main__ import schema_text
from storage.errors import MetadataError
from storage.metadata import (
    SCHEMA_VERSION,
    AttemptRecord,
    GenerationMetadata,
    GenerationParameters,
    QualityRecord,
    RefinementInfo,
    describe_rejection,
    metadata_json_schema,
)
from tests.storage.factories import make_metadata, make_quality

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = {
    "schema_version",
    "timestamp",
    "generation_id",
    "input",
    "workflow",
    "parameters",
    "quality",
    "refinement",
    "storage",
}


def test_round_trip_is_lossless() -> None:
    md = make_metadata(attempts=[5.1, None, 7.9, 6.2], partial=True)
    text = md.to_json()
    again = GenerationMetadata.from_json(text)
    assert again == md
    assert again.to_json() == text
    assert set(json.loads(text)) == TOP_LEVEL


def test_timestamp_is_utc_iso8601() -> None:
    paris = timezone(timedelta(hours=1))
    md = make_metadata(timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=paris))
    assert json.loads(md.to_json())["timestamp"] == "2026-01-02T02:04:05Z"
    naive = make_metadata(timestamp=datetime(2026, 1, 2, 3, 4, 5))
    assert naive.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_refinement_story_from_attempts() -> None:
    md = make_metadata(attempts=[5.5, None, 7.8, 7.8, 6.0], threshold=7.0)
    r = md.refinement
    assert (r.best_attempt, r.status, r.attempts_used) == (3, "success", 5)  # earliest of the tied best
    assert r.previous_scores == [
        5.5
    ]  # scored attempts before the best, in order (the failed one has no score)
    assert r.first_composite() == 5.5
    assert md.quality is not None and md.quality.composite_score == 7.8
    assert r.attempts[1].error and r.attempts[1].quality is None
    assert r.attempts[0].rejected_reason == "composite 5.50 < threshold 7.00; weakest: detail 5.00"

    below = RefinementInfo.from_attempts(
        r.attempts[:2], strategy="seed_search", threshold=7.0, max_attempts=2
    )
    assert (below.status, below.best_attempt, below.previous_scores) == ("best_effort", 1, [])
    failed = RefinementInfo.from_attempts(
        [AttemptRecord(attempt=1, parameters=GenerationParameters(), error="boom")],
        strategy=None,
        threshold=7.0,
        max_attempts=1,
    )
    assert (failed.status, failed.best_attempt) == ("failed", None)


def test_describe_rejection_mentions_partial_and_threshold() -> None:
    q = make_quality(6.14, partial=True)
    assert describe_rejection(q, 7.0) == "composite 6.14 < threshold 7.00; weakest: detail 5.64; partial grade"
    assert describe_rejection(q, None).startswith("composite 6.14 (no threshold)")
    assert describe_rejection(make_quality(7.2), 7.0) == "composite 7.20 ≥ threshold 7.00; weakest: detail 6.70"
    assert describe_rejection(None, 7.0) == "no score: the attempt produced no image"


def test_describe_rejection_never_rounds_a_miss_up_to_the_threshold() -> None:
    """One decimal would print 6.96 < 7.0 as 'composite 7.0 < threshold 7.0'."""
    text = describe_rejection(make_quality(6.96, spread=0.0), 7.0)
    assert text.startswith("composite 6.96 < threshold 7.00")


def test_quality_record_from_report_keeps_reproducibility_fields() -> None:
    coverage = Coverage(
        coverage=1.0,
        partial=False,
        dimensions={
            "technical": "scored",
            "aesthetic": "scored",
            "prompt_adherence": "scored",
            "detail": "scored",
        },
        effective_weights={"technical": 0.3, "aesthetic": 0.25, "prompt_adherence": 0.25, "detail": 0.2},
        metrics_ran=["brisque"],
    )
    report = QualityReport(
        composite_score=7.25,
        grade="B",
        technical={"score": 8.0, "brisque": 21.0, "niqe": 3.9},
        detail={"score": 6.0, "topiq": 0.5, "edge_density": 0.1},
        partial=False,
        coverage=coverage,
        metrics={
            "brisque": MetricResult(name="brisque", dimension="technical", status="ok", raw=21.0, score=8.0)
        },
        image=ImageInfo(width=64, height=64),
        device="cuda:0",
        versions={"brisque": "v1"},
        calibration="cal-2026",
        seconds=0.8,
        prompt="a cat",
    )
    record = QualityRecord.from_report(report)
    assert record.composite_score == 7.25 and record.grade == "B"
    assert record.technical.brisque == 21.0 and record.detail.topiq == 0.5
    assert (record.device, record.versions, record.calibration, record.seconds) == (
        "cuda:0",
        {"brisque": "v1"},
        "cal-2026",
        0.8,
    )
    assert record.coverage == coverage
    assert "metrics" not in record.model_dump() and "image" not in record.model_dump()
    assert record.weakest() == ("detail", 6.0)


def test_a_newer_documents_unknown_fields_are_read_past_and_never_written(caplog: pytest.LogCaptureFixture) -> None:
    doc = json.loads(make_metadata().to_json())
    doc["schema_version"] = SCHEMA_VERSION + 5
    doc["lineage"] = {"parent": "abc"}
    doc["input"]["language"] = "fr"
    doc["refinement"]["attempts"][0]["energy_joules"] = 12.5
    doc["refinement"]["attempts"][1]["parameters"]["sigma_shift"] = 3.0
    with caplog.at_level(logging.INFO, logger="storage.metadata"):
        md = GenerationMetadata.from_dict(doc, source="new/metadata.json")
    assert md.schema_version == SCHEMA_VERSION + 5
    assert md.input.prompt == doc["input"]["prompt"]
    assert len(md.refinement.attempts) == len(doc["refinement"]["attempts"])
    logged = " ".join(r.getMessage() for r in caplog.records)
    for path in ("lineage", "input.language", "refinement.attempts.0.energy_joules",
                 "refinement.attempts.1.parameters.sigma_shift"):  # fmt: skip
        assert path in logged
    again = json.loads(md.to_json())
    assert "lineage" not in again and "language" not in again["input"]
    assert "energy_joules" not in again["refinement"]["attempts"][0]
    assert "sigma_shift" not in again["refinement"]["attempts"][1]["parameters"]
    assert doc["lineage"] == {"parent": "abc"}  # the input is not modified


def test_unknown_fields_and_real_errors_together_report_the_errors() -> None:
    doc = json.loads(make_metadata().to_json())
    doc["lineage"] = {"parent": "abc"}
    doc["quality"]["grade"] = "Z"
    with pytest.raises(MetadataError, match=r"quality\.grade") as err:
        GenerationMetadata.from_dict(doc)
    assert "lineage" not in str(err.value)


def test_writing_an_undeclared_field_fails() -> None:
    md = make_metadata()
    with pytest.raises(ValueError, match="no field"):
        md.refinement.attempts[0].energy_joules = 12.5  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no field"):
        md.parameters.sigma_shift = 3.0  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RefinementInfo(status="failed", verdict="meh")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GenerationMetadata.model_validate({**json.loads(md.to_json()), "lineage": {}})
    assert "energy_joules" not in md.to_json().decode()


def test_a_document_of_the_previous_version_with_its_then_undeclared_fields_loads() -> None:
    # written before batch_scores, batch_index, changes and refinement.error were declared (same schema_version):
    # they were kept as extra fields then, and mean the same now
    doc = json.loads(make_metadata(attempts=[4.0, 8.0]).to_json())
    first, second = doc["refinement"]["attempts"]
    for record in (first, second):
        del record["changes"], record["batch_scores"], record["parameters"]["batch_index"]
    del doc["refinement"]["error"], doc["parameters"]["batch_index"]
    second["changes"] = ["steps 30 → 50: progressive schedule"]
    second["batch_scores"] = [6.1, 8.0]
    second["parameters"]["batch_index"] = 1
    doc["parameters"]["batch_index"] = 1
    doc["refinement"]["error"] = "ComfyUI refused the workflow: missing node"
    md = GenerationMetadata.from_dict(doc)
    assert md.refinement.attempts[0].changes == [] and md.refinement.attempts[0].batch_scores == []
    assert md.refinement.attempts[1].changes == ["steps 30 → 50: progressive schedule"]
    assert md.refinement.attempts[1].batch_scores == [6.1, 8.0] and md.parameters.batch_index == 1
    assert md.refinement.error == "ComfyUI refused the workflow: missing node"
    assert GenerationMetadata.from_json(md.to_json()) == md


def test_version_0_document_of_the_original_design_loads() -> None:
    v0 = {
        "timestamp": "2025-03-01T10:00:00Z",
        "generation_id": "gen-0001",
        "input": {"prompt": "a lighthouse at dusk", "negative_prompt": ""},
        "workflow": "flux-dev",
        "parameters": {"seed": 42, "steps": 50, "cfg": 7.5},
        "quality": {
            "composite_score": 7.8,
            "grade": "B",
            "technical": {"score": 8.2, "brisque": 22.1, "niqe": 3.4},
            "aesthetic": {"score": 7.5, "laion_aesthetic": 6.1, "nima_mean": 5.4},
            "prompt_adherence": {"score": 8.0, "clip_score": 0.31},
            "detail": {"score": 7.0, "topiq": 0.62, "edge_density": 0.12},
        },
        "refinement": {"attempts": 2, "strategy": "progressive", "previous_scores": [6.2], "threshold": 7.5},
        "storage": {"url": "http://minio:9000/images/gen-0001.png", "size": 1843200, "format": "png"},
    }
    md = GenerationMetadata.from_dict(v0)
    assert md.schema_version == SCHEMA_VERSION
    assert md.workflow.name == "flux-dev"
    assert (md.refinement.attempts_used, md.refinement.status) == (2, "success")
    assert md.refinement.previous_scores == [6.2] and md.refinement.first_composite() == 6.2
    assert md.storage is not None and (md.storage.size_bytes, md.storage.backend) == (1843200, "s3")
    assert v0["workflow"] == "flux-dev"  # the input is not modified


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"schema_version": 1, "refinement": {"status": "success"}}', "input: Field required"),
        (b'{"schema_version": "one"}', "schema_version must be a non-negative integer"),
    ],
)
def test_invalid_documents_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        GenerationMetadata.from_json(data, source="x/metadata.json")


def test_invalid_field_values_are_rejected() -> None:
    doc = json.loads(make_metadata().to_json())
    doc["quality"]["grade"] = "Z"
    doc["generation_id"] = "../escape"
    with pytest.raises(MetadataError) as err:
        GenerationMetadata.from_dict(doc)
    assert "quality.grade" in str(err.value) and "generation_id" in str(err.value)


def test_checked_in_schema_is_up_to_date() -> None:
    checked_in = (ROOT / "storage" / "metadata.schema.json").read_text(encoding="utf-8")
    assert checked_in == schema_text(), "run: python -m storage schema > storage/metadata.schema.json"
    printed = subprocess.run(
        [sys.executable, "-m", "storage", "schema"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    assert printed == checked_in


def test_schema_validates_documents_and_documents_every_field() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = metadata_json_schema()
    assert set(schema["properties"]) == TOP_LEVEL
    jsonschema.validate(json.loads(make_metadata(attempts=[4.0, None, 8.5]).to_json()), schema)
    bad = json.loads(make_metadata().to_json())
    bad["refinement"]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    ours = [
        "InputInfo",
        "WorkflowInfo",
        "LoraSpec",
        "GenerationParameters",
        "AttemptTimings",
        "AttemptRecord",
    ]
    ours += ["RefinementInfo", "StorageInfo"]
    models = {name: schema["$defs"][name] for name in ours} | {"GenerationMetadata": schema}
    for name, model in models.items():
        undocumented = [f for f, spec in model["properties"].items() if "description" not in spec]
        assert not undocumented, f"{name} fields without description: {undocumented}"
    record = schema["$defs"]["QualityRecord"]["properties"]
    for own in ("partial", "coverage", "device", "versions", "calibration", "seconds"):
        assert "description" in record[own], own
