"""bench/calibration_variants.py, the script behind README's "measured, not shipped" figures: its scoring formula
is the shipped model's, and its counting and pairing helpers do what the figures say (no fitting here)."""

import importlib.util
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from quality.calibration import fit as F
from quality.calibration.evaluate import composite_of
from quality.calibration.fit import Record
from quality.calibration.model import DAMAGE_HEAD, RANKING_HEAD, load_default

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "calibration_variants.py"


@pytest.fixture(scope="module")
def variants():
    spec = importlib.util.spec_from_file_location("calibration_variants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def predictions():
    """Raw predictions spanning the scale: human MOS 0.5–5, severity 0–1.2, ranking -4 to 3."""
    rng = np.random.default_rng(0)
    n = 400
    return {"technical": rng.uniform(0.5, 5.0, n), "detail": rng.uniform(0.5, 5.0, n),
            DAMAGE_HEAD: rng.uniform(0.0, 1.2, n), RANKING_HEAD: rng.uniform(-4.0, 3.0, n)}  # fmt: skip


def test_the_shipped_variant_is_the_models_own_formula(variants, predictions):
    model = load_default()
    got = variants.variant_scores(model, predictions, variants.Variant("shipped"))
    expected = model.scores_of(predictions)
    for dim in ("technical", "detail"):
        np.testing.assert_allclose(got[dim], expected[dim], rtol=0, atol=1e-12)
    for i in range(0, 400, 37):  # the composite is the product's own (technical 0.30, detail 0.20, the rest n/a)
        composite, _ = composite_of({"technical": float(got["technical"][i]), "detail": float(got["detail"][i])})
        assert got["composite"][i] == pytest.approx(composite)


def test_a_variant_changes_only_what_it_names(variants, predictions):
    model = load_default()
    shipped = variants.variant_scores(model, predictions, variants.Variant("shipped"))
    assert model.severity_cap == F.INTEGRITY_CAP
    uncapped = variants.variant_scores(model, predictions, variants.Variant("no cap", cap=math.inf))
    below = predictions[DAMAGE_HEAD] <= F.INTEGRITY_CAP
    assert below.any() and not below.all()
    assert np.array_equal(uncapped["technical"][below], shipped["technical"][below])
    assert (uncapped["technical"][~below] < shipped["technical"][~below]).all()  # a larger penalty above the cap
    slope, at = model.ranking_slope
    at = at if slope else -1.0
    steeper = variants.variant_scores(model, predictions, variants.Variant("slope", slope=slope + 1.0, knee=at))
    knee = predictions[RANKING_HEAD] < at
    assert np.array_equal(steeper["technical"][~knee], shipped["technical"][~knee])
    assert (steeper["technical"][knee] < shipped["technical"][knee]).all()
    # exactly slope points per unit below the knee, where neither score is inside the soft floor or ceiling
    linear = knee & (steeper["technical"] > 1.0) & (shipped["technical"] < 9.0)
    assert linear.sum() > 10
    r = predictions[RANKING_HEAD][linear]
    np.testing.assert_allclose(steeper["technical"][linear], shipped["technical"][linear] + (r - at), atol=1e-9)


def test_falling_counts_strict_steps_of_scored_ladders_only(variants):
    ladders = np.array([[5.0, 4.0, 3.0], [5.0, 5.0, 3.0], [np.nan, 1.0, 0.0], [1.0, 2.0, 0.5]])
    share, strict, total = variants.falling(ladders)
    assert (strict, total) == (1, 3)  # the ladder with a missing score is not counted; a tie does not fall
    assert share == pytest.approx(4 / 6)


def test_group_pairs_are_ordered_within_prompt_and_generator_only(variants):
    recs = [Record("a", "", 4.0, "g1", prompt="cat"), Record("b", "", 3.0, "g1", prompt="cat"),
            Record("c", "", 3.8, "g1", prompt="cat"), Record("d", "", 1.0, "g2", prompt="cat"),
            Record("e", "", 2.0, "g1", prompt="dog")]  # fmt: skip
    better, worse = variants.group_pairs(recs, np.arange(5))
    # a > b and c > b differ by >= 0.5; a vs c (0.2) is too close; d and e have no partner in their group
    assert sorted(zip(better.tolist(), worse.tolist(), strict=True)) == [(0, 1), (2, 1)]
    better, worse = variants.group_pairs(recs, np.array([0, 2, 3, 4]))  # b outside the training part
    assert len(better) == len(worse) == 0


def test_with_penalty_subtracts_exactly_the_points_before_the_floor(variants, predictions):
    model = load_default()
    shipped = model.scores_of(predictions)
    points = np.linspace(0.0, 2.0, len(predictions[RANKING_HEAD]))
    moved = model.scores_of(variants.with_penalty(predictions, model, points))
    inside = (moved["technical"] > 1.0) & (shipped["technical"] < 9.0)  # neither soft floor nor soft ceiling
    assert inside.sum() > 50
    np.testing.assert_allclose(moved["technical"][inside], shipped["technical"][inside] - points[inside], atol=1e-9)
    assert (moved["technical"][points > 0] < shipped["technical"][points > 0]).all()  # the floor keeps order
    same = model.scores_of(variants.with_penalty(predictions, model, np.zeros_like(points)))
    np.testing.assert_allclose(same["detail"], shipped["detail"], atol=1e-12)


def _synthetic_ladders(n_images=12, seed=0):
    """Records whose ladders have two kinds: kind "a" lowers feature 0, kind "b" raises feature 1 (feature 2 is
    noise); each image's clean features differ."""
    from quality.calibration.ladders import Ladders

    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_images):
        clean = rng.normal(0.0, 1.0, 3)
        sev = np.tile(np.array([0.25, 0.5, 0.75, 1.0]), (2, 1))
        feats = np.repeat(np.repeat(clean[None, None, :], 2, axis=0), 4, axis=1).copy()
        feats[0, :, 0] -= 3.0 * sev[0]
        feats[1, :, 1] += 3.0 * sev[1]
        feats[..., 2] += rng.normal(0.0, 0.1, (2, 4))
        lad = Ladders(f"im{i}", ["a", "b"], sev, feats)
        recs.append(Record(f"im{i}", "", 3.0, "g", features={f"f{k}": float(v) for k, v in enumerate(clean)},
                           ladders=lad))  # fmt: skip
    return recs


