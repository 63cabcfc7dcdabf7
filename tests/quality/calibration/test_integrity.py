"""The damage-integrity head: its training rows, how it enters the scores, and what the shipped model does with
damage on images the tests make (ladders fall strictly for technical and composite; heavy damage costs >= 5)."""

import io
import itertools
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from quality import distortions as D
from quality.calibration import damage as DM
from quality.calibration import fit as F
from quality.calibration.model import DAMAGE_HEAD, from_bytes, load_default
from quality.calibration.runtime import Scale
from quality.composite import CompositeConfig, combine

KINDS = ["gaussian_blur", "gaussian_noise", "jpeg"]
AGIQA = Path(__file__).resolve().parents[2] / "data" / "agiqa"


def scene(size: int = 384, seed: int = 0) -> np.ndarray:
    """A sharp, clean, photo-like test image: 1/f texture under smooth shading, hard-edged shapes, fine lines."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size)
    tex = np.stack([np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.uniform(size=(size, size)))))
                    for _ in range(3)], -1)  # fmt: skip
    tex = (tex - tex.mean()) / tex.std()
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([60 + 120 * xx, 70 + 100 * yy, 150 - 80 * xx], -1) + 28 * tex
    for _ in range(10):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.04, 0.14)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img[mask] = rng.uniform(20, 235, 3) + 18 * tex[mask]
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(6):
        cv2.line(out, (int(rng.integers(0, size)), 0), (int(rng.integers(0, size)), size - 1),
                 tuple(int(v) for v in rng.integers(0, 255, 3)), 1, cv2.LINE_AA)  # fmt: skip
    return out


def composite(scores: dict[str, float]) -> float:
    """The composite of the calibrated dimensions as the scorer gives it offline (no aesthetic, no prompt)."""
    dims = {"technical": scores["technical"], "detail": scores["detail"], "aesthetic": None, "prompt_adherence": None}
    return combine(dims, CompositeConfig(), not_applicable=frozenset({"prompt_adherence"})).composite_score  # type: ignore[arg-type]


def test_integrity_rows_put_clean_sources_at_zero_and_copies_at_their_severity(synthetic_records):
    records = [F.Record(r.name, r.path, r.mos, r.group, features=dict(r.features or {})) for r in synthetic_records]
    F.attach_ladders(records, [r.name for r in records[:3]], kinds=KINDS)
    x, t = F.integrity_rows(records, range(len(records)))
    per_image = 1 + len(KINDS) * 4
    assert len(x) == len(t) <= 3 * per_image and x.shape[1] == len(records[0].features)
    assert t[0] == 0.0 and np.all(np.diff(t[1:5]) > 0) and np.all((t > 0)[1:per_image])
    lad = records[0].ladders
    assert lad is not None
    natural = [(x[0] + 1.0, lad)]  # a natural-photo source: its clean row at 0, its copies at their severities
    x2, t2 = F.integrity_rows(records, range(len(records)), natural)
    assert len(t2) == len(t) + per_image and t2[len(t)] == 0.0 and np.array_equal(x2[len(t)], x[0] + 1.0)
    np.testing.assert_array_equal(t2[len(t) + 1 :], lad.severity.reshape(-1))
    assert len(F.integrity_rows(records, [10, 11])[1]) == 0  # images without ladders give no rows


def test_ordered_pairs_are_every_pair_within_a_ladder_in_damage_order():
    from quality.calibration.ladders import Ladders

    feats = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3) + 10.0
    feats[1, 2] = np.nan  # undefined features: that copy is skipped
    lad = Ladders("x", ["a", "b"], np.tile([0.25, 0.5, 0.75, 1.0], (2, 1)), feats)
    clean = np.zeros(3)
    better, worse = DM.ordered_pairs([(clean, lad)])
    assert len(better) == len(worse) == 10 + 6  # C(5, 2) for the full ladder, C(4, 2) without the undefined copy
    # kind "a": the source above all four copies, each copy above every later one
    assert np.array_equal(better[:4], np.zeros((4, 3))) and np.array_equal(worse[:4], feats[0])
    assert np.array_equal(better[4], feats[0, 0]) and np.array_equal(worse[4], feats[0, 1])
    skipped = feats[1, 2]
    assert not any(np.array_equal(w, skipped) or np.array_equal(b, skipped) for b, w in zip(better, worse, strict=True))
    assert all(np.all(np.isfinite(v)) for v in (*better, *worse))
    empty = DM.ordered_pairs([])
    assert len(empty[0]) == 0


def test_a_fitted_ranker_orders_the_pairs_it_learned_and_is_standardised_on_the_rated_images():
    rng = np.random.default_rng(0)
    rated = rng.normal(size=(200, 4))
    # damage lowers feature 0 and raises feature 1 (noise elsewhere): the ranker must find that direction
    better = rng.normal(size=(300, 4))
    worse = better + np.column_stack([-rng.uniform(0.2, 1, 300), rng.uniform(0.2, 1, 300),
                                      rng.normal(0, 0.3, (300, 2))])  # fmt: skip
    ranker = F.fit_ranker(rated, better, worse)
    assert np.mean(ranker.predict(better) > ranker.predict(worse)) > 0.95
    r = ranker.predict(rated)
    assert abs(r.mean()) < 1e-9 and abs(r.std() - 1.0) < 1e-9
    # unbounded: damage far beyond any seen keeps lowering it
    far = np.array([[-20.0, 20.0, 0.0, 0.0], [-40.0, 40.0, 0.0, 0.0]])
    assert ranker.predict(far)[1] < ranker.predict(far)[0] < r.min()


def test_scores_combine_the_human_part_and_the_damage_penalty():
    """score = soft_floor(scale(MOS) - 10·w·max(0, severity - t)), at most 10; no head: the human part alone."""
    from quality.calibration.model import CalibrationModel, soft_floor

    scale = Scale((0.0, 4.0), (0.0, 10.0))
    with_head = CalibrationModel({"integrity": {"weight": 0.5, "threshold": 0.5}}, {}, (), scale)
    pred = {"technical": np.array([2.0, 2.0, 4.0, 2.0]), DAMAGE_HEAD: np.array([0.0, 1.0, 0.2, 0.6])}
    out = with_head.scores_of(pred)
    assert set(out) == {"technical"}
    np.testing.assert_allclose(out["technical"], [5.0, 2.5, 10.0, 4.5])
    plain = CalibrationModel({}, {}, (), scale)
    np.testing.assert_allclose(plain.scores_of(pred)["technical"], [5.0, 5.0, 10.0, 5.0])
    heavy = CalibrationModel({"integrity": {"weight": 2.0, "threshold": 0.0}}, {}, (), scale)
    low = heavy.scores_of({"technical": np.full(3, 2.0), DAMAGE_HEAD: np.array([0.5, 0.7, 0.9])})["technical"]
    assert np.all(low > 0) and np.all(np.diff(low) < 0)  # below 1 the scores stay distinct and ordered
    v = np.linspace(-5, 3, 50)
    assert np.all(np.diff(soft_floor(v)) > 0) and soft_floor(np.array([1.0]))[0] == 1.0


def test_the_ranking_term_moves_every_score_and_keeps_it_strictly_ordered_inside_0_10():
    """v = scale(MOS) - penalty + r·gain(ranking); score = soft_floor(soft_ceiling(v)): strictly increasing in the
    ranking, above 0 and below 10 however far it goes; gain is the identity below 0 and log(1 + ranking) above."""
    from quality.calibration.model import RANKING_HEAD, CalibrationModel, soft_ceiling

    scale = Scale((0.0, 4.0), (0.0, 10.0))
    model = CalibrationModel({"ranking": {"weight": 0.5}, "integrity": {"weight": 0.5, "threshold": 0.5}}, {}, (),
                             scale)  # fmt: skip
    assert model.ranking == 0.5
    ranking = np.linspace(-40.0, 40.0, 81)
    pred = {"technical": np.full(81, 2.0), DAMAGE_HEAD: np.zeros(81), RANKING_HEAD: ranking}
    out = model.scores_of(pred)["technical"]
    assert set(model.scores_of(pred)) == {"technical"}
    assert np.all(np.diff(out) > 0) and np.all(out > 0) and np.all(out < 10)
    np.testing.assert_allclose(out[40], 5.0)  # ranking 0: the human-aligned part
    np.testing.assert_allclose(out[38], 4.0)  # -2 units: -1 point
    np.testing.assert_allclose(out[42], 5.0 + 0.5 * np.log(3.0))  # +2 units: compressed to +0.55 points
    pred[DAMAGE_HEAD] = np.full(81, 0.7)  # the damage penalty still applies: 10 · 0.5 · 0.2 = 1 point
    np.testing.assert_allclose(model.scores_of(pred)["technical"][40], 4.0)
    v = np.linspace(5, 30, 60)
    assert np.all(np.diff(soft_ceiling(v)) > 0) and np.all(soft_ceiling(v) < 10)
    assert soft_ceiling(np.array([9.0]))[0] == 9


def test_below_the_knee_each_unit_of_the_ranking_term_costs_slope_points_more():
    """v += weight·gain(r) + slope·min(0, r - knee): unchanged above the knee, steeper below it, still strictly
    increasing in the ranking; a model without a slope (fitted before it) scores as before."""
    from quality.calibration.model import RANKING_HEAD, CalibrationModel

    scale = Scale((0.0, 4.0), (0.0, 10.0))
    ranking = np.linspace(-6.0, 3.0, 91)
    pred = {"technical": np.full(91, 3.0), RANKING_HEAD: ranking}
    plain = CalibrationModel({"ranking": {"weight": 0.5}}, {}, (), scale)
    sloped = CalibrationModel({"ranking": {"weight": 0.5, "slope": 0.75, "knee": -1.0}}, {}, (), scale)
    assert plain.ranking_slope == (0.0, 0.0) and sloped.ranking_slope == (0.75, -1.0)
    a, b = plain.scores_of(pred)["technical"], sloped.scores_of(pred)["technical"]
    above = ranking >= -1.0
    np.testing.assert_allclose(b[above], a[above])
    assert np.all(b[~above] < a[~above]) and np.all(np.diff(b) > 0)
    at = int(np.argmin(np.abs(ranking + 2.0)))  # r = -2: 7.5 - 1 - 0.75 = 5.75 points
    np.testing.assert_allclose(b[at], 7.5 - 1.0 - 0.75)


def test_natural_sources_are_never_the_ladder_check_photos():
    sources = DM.natural_sources()
    assert sources and not DM.TEST_PHOTOS & set(sources)
    name, rgb = next(iter(sources.items()))
    kinds = [vn for vn, _ in DM.variants(name, rgb)]
    assert len(kinds) == 6 and len(set(kinds)) == 6
    again = [v for _, v in DM.variants(name, rgb)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(DM.variants(name, rgb), again, strict=True))


def test_a_fit_with_a_damage_head_ranks_damaged_copies_above_their_originals(synthetic_records, small_codebooks):
    records = [F.Record(r.name, r.path, r.mos, r.group, features=dict(r.features or {})) for r in synthetic_records]
    F.attach_ladders(records, [r.name for r in records[:4]], kinds=KINDS)
    names = list(records[0].features)
    base = F.base_matrix(records, names)
    mos = np.array([r.mos for r in records])
    model = F.fit_model(base, {}, mos, {}, meta={"name": "t", "feature_names": names, "dimensions": F.DIMENSIONS},
                        damage=F.damage_rows(records, range(len(records)), F.damage_floor(mos)),
                        integrity=F.integrity_rows(records, range(len(records))))  # fmt: skip
    assert model.integrity == (F.INTEGRITY_WEIGHT, F.INTEGRITY_THRESHOLD)
    assert sum(m.dimension == DAMAGE_HEAD for m in model.members) == 2
    assert model.ranking is None  # no ranking pairs given: no ranking term
    lad = records[0].ladders
    assert lad is not None
    heavy = lad.features[:, -1]
    sev_clean = model.predict_mos(base[:1], {})[DAMAGE_HEAD][0]
    sev_heavy = model.predict_mos(heavy, {})[DAMAGE_HEAD]
    assert np.all(sev_heavy > sev_clean + 0.3)
    loaded = from_bytes(model.to_bytes())
    assert loaded.integrity == model.integrity
    for dim, v in model.scores_of(model.predict_mos(base, {})).items():
        np.testing.assert_allclose(loaded.scores_of(loaded.predict_mos(base, {}))[dim], v, atol=1e-6)


def test_a_fit_with_ranking_pairs_adds_a_ranking_term_that_ranks_copies_below_originals(synthetic_records,
                                                                                     small_codebooks):  # fmt: skip
    from quality.calibration.model import RANKING_HEAD

    records = [F.Record(r.name, r.path, r.mos, r.group, features=dict(r.features or {})) for r in synthetic_records]
    F.attach_ladders(records, [r.name for r in records[:4]], kinds=KINDS)
    names = list(records[0].features)
    base = F.base_matrix(records, names)
    mos = np.array([r.mos for r in records])
    better, worse = F.ranking_pairs(records, range(len(records)))
    assert len(better) == 4 * len(KINDS) * 10  # C(5, 2) ordered pairs per ladder
    model = F.fit_model(base, {}, mos, {}, meta={"name": "t", "feature_names": names, "dimensions": F.DIMENSIONS},
                        ranking=(better, worse), check={records[0].name: 0})  # fmt: skip
    assert model.ranking == F.RANKING_WEIGHT and model.integrity is None
    assert [m.kind for m in model.members if m.dimension == RANKING_HEAD] == ["ranker"]
    rank = {m.dimension: m for m in model.members}[RANKING_HEAD].predictor
    assert np.mean(rank.predict(better) > rank.predict(worse)) > 0.9
    assert RANKING_HEAD in model.meta["check"][records[0].name]
    lad = records[0].ladders
    assert lad is not None
    clean = model.scores_of(model.predict_mos(base[:1], {}))
    heavy = model.scores_of(model.predict_mos(lad.features[:, -1], {}))
    assert set(clean) == {"technical", "detail"}
    assert all(np.all(heavy[d] < clean[d][0]) for d in clean)
    loaded = from_bytes(model.to_bytes())
    assert loaded.ranking == model.ranking
    for dim, v in model.scores_of(model.predict_mos(base, {})).items():
        np.testing.assert_allclose(loaded.scores_of(loaded.predict_mos(base, {}))[dim], v, atol=1e-9)


def test_a_model_file_with_a_member_of_unknown_kind_is_refused_with_its_name():
    from quality.calibration.model import CalibrationModel
    from quality.errors import ConfigError

    raw = CalibrationModel({"name": "t", "feature_names": ["a"], "dimensions": {}}, {}, (),
                           Scale((0.0, 1.0), (0.0, 10.0)))  # fmt: skip
    data = raw.to_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "meta.npy":
                meta = json.loads(str(np.load(io.BytesIO(body)).item()))
                meta["members"] = [{"dimension": "technical", "kind": "forest", "codebook": ""}]
                out = io.BytesIO()
                np.save(out, np.array(json.dumps(meta)))
                body = out.getvalue()
            dst.writestr(item, body)
    with pytest.raises(ConfigError, match="unknown kind 'forest'"):
        from_bytes(buf.getvalue(), "bad.npz")


@pytest.fixture(scope="module")
def shipped():
    return load_default()


def test_the_shipped_model_has_a_damage_head_and_a_ranking_term(shipped):
    from quality.calibration.model import RANKING_HEAD

    assert shipped.integrity is not None and shipped.ranking == F.RANKING_WEIGHT
    assert any(m.dimension == DAMAGE_HEAD for m in shipped.members)
    assert [m.kind for m in shipped.members if m.dimension == RANKING_HEAD] == ["ranker"]
    assert set(shipped.dimensions) == {"technical", "detail"}


def ladder_scores(model, rgb, kind):
    scores = [model.score(r)[0] for r in D.ladder(kind, rgb)]
    return [s["technical"] for s in scores], [composite(s) for s in scores]


def rated(name: str) -> np.ndarray:
    from quality.image_io import load_image

    return load_image(str(AGIQA / name)).fit(512)


@pytest.mark.parametrize("name", ["DALLE2_normal_001.jpg", "sd1.5_highcorr_000.jpg", "sd1.5_lowstep_001.jpg"])
def test_the_shipped_models_technical_score_and_composite_fall_strictly_on_rated_images(shipped, name):
    """Regression guard on three rated test images: every kind, the ladder check's four severities, strictly
    falling technical score and composite, heaviest copy below composite 5.0 (README: not yet every image)."""
    rgb = rated(name)
    for kind in D.KINDS:
        tech, comp = ladder_scores(shipped, rgb, kind)
        assert all(b < a for a, b in itertools.pairwise(tech)), (kind, tech)
        assert all(b < a for a, b in itertools.pairwise(comp)), (kind, comp)
        assert comp[-1] < 5.0, (kind, comp)


#: README, agreement section ("Not reached"): the shipped model scores this scene's heaviest WebP copy above the
#: scene (0.84 against 0.39; the previous model 1.06 against 1.01); no photo or held-out AI ladder does this
_WEBP_ABOVE = pytest.mark.xfail(strict=True, reason="not reached: the heaviest WebP copy of this scene scores above "
                                "the scene (README, agreement section)")  # fmt: skip


@pytest.mark.parametrize("kind", [pytest.param(k, marks=_WEBP_ABOVE) if k == "webp" else k for k in D.KINDS])
def test_on_a_synthetic_scene_every_kinds_heaviest_copy_scores_below_the_original(shipped, kind):
    tech, comp = ladder_scores(shipped, scene(), kind)
    assert tech[-1] < tech[0] and comp[-1] < comp[0] and comp[-1] < 5.0, (kind, tech, comp)


@pytest.mark.xfail(reason="not reached (README, agreement section): on this synthetic scene, which the model scores "
                   "low (about 0.4), light damage raises the score for several kinds", strict=False)
def test_on_a_synthetic_scene_every_ladder_falls_strictly(shipped):
    rgb = scene()
    for kind in D.KINDS:
        tech, comp = ladder_scores(shipped, rgb, kind)
        assert all(b < a for a, b in itertools.pairwise(tech)), (kind, tech)
        assert all(b < a for a, b in itertools.pairwise(comp)), (kind, comp)


def heavy_copies(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Issue 10's heavy damage: blur σ 4 at 512 px, noise σ 50, JPEG quality 5, 4× resolution loss."""
    f = rgb.astype(np.float32)
    h, w = rgb.shape[:2]
    return {
        "blur": cv2.GaussianBlur(rgb, (0, 0), 4.0 * max(h, w) / 512),
        "noise": np.clip(f + np.random.default_rng(1).normal(0, 50, f.shape), 0, 255).astype(np.uint8),
        "jpeg": cv2.imdecode(cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 5])[1], cv2.IMREAD_COLOR),
        "resolution": cv2.resize(cv2.resize(rgb, (w // 4, h // 4), interpolation=cv2.INTER_AREA), (w, h),
                                 interpolation=cv2.INTER_CUBIC),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["midjourney_normal_000.jpg", "sd1.5_highcorr_000.jpg"])
def test_heavy_damage_costs_a_well_rated_image_at_least_five_points(shipped, name):
    rgb = rated(name)
    clean = shipped.score(rgb)[0]["technical"]
    for kind, img in heavy_copies(rgb).items():
        scores = shipped.score(np.ascontiguousarray(img))[0]
        assert clean - scores["technical"] >= 5.0, (kind, clean, scores["technical"])
        assert composite(scores) < 5.0, (kind, scores)


def test_heavy_damage_never_keeps_composite_five_on_a_synthetic_scene(shipped):
    for kind, img in heavy_copies(scene(512, seed=3)).items():
        scores = shipped.score(np.ascontiguousarray(img))[0]
        assert composite(scores) < 5.0, (kind, scores)


def test_the_damage_heads_severity_is_capped_before_the_penalty(shipped):
    import dataclasses

    from quality.calibration.model import RANKING_HEAD

    assert shipped.severity_cap == F.INTEGRITY_CAP
    assert shipped.meta["integrity"]["cap"] == F.INTEGRITY_CAP
    severity = np.array([0.2, 0.6, 0.8, F.INTEGRITY_CAP, 0.95, 1.2])
    pred = {"technical": np.full(6, 3.0), "detail": np.full(6, 3.0), DAMAGE_HEAD: severity,
            RANKING_HEAD: np.full(6, -0.5)}  # fmt: skip
    tech = shipped.scores_of(pred)["technical"]
    assert tech[0] > tech[1] > tech[2] > tech[3]  # up to the cap every bit of severity beyond the threshold costs
    assert tech[3] == tech[4] == tech[5]  # above it the head's reading changes nothing
    # a model file without a cap (fitted before it) keeps the uncapped formula
    meta = {**shipped.meta, "integrity": {k: v for k, v in shipped.meta["integrity"].items() if k != "cap"}}
    older = dataclasses.replace(shipped, meta=meta)
    assert older.severity_cap is None
    old = older.scores_of(pred)["technical"]
    assert np.array_equal(old[:4], tech[:4]) and old[3] > old[4] > old[5]
