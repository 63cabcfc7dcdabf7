"""The metric registry (quality/specs.py) is the one place a metric or a dimension is defined: every surface that
lists metrics or dimensions is derived from it or checked against it here, and adding a metric takes one spec row
and one backend module (the last test does exactly that, in a copy of the project)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import get_args

import pytest

from quality.backends.base import Backend
from quality.errors import ConfigError
from quality.registry import backend_class, default_backends
from quality.report import SCORE_BLOCKS, QualityBlock
from quality.specs import DIMENSION_SPECS, DIMENSIONS, METRICS, MetricSpec, implementations, metrics_by_backend
from tests.quality.conftest import AGIQA, REPO

ALL_NAMES = {"composite_score", *DIMENSIONS, *METRICS}


def metric_names(dim: str) -> list[str]:
    return [name for name, spec in METRICS.items() if spec.dimension == dim]


def test_every_spec_names_a_backend_class_that_produces_it():
    for name, spec in METRICS.items():
        cls = backend_class(spec.implementation)
        assert issubclass(cls, Backend) and cls.name == spec.backend, name
        assert name in cls().metrics
    assert default_backends() == implementations()
    groups = metrics_by_backend()
    assert sorted(m for names in groups.values() for m in names) == sorted(METRICS)
    assert all(METRICS[m].backend == backend for backend, names in groups.items() for m in names)


def test_a_malformed_or_wrong_implementation_is_a_config_error():
    with pytest.raises(ConfigError, match="module:Class"):
        MetricSpec(name="x", dimension="detail", description="", mapping=METRICS["topiq"].mapping,
                   plausible=(0, 1), implementation="quality.backends.edges.EdgeBackend")  # fmt: skip
    with pytest.raises(ConfigError, match=r"not a quality\.backends\.base\.Backend"):
        backend_class("quality.specs:MetricSpec")
    with pytest.raises(ImportError):
        backend_class("quality.backends.no_such_module:Nothing")


def test_no_backend_restates_its_metrics_or_prompt_needs():
    for path in sorted((REPO / "quality" / "backends").glob("*.py")):
        text = path.read_text()
        assert "prompt_metrics" not in text, path
        assert "\n    metrics = (" not in text, path


def test_report_blocks_and_the_metadata_schema_follow_the_registry():
    assert [f for f in QualityBlock.model_fields if f in DIMENSION_SPECS] == list(DIMENSIONS)
    schema = json.loads((REPO / "storage" / "metadata.schema.json").read_text())["$defs"]
    for dim, spec in DIMENSION_SPECS.items():
        block = SCORE_BLOCKS[dim]
        assert QualityBlock.model_fields[dim].annotation is block
        assert list(block.model_fields) == ["score", *metric_names(dim)]
        assert list(schema[spec.block_name]["properties"]) == ["score", *metric_names(dim)], "python -m storage schema"
        for name in metric_names(dim):
            assert block.model_fields[name].description == METRICS[name].report_description


def test_cli_columns_follow_the_registry():
    from quality.cli import FLAT_COLUMNS, BatchTable

    expected = [col for dim in DIMENSIONS for col in (dim, *metric_names(dim))]
    start = FLAT_COLUMNS.index(DIMENSIONS[0])
    assert FLAT_COLUMNS[start : start + len(expected)] == expected
    assert len(BatchTable.HEADER.split()) == 2 + len(DIMENSIONS) + 2  # grade, score, one per dimension, cover, sec


def test_eval_predictors_follow_the_registry():
    from quality.eval import ALIGN_PREDICTORS, QUALITY_PREDICTORS, WITHIN_GROUP_PREDICTORS

    assert set(QUALITY_PREDICTORS) | set(ALIGN_PREDICTORS) == ALL_NAMES
    assert not set(QUALITY_PREDICTORS) & set(ALIGN_PREDICTORS)
    assert set(ALIGN_PREDICTORS) == {d for d in DIMENSIONS if DIMENSION_SPECS[d].needs_prompt} | {
        n for n, s in METRICS.items() if s.needs_prompt
    }
    assert set(WITHIN_GROUP_PREDICTORS) <= ALL_NAMES


def test_dashboard_mcp_and_index_columns_follow_the_registry():
    from dashboard.views import RAW_METRICS, SCORE_LABELS, SCORES
    from mcp_server.outputs import DIMENSION_LABELS
    from storage.index_query import ScoreField, SortField
    from storage.index_schema import SCORE_COLUMNS
    from storage.metadata import DIMENSION_NAMES

    assert {dim: tuple(metric_names(dim)) for dim in DIMENSIONS} == RAW_METRICS
    assert ("composite", *DIMENSIONS) == SCORES and set(SCORES) <= set(SCORE_LABELS)
    assert list(DIMENSION_LABELS) == list(DIMENSIONS) and DIMENSION_NAMES == DIMENSIONS
    # the index stores one SQL column per dimension: its query types are Literals, checked here
    assert ("composite", *DIMENSIONS) == SCORE_COLUMNS
    assert get_args(ScoreField) == ("composite", *DIMENSIONS, "gain")
    assert set(get_args(SortField)) >= {"composite", *DIMENSIONS}


def test_no_module_writes_the_dimension_tuple_again():
    """The dimensions are listed once (quality/specs.py); everything else imports DIMENSIONS. The exception: the
    index's query Literals (a type checker needs them written out), tied to the registry by the test above."""
    written = ('"technical", "aesthetic", "prompt_adherence", "detail"', "'technical', 'aesthetic'")
    allowed = {REPO / "quality" / "specs.py", REPO / "storage" / "index_query.py"}
    offenders = []
    for package in ("quality", "refinement", "storage", "mcp_server", "dashboard", "jobqueue", "serving"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path in allowed:
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [str(path.relative_to(REPO)) for w in written if w in text]
    assert offenders == []


SPEC_ROW = """        MetricSpec(
            name="dummy_contrast",
            dimension="detail",
            description="Dummy contrast: standard deviation of the luma over 255 (a test metric)",
            mapping=LinearMap(worst=0.0, best=0.25),
            plausible=(0.0, 1.0),
            implementation="quality.backends.dummy:DummyBackend",
            raw_description="raw dummy contrast (0-1)",
        ),
"""

BACKEND_MODULE = '''"""A test metric: luma contrast."""

from __future__ import annotations

import numpy as np

from quality.backends.base import Backend, LoadContext
from quality.image_io import PreparedImage


class DummyBackend(Backend):
    uses_torch = False

    def load(self, ctx: LoadContext) -> None:
        pass

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return {"dummy_contrast": float(np.asarray(image.rgb, np.float64).mean(axis=2).std() / 255.0)}

    def versions(self) -> dict[str, str]:
        return {"dummy_contrast": "dummy/1"}
'''

PROBE = """
import io, json, sys
from pathlib import Path
import numpy as np
from PIL import Image
import quality
from quality.cli import FLAT_COLUMNS, flat_row, main as cli_main, render_table
from quality.eval import QUALITY_PREDICTORS, _values
from quality.scorer import Scorer
from quality.settings import QualitySettings
from dashboard.views import RAW_METRICS, raw_metrics
from storage.metadata import metadata_json_schema

image = sys.argv[1]
scorer = Scorer(QualitySettings(offline=True, weights_dir=Path("no-weights"), device="cpu", calibration=False))
report = scorer.score(image, "a prompt")
rgb = np.asarray(Image.open(image).convert("RGB"), np.float64)
metrics_table = io.StringIO()
cli_main(["metrics"], out=metrics_table)
subset = QualitySettings(metrics="dummy_contrast,brisque", offline=True, weights_dir=Path("no-weights"))
sys.stderr.write("\\n" + json.dumps({
    "package": quality.__file__,
    "expected": rgb.mean(axis=2).std() / 255.0,
    "status": report.metrics["dummy_contrast"].status,
    "score": report.metrics["dummy_contrast"].score,
    "report_block": report.detail.model_dump(),
    "timings": sorted(report.timings),
    "version": report.versions.get("metric:dummy_contrast"),
    "cli_columns": FLAT_COLUMNS,
    "cli_row": flat_row(image, report)["dummy_contrast"],
    "cli_table": render_table(report),
    "metrics_table": metrics_table.getvalue(),
    "eval_predictors": list(QUALITY_PREDICTORS),
    "eval_values": _values(report).get("dummy_contrast"),
    "dashboard_columns": {k: list(v) for k, v in RAW_METRICS.items()},
    "dashboard_values": raw_metrics(report.quality_block())["detail"],
    "schema": list(metadata_json_schema()["$defs"]["DetailScores"]["properties"]),
    "settings_subset": subset.enabled_metrics(),
}))
"""


def test_adding_a_metric_is_one_spec_row_and_one_backend_module(tmp_path):
    """In a copy of the project, add a metric by writing its spec row and its backend module, nothing else: it
    is scored and reaches the report, the CLI's columns and table, the eval predictors, the dashboard's columns,
    the metadata JSON Schema and the settings' metric list."""
    copy = tmp_path / "project"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in sorted(p for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"):
        shutil.copytree(package, copy / package.name, ignore=ignore)
    specs = copy / "quality" / "specs.py"
    text = specs.read_text(encoding="utf-8")
    table_end = text.index("\n    )\n}\n", text.index("METRICS: dict[str, MetricSpec]"))
    specs.write_text(text[: table_end + 1] + SPEC_ROW + text[table_end + 1 :], encoding="utf-8")
    (copy / "quality" / "backends" / "dummy.py").write_text(BACKEND_MODULE, encoding="utf-8")

    image = AGIQA / "DALLE2_normal_001.jpg"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("COMFY_QUALITY_")}
    env["PYTHONPATH"] = str(copy)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(image)], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stderr.strip().splitlines()[-1])

    assert got["package"].startswith(str(copy))
    assert got["status"] == "ok" and got["score"] is not None
    assert got["report_block"]["dummy_contrast"] == pytest.approx(got["expected"], abs=1e-5)
    assert list(got["report_block"]) == ["score", "topiq", "edge_density", "dummy_contrast"]
    assert "dummy" in got["timings"] and got["version"] == "dummy/1"
    assert got["cli_columns"].index("dummy_contrast") == got["cli_columns"].index("edge_density") + 1
    assert got["cli_row"] == got["report_block"]["dummy_contrast"]
    assert "dummy_contrast " in got["cli_table"] and "| `dummy_contrast` | detail |" in got["metrics_table"]
    assert "dummy_contrast" in got["eval_predictors"] and got["eval_values"] == got["report_block"]["dummy_contrast"]
    assert got["dashboard_columns"]["detail"] == ["topiq", "edge_density", "dummy_contrast"]
    assert got["dashboard_values"]["dummy_contrast"] == got["report_block"]["dummy_contrast"]
    assert got["schema"] == ["score", "topiq", "edge_density", "dummy_contrast"]
    assert got["settings_subset"] == ["dummy_contrast", "brisque"]


def test_a_spec_with_an_unknown_dimension_or_a_non_identifier_name_is_refused():
    base = {"description": "", "mapping": METRICS["topiq"].mapping, "plausible": (0.0, 1.0),
            "implementation": "quality.backends.topiq:TopiqBackend"}  # fmt: skip
    with pytest.raises(ConfigError, match="unknown dimension 'sharpness'"):
        MetricSpec(name="x", dimension="sharpness", **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="identifier"):
        MetricSpec(name="edge-density", dimension="detail", **base)