def test_kind_detectors_order_their_own_kind_and_penalise_beyond_the_threshold(variants):
    recs = _synthetic_ladders()
    rated = np.array([[r.features[f"f{k}"] for k in range(3)] for r in recs])
    det = variants.KindDetectors(recs, np.arange(len(recs)), rated, [], ["a", "b"])
    for i in range(len(recs)):
        for k in range(2):  # each detector falls at every step of its own kind's ladder
            readings = det.readings(np.vstack([rated[i], *recs[i].ladders.features[k]]))[:, k]
            assert (np.diff(readings) < 0).all(), (i, k, readings)
    # the penalty grows where a detector reads below its threshold and is near 0 well above it
    x = np.vstack([rated[0], *recs[0].ladders.features[0]])
    pen = det.penalty(x, ["a"], weight=1.0, quantile=0.5, tau=0.05)
    assert (np.diff(pen) > 0).all()
    high = det.penalty(rated, ["a"], weight=1.0, quantile=0.0, tau=0.05)  # the threshold is the lowest rated image
    assert high.max() < 0.05
    nan = det.readings(np.full((2, 3), np.nan))
    assert np.isnan(nan).all()


def test_natural_human_rows_fall_below_the_pseudo_score_with_severity(variants):
    recs = _synthetic_ladders(n_images=3)
    natural = [(np.array([recs[i].features[f"f{k}"] for k in range(3)]), recs[i].ladders) for i in range(3)]

    class Fixed:  # a model that predicts a human score of 4.0 + the first feature
        @staticmethod
        def predict_mos(x, encodings):
            return {"technical": 4.0 + x[:, 0]}

    x, t = variants.natural_human_rows(Fixed(), natural, floor=0.0)
    assert x.shape == (3 * (1 + 8), 3) and t.shape == (27,)
    for i in range(3):
        block = t[9 * i : 9 * (i + 1)]
        pseudo = 4.0 + natural[i][0][0]
        assert block[0] == pytest.approx(pseudo)  # the clean source: the earlier model's own reading
        for k in range(2):  # every copy below its source and below every weaker copy of its kind
            rungs = block[1:].reshape(2, 4)[k]
            assert (rungs < pseudo).all() and (np.diff(rungs) < 0).all()


