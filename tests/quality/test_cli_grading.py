"""The CLI table, CSV and exit codes for an image that is not graded, and for one under the minimum size."""

import csv

import numpy as np
from PIL import Image

from quality.cli import EXIT_BELOW, EXIT_IMAGE, EXIT_OK
from tests.quality.cli_helpers import offline, run  # noqa: F401 (offline: autouse fixture)


def noise(path, size=64, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_table_says_not_graded_with_the_reasons(tmp_path):
    image = noise(tmp_path / "noise.png")
    code, text = run(image, "a cat", "--metrics", "edge_density")
    assert code == EXIT_OK
    composite = next(line for line in text.splitlines() if line.strip().startswith("composite"))
    assert "NOT GRADED: technical not scored (brisque, niqe: disabled by settings" in composite
    assert "coverage 20% < 50% of the applicable weight" in composite
    assert "is not a grade" in text and " grade " not in composite


def test_not_graded_never_passes_min_grade_or_min_score(tmp_path):
    image = noise(tmp_path / "noise.png")
    assert run(image, "--metrics", "edge_density", "--min-grade", "F")[0] == EXIT_BELOW
    assert run(image, "--metrics", "edge_density", "--min-score", "0")[0] == EXIT_BELOW
    assert run(image, "--min-grade", "F")[0] == EXIT_OK  # all metrics: technical scored via NIQE's copy


def test_csv_leaves_composite_empty_and_says_why(tmp_path):
    noise(tmp_path / "a.png", seed=1)
    noise(tmp_path / "b.png", seed=2)
    out = tmp_path / "scores.csv"
    code, _ = run(str(tmp_path / "*.png"), "--metrics", "edge_density", "-o", str(out), "-q")
    rows = list(csv.DictReader(out.open()))
    assert code == EXIT_OK and len(rows) == 2
    for row in rows:
        assert row["grade"] == "" and row["composite_score"] == "" and row["grade_status"] == "insufficient"
        assert float(row["ungraded_composite"]) >= 0 and row["grade_reasons"].startswith("technical not scored")


def test_an_image_under_the_minimum_exits_3_naming_its_size(tmp_path, capsys):
    image = noise(tmp_path / "tiny.png", size=20)
    code, _ = run(image)
    assert code == EXIT_IMAGE
    assert "20×20 px, smaller than the 32 px minimum" in capsys.readouterr().err
