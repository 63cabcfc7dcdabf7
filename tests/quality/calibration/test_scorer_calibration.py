"""The scorer uses the shipped calibration by default, says so, and falls back to the spec table when it must."""

import itertools

import numpy as np
import pytest
from PIL import Image

from quality.backends.nss import nss_features
from quality.calibration import fit as F
from quality.calibration import load_default
from quality.calibration.features import extract
from quality.errors import ConfigError
from quality.scorer import Scorer
from quality.settings import QualitySettings
from quality.specs import METRICS
from tests.quality.conftest import AGIQA, textured


@pytest.fixture
def settings(tmp_path):
    return QualitySettings(offline=True, weights_dir=tmp_path / "no-weights", device="cpu")


def spec_mean(report, names):
    scores = [(METRICS[n].weight, report.metrics[n].score) for n in names if report.metrics[n].status == "ok"]
    return sum(w * s for w, s in scores) / sum(w for w, _ in scores)


def test_the_shipped_model_loads_and_reproduces_its_fit_time_predictions():
    """Golden values: the fit stored scikit-learn's predictions for a few of its images; the file, the features
    computed now from those images, and the numpy runtime must give them back."""
    model = load_default()
    present = {n: v for n, v in model.meta["check"].items() if (AGIQA / n).exists()}
    assert len(present) >= 2, "tests/data/agiqa should hold some of the model's check images"
    for name, expected in present.items():
        assert F.sha256_file(AGIQA / name) == expected["sha256"]
        _, mos = model.score(F.working_rgb(str(AGIQA / name)))
        heads = {d for d in expected if d != "sha256"}  # the dimensions, the damage head and the ranking term
        assert heads == set(model.dimensions) | {"damage", "ranking"}
        for dim in heads:
            assert mos[dim] == pytest.approx(expected[dim], abs=1e-6), (name, dim)
    assert model.meta["dataset"]["images"] > 1000 and model.meta["cv"]["kfold5"]["composite"] > 0.5


def test_calibrated_by_default_and_the_report_says_which_model(settings):
    model = load_default()
    report = Scorer(settings).score(AGIQA / "midjourney_normal_000.jpg")
    info = report.calibration_info
    assert info is not None and info.enabled and info.used
    assert info.dimensions == {"technical": "calibrated", "detail": "calibrated"}
    assert report.calibration == model.identity() == info.model
    assert info.model_sha256 == model.sha256 and info.features == len(model.feature_names)
    assert info.dataset_labels_sha256 == model.meta["dataset"]["labels_sha256"] and info.seed == model.meta["seed"]
    assert "kfold5" in info.cross_validation
    rgb = np.asarray(Image.open(AGIQA / "midjourney_normal_000.jpg").convert("RGB"))
    expected, _ = model.score(rgb)
    assert report.technical.score == pytest.approx(expected["technical"], abs=1e-4)
    assert report.detail.score == pytest.approx(expected["detail"], abs=1e-4)
    assert report.technical.brisque is not None  # raw values are still reported
    assert "calibration" in report.timings