def test_a_penalised_model_lowers_the_full_scorers_technical_score_by_its_points(variants, tmp_path):
    """What ``--independent`` scores with: the penalty reaches the scorer's reports through predict_mos alone."""
    import skimage.data
    from PIL import Image

    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    model = load_default()
    im = Image.fromarray(skimage.data.astronaut()).resize((256, 256))  # technical about 5: away from floor and ceiling
    settings = QualitySettings(offline=True, weights_dir=tmp_path, device="cpu", calibration=True)
    plain = Scorer(settings, calibration_model=model).score(im)
    width = len(model.feature_names)
    seen = []

    def penalty(x):
        seen.append(x.shape)
        return np.full(len(x), 0.5)

    penalised = variants.PenalisedModel.of(model, penalty)
    moved = Scorer(settings, calibration_model=penalised).score(im)
    assert seen and all(s == (1, width) for s in seen)  # one row of the model's features per scored image
    before, after = plain.dimension_score("technical"), moved.dimension_score("technical")
    assert before is not None and after is not None
    assert after > 1.0 and before < 9.0  # away from the soft floor and ceiling: exactly the points
    assert after == pytest.approx(before - 0.5, abs=0.02)  # the report rounds to 2 decimals
    x = np.zeros((2, width))
    expected = variants.with_penalty(model.predict_mos(x, {}), model, np.full(2, 0.5))
    np.testing.assert_allclose(penalised.predict_mos(x, {})[RANKING_HEAD], expected[RANKING_HEAD])


