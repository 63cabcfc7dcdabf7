"""``python -m quality eval DIR --cv K --cv logo`` on the small test folder."""

import json

import pytest

from quality.eval import main
from tests.quality.conftest import AGIQA


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFY_QUALITY_OFFLINE", "1")
    monkeypatch.setenv("COMFY_QUALITY_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COMFY_QUALITY_DEVICE", "cpu")


def test_eval_cv_reports_out_of_fold_tables_checks_and_plots(tmp_path, capsys, small_codebooks):
    out = tmp_path / "out"
    code = main([str(AGIQA), "-o", str(out), "--cv", "2", "--cv", "logo", "--bootstrap", "20",
                 "--plcc-bootstrap", "0", "-q"])  # fmt: skip
    assert code == 0
    data = json.loads((out / "eval.json").read_text())
    cv = data["cross_validation"]
    assert set(cv) == {"kfold2", "logo"}
    assert cv["kfold2"]["folds"]["fit_images_per_fold"] == [5, 5]
    assert len(cv["logo"]["folds"]["held_out_groups"]) == 6  # six generators, one held out per fold
    for scheme in cv.values():
        overall = scheme["agreement"]["mos_quality"]["composite_score"]["overall"]
        assert overall["n"] == 10 and -1 <= overall["srocc"]["value"] <= 1
        assert "per_grade" in scheme["checks"] and "false_positives" in scheme["checks"]
    scored = {json.loads(line)["name"]: json.loads(line) for line in (out / "scores.jsonl").open()}
    cv_rows = {json.loads(line)["name"]: json.loads(line) for line in (out / "cv_logo.jsonl").open()}
    assert scored.keys() == cv_rows.keys()
    # raw metrics are the scorer's; the calibrated dimensions are the held-out model's
    name = "midjourney_normal_000.jpg"
    assert cv_rows[name]["values"]["brisque"] == scored[name]["values"]["brisque"]
    assert cv_rows[name]["values"]["technical"] != scored[name]["values"]["technical"]
    for suffix in ("_kfold2", "_logo"):
        assert (out / f"composite_vs_mos{suffix}.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "cross-validated calibration: logo" in text and "cross-validated calibration: kfold2" in text


def test_eval_cv_rejects_a_bad_scheme(tmp_path, capsys):
    assert main([str(AGIQA), "-o", str(tmp_path), "--cv", "one"]) == 2
    assert "--cv" in capsys.readouterr().err