def test_the_nss_backend_features_are_reused_not_recomputed(settings, monkeypatch):
    import quality.calibration.features as features_module

    calls = []
    real = features_module.nss_features
    monkeypatch.setattr(features_module, "nss_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    report = Scorer(settings).score(AGIQA / "sd1.5_normal_000.jpg")
    assert report.calibration_info.used and calls == []  # 512-px image: the backend's features were reused


def test_a_large_image_is_calibrated_on_its_working_size_copy(settings):
    """... with the JPEG block measures of the image as given (:func:`quality.calibration.features.blockiness`)."""
    big = Image.open(AGIQA / "xl2.2_normal_004.jpg").convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    scorer = Scorer(settings)
    report = scorer.score(big)
    model = load_default()
    prepared = scorer.prepare(big)
    expected, _ = model.score(prepared.fit(model.working_side), source=prepared.rgb)
    assert report.technical.score == pytest.approx(expected["technical"], abs=1e-4)
    assert report.calibration_info.dimensions["detail"] == "calibrated"


def test_disabled_calibration_uses_the_spec_table(settings):
    off = settings.model_copy(update={"calibration": False})
    report = Scorer(off).score(AGIQA / "midjourney_normal_000.jpg")
    assert report.calibration is None and report.calibration_info is None
    assert report.technical.score == pytest.approx(spec_mean(report, ["brisque", "niqe"]), abs=1e-3)
    assert report.detail.score == pytest.approx(report.metrics["edge_density"].score, abs=1e-3)


def test_without_brisque_and_niqe_the_spec_table_is_used_and_the_report_says_why(settings):
    only_edges = settings.model_copy(update={"metrics": ["edge_density"]})
    report = Scorer(only_edges).score(AGIQA / "midjourney_normal_000.jpg")
    info = report.calibration_info
    assert info.enabled and not info.used and report.calibration is None
    assert "brisque" in info.reason and "spec-table" in info.reason
    assert report.detail.score == pytest.approx(report.metrics["edge_density"].score, abs=1e-3)
    assert report.technical.score is None


def test_a_missing_model_falls_back_with_the_reason(settings, monkeypatch):
    import quality.calibration as calibration

    def broken():
        raise ConfigError("the shipped calibration model is missing; reinstall")

    monkeypatch.setattr(calibration, "load_default", broken)
    report = Scorer(settings).score(AGIQA / "midjourney_normal_000.jpg")
    assert not report.calibration_info.used and "missing" in report.calibration_info.reason
    assert report.technical.score == pytest.approx(spec_mean(report, ["brisque", "niqe"]), abs=1e-3)


def test_flat_images_stay_F_without_calibration(settings):
    report = Scorer(settings).score(Image.new("RGB", (256, 256), (10, 10, 10)))
    assert report.grade == "F" and report.calibration_info.reason.startswith("flat")


def test_with_topiq_the_detail_score_mixes_calibrated_and_topiq(tiny_weights, tiny_options, fresh_models):
    scorer = Scorer(QualitySettings(device="cpu"), weights=tiny_weights, options=tiny_options)
    report = scorer.score(textured(3, 256), "a test")
    assert report.metrics["topiq"].status == "ok" and report.calibration_info.dimensions["detail"] == "calibrated"
    rgb = scorer.prepare(textured(3, 256)).rgb
    expected, _ = load_default().score(rgb, nss_features(rgb))
    topiq = report.metrics["topiq"].score
    w_edge, w_topiq = METRICS["edge_density"].weight, METRICS["topiq"].weight
    mixed = (w_edge * expected["detail"] + w_topiq * topiq) / (w_edge + w_topiq)
    assert report.detail.score == pytest.approx(mixed, abs=1e-3)


def test_features_reuse_gives_identical_values():
    rgb = np.asarray(textured(5, 256))
    assert extract(rgb, nss_features(rgb)) == extract(rgb)
    feats = extract(rgb)
    assert len(feats) == len(load_default().feature_names) and all(np.isfinite(v) for v in feats.values())


def test_the_shipped_fit_report_describes_the_shipped_model():
    """quality/data/calibration.report.json is the fit's record: same file hash, data hashes, seed and figures."""
    import json
    from importlib import resources

    model = load_default()
    data = resources.files("quality") / "data"
    report = json.loads((data / "calibration.report.json").read_text())
    on_disk = F.hashlib.sha256((data / "calibration.npz").read_bytes()).hexdigest()
    assert report["model_sha256"] == model.sha256 == on_disk
    assert report["dataset"] == model.meta["dataset"] and report["seed"] == model.meta["seed"]
    assert report["cv"] == model.meta["cv"] and report["feature_names"] == model.feature_names
    # the recorded cross-validated figures (held-out images only) are the ones the README and the issue quote
    kfold = report["cv_details"]["kfold5"]
    assert kfold["agreement"]["composite_score"]["overall"]["srocc"]["value"] == report["cv"]["kfold5"]["composite"]
    assert kfold["checks"]["images"] == report["dataset"]["images"]


def test_the_shipped_models_technical_score_falls_with_every_kind_of_damage():
    """A regression guard on one rated image (README: 93–96 % of steps fall on unseen photos and AI images)."""
    from quality import distortions as D
    from quality.image_io import load_image

    model = load_default()
    rgb = load_image(str(AGIQA / "DALLE2_normal_001.jpg")).fit(model.working_side)
    for kind in D.KINDS:
        scores = [model.score(r)[0]["technical"] for r in D.ladder(kind, rgb)]
        assert all(b < a for a, b in itertools.pairwise(scores)), (kind, scores)
        assert scores[-1] < 3.0, (kind, scores)  # the heaviest copy is graded F on its technical score