def _disc(ridge=False, side=512):
    """A brighter disc on a grey ground with a soft (Gaussian σ 1) edge, levels far from clipping: a natural edge,
    no overshoot; ``ridge``: a bright ring 2–4 px inside the edge (structure on the bright side only)."""
    import cv2

    yy, xx = np.mgrid[:side, :side]
    r2 = (yy - side / 2) ** 2 + (xx - side / 2) ** 2
    disc = np.where(r2 < (side / 4) ** 2, 150.0, 100.0).astype(np.float32)
    if ridge:
        disc[(r2 < (side / 4 - 2) ** 2) & (r2 > (side / 4 - 4) ** 2)] = 190.0
    disc = cv2.GaussianBlur(disc, (0, 0), 1.0)
    return np.repeat(np.clip(np.rint(disc), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_ringing_is_zero_on_natural_edges_and_rises_with_unsharp_masking(variants):
    import cv2

    from quality.analysis import sobel
    from quality.backends.nss_math import luma
    from quality.calibration.features import halo
    from quality.distortions import apply, gaussian_blur

    clean = _disc()
    assert variants.ringing(clean) < 0.005  # a soft edge runs into its plateaus
    rungs = [variants.ringing(apply("oversharpen", clean, s)) for s in (0.25, 0.5, 0.75, 1.0)]
    assert rungs[0] > 0.05 and (np.diff(rungs) > 0).all(), rungs
    sharpened = apply("oversharpen", clean, 0.5)
    assert variants.ringing(gaussian_blur(sharpened, 0.75)) < rungs[1] / 2  # blur takes halos away, never adds one
    # one-sided structure beside an edge: the model's halo feature counts it, the symmetric measure does not
    ridge = _disc(ridge=True)
    y = luma(ridge)
    gx, gy = sobel(y)
    assert halo(y, gx, gy, cv2.cartToPolar(gx, gy)[0]) > 0.1
    assert variants.ringing(ridge) < 0.005
    assert variants.ringing(np.zeros((10, 10, 3), np.uint8)) == 0.0  # too small for the profile: no reading


def test_ringing_penalty_looks_each_row_up_and_subtracts_beyond_the_rated_quantile(variants, predictions):
    model = load_default()
    n = len(predictions[RANKING_HEAD])
    x = np.random.default_rng(1).normal(size=(n, 4))
    ring = np.linspace(0.0, 1.0, n)
    values = variants.RowValues()
    values.add(x, ring)
    np.testing.assert_array_equal(values(x[::-1].reshape(n // 20, 20, 4)), ring[::-1].reshape(n // 20, 20))
    assert np.isnan(values(np.full((1, 4), np.nan))).all()
    with pytest.raises(KeyError):
        values(x[:1] + 1.0)  # a row it was never given is an error, not a silent 0
    rated = ring[:100]  # the fold's rated training images: their median ringing is the threshold
    fold = variants.Fold(np.arange(100), np.arange(100, n), model, {})
    (adjust,) = variants.RingingPenalty(4.0, 0.5, tau=0.02).adjust(values, rated, [fold])
    shipped = model.scores_of(predictions)
    moved = model.scores_of(adjust(model, predictions, x))
    c = float(np.median(rated))
    points = 4.0 * 0.02 * np.logaddexp(0.0, (ring - c) / 0.02)
    inside = (moved["technical"] > 1.0) & (shipped["technical"] < 9.0)
    assert inside.sum() > 50
    np.testing.assert_allclose(moved["technical"][inside], shipped["technical"][inside] - points[inside], atol=1e-9)
    far_below = ring < c - 0.2
    np.testing.assert_allclose(moved["technical"][far_below], shipped["technical"][far_below], atol=1e-3)


def test_an_unknown_kind_for_reversals_is_refused_before_any_work(variants, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        variants.main([str(tmp_path), "--cache", str(tmp_path / "cache"), "--reversals", "blurr"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'blurr'" in err and "resolution_loss" in err
    assert not (tmp_path / "cache").exists()


def test_check_rungs_are_the_image_then_each_kinds_copies_at_working_size(variants, tmp_path):
    from PIL import Image

    from quality.calibration.features import WORKING_SIDE
    from quality.distortions import KINDS, LEVELS

    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 700, 3), dtype=np.uint8)).save(path)
    rungs = list(variants.check_rungs(str(path)))
    assert [(i, k) for i, k, _, _ in rungs] == [(i, k) for i in range(len(KINDS)) for k in range(1 + len(LEVELS))]
    assert all(a.shape == (300, 700, 3) and max(w.shape[:2]) == WORKING_SIDE for _, _, a, w in rungs)
    assert np.array_equal(rungs[0][2], np.asarray(Image.open(path)))
    chosen = list(variants.check_rungs(str(path), ["jpeg"], (0.5,)))
    assert [(i, k) for i, k, _, _ in chosen] == [(0, 0), (0, 1)]
    assert np.array_equal(chosen[1][2], rungs[(1 + len(LEVELS)) * list(KINDS).index("jpeg") + 2][2])  # jpeg at 0.5


def test_the_fits_whole_factor_ladder_reaches_only_the_parts_asked_and_never_the_figures(variants, monkeypatch):
    from quality.calibration.ladders import FIT_KINDS, WHOLE_FACTOR_KIND

    names = ["a", "b"]
    lad = F.Ladders("r0", ["jpeg"], np.array([[0.2, 0.4]]), np.ones((1, 2, 2)))
    whole = F.Ladders("r0", [WHOLE_FACTOR_KIND], np.array([[0.5, 1.0]]), np.full((1, 2, 2), 7.0))
    recs = [
        Record("r0", "r0.png", 3.0, "g", features={"a": 1.0, "b": 2.0}, ladders=lad),
        Record("r1", "r1.png", 2.0, "g", features={"a": 0.0, "b": 1.0}),
    ]
    nat = [(np.zeros(2), F.Ladders("n0", ["jpeg"], np.array([[0.1, 0.9]]), np.zeros((1, 2, 2))))]
    nat_whole = [F.Ladders("n0", [WHOLE_FACTOR_KIND], np.array([[0.5, 1.0]]), np.full((1, 2, 2), 8.0))]
    data = variants.Data(recs, names, nat, np.zeros((1, 1, 3, 2)), np.zeros((1, 1, 3, 2)), [], {"r0": whole}, nat_whole)
    seen: dict[str, list] = {"damage": [], "integrity": [], "ranking": []}

    def kinds_of(rs):
        return [r.ladders.kinds if r.ladders is not None else None for r in rs]

    monkeypatch.setattr(F, "kfold", lambda n, k: [(np.array([0, 1]), np.array([], dtype=np.intp))] * 5)
    monkeypatch.setattr(
        F, "damage_rows", lambda rs, idx, floor, kinds: seen["damage"].append(set(kinds)) or (None, None)
    )
    monkeypatch.setattr(F, "integrity_rows", lambda rs, idx, n: seen["integrity"].append((kinds_of(rs), n)))
    monkeypatch.setattr(F, "ranking_pairs", lambda rs, idx, n: seen["ranking"].append(kinds_of(rs)))

    class Model:
        def predict_mos(self, x, enc):
            return {"technical": np.asarray(x)[:, 0]}

    monkeypatch.setattr(F, "fit_model", lambda *a, **k: Model())
    predicted = []
    monkeypatch.setattr(variants, "predict_grid", lambda m, x: predicted.append(x.shape) or {})
    for whole_mode, ranked, human in (("shipped", True, False), ("all", True, True), ("none", False, False)):
        for key in seen:
            seen[key].clear()
        variants.fit_folds(data, logging.getLogger("test"), whole=whole_mode)
        want = ["jpeg", WHOLE_FACTOR_KIND] if ranked else ["jpeg"]
        assert seen["ranking"] == [[want, None]] * 6
        (kinds, natural), *_ = seen["integrity"]
        assert kinds == [want, None] and natural[0][1].kinds == want
        if ranked:
            assert natural[0][1].features[1].tolist() == np.full((2, 2), 8.0).tolist()
        assert seen["damage"] == [set(FIT_KINDS) if human else set(variants.KINDS)] * 6
    assert recs[0].ladders.kinds == ["jpeg"] and nat[0][1].kinds == ["jpeg"]  # nothing changed in place
    assert all(shape == (1, 1, 3, 2) for shape in predicted)  # figures: the check's ladders only
    with pytest.raises(ValueError, match="shipped, all or none"):
        variants.fit_folds(data, logging.getLogger("test"), whole="some")
