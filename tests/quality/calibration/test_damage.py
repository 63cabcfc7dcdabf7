"""Damage ladders in the calibration fit: targets below the original, cached features, the scale's bottom."""

import json

import numpy as np
import pytest

from quality.calibration import fit as F
from quality.calibration import ladders as L
from quality.calibration.model import from_bytes

#: a few kinds keep the tests fast (the fit uses all of quality.distortions.KINDS)
KINDS = ["gaussian_blur", "gaussian_noise", "jpeg"]


@pytest.fixture(scope="module")
def with_ladders(synthetic_records):
    records = [F.Record(r.name, r.path, r.mos, r.group, features=dict(r.features or {})) for r in synthetic_records]
    F.attach_ladders(records, [r.name for r in records[:4]], kinds=KINDS)
    return records


def test_severities_rise_strictly_and_are_reproducible():
    a = L.severities("x.png", ["jpeg", "gaussian_blur"])
    assert a.shape == (2, L.STEPS) and np.all(np.diff(a, axis=1) > 0) and a.min() > 0 and a.max() <= 1
    assert np.array_equal(a, L.severities("x.png", ["jpeg", "gaussian_blur"]))
    assert not np.array_equal(a, L.severities("y.png", ["jpeg", "gaussian_blur"]))


def test_a_ladders_noise_comes_from_the_images_own_seed(monkeypatch):
    from quality.distortions import apply

    rgb = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    seen = []
    monkeypatch.setattr(L, "extract", lambda a: seen.append(a) or {"f": float(a.mean())})
    lad = L.compute("x.png", rgb, ["f"], kinds=["gaussian_noise"])
    want = [apply("gaussian_noise", rgb, float(s), L.image_seed("x.png")) for s in lad.severity[0]]
    assert all(np.array_equal(a, b) for a, b in zip(seen, want, strict=True))
    assert L.image_seed("x.png") == L.image_seed("x.png") != L.image_seed("y.png")


def test_damaged_rows_get_targets_below_their_original_falling_with_severity(with_ladders):
    records = with_ladders
    mos = np.array([r.mos for r in records])
    floor = F.damage_floor(mos)
    assert floor == pytest.approx(mos.min() - F.DAMAGE_FLOOR_MARGIN)
    x, t = F.damage_rows(records, range(len(records)), floor)
    lad = records[0].ladders
    assert lad is not None and lad.features.shape[:2] == (len(lad.kinds), L.STEPS)
    assert len(x) == len(t) == sum(int(np.isfinite(r.ladders.features).all(axis=2).sum()) for r in records[:4])
    first = t[: L.STEPS]  # the first kind of the first image, in severity order
    assert np.all(first < records[0].mos) and np.all(np.diff(first) < 0) and np.all(first > floor)
    _, t_none = F.damage_rows(records, [10, 11], floor)  # images without ladders give no rows
    assert len(t_none) == 0


def test_a_fit_with_damage_scores_damaged_copies_below_their_originals(with_ladders, small_codebooks):
    records = with_ladders
    names = list(records[0].features)
    base = F.base_matrix(records, names)
    mos = np.array([r.mos for r in records])
    damage = F.damage_rows(records, range(len(records)), F.damage_floor(mos))
    model = F.fit_model(base, {}, mos, {}, meta={"name": "t", "feature_names": names, "dimensions": F.DIMENSIONS},
                        damage=damage)  # fmt: skip
    assert model.scale.mos[0] == pytest.approx(F.damage_floor(mos) - F.SCALE_BOTTOM_MARGIN)
    assert model.scale.score[0] == 0.0
    lad = records[0].ladders
    heavy = lad.features[:, -1]  # every kind at its heaviest
    pred_clean = model.predict_mos(base[:1], {})["technical"][0]
    pred_heavy = model.predict_mos(heavy[np.isfinite(heavy).all(axis=1)], {})["technical"]
    assert np.mean(pred_heavy) < pred_clean - 0.5
    # detail members read a subset of the features, kept through the file
    detail = [m for m in model.members if m.dimension == "detail"]
    assert detail and all(m.inputs and set(m.inputs) < set(names) for m in detail)
    # the re-encoding features: read by the ranking term only (no ranking pairs here, so no member reads them)
    technical = [m for m in model.members if m.dimension == "technical"]
    assert technical and all(m.inputs and not any(n.startswith("enc_") for n in m.inputs) for m in technical)
    assert any(n.startswith("enc_") for n in names) and {n for m in technical for n in m.inputs} < set(names)
    loaded = from_bytes(model.to_bytes())
    assert [m.inputs for m in loaded.members] == [m.inputs for m in model.members]
    for dim, pred in model.predict_mos(base, {}).items():
        np.testing.assert_allclose(loaded.predict_mos(base, {})[dim], pred, atol=1e-6)


def test_features_and_ladders_are_cached_and_reused(synthetic_folder, tmp_path, monkeypatch):
    from quality.eval import load_dataset

    samples = load_dataset(synthetic_folder)[:3]
    records = [F.Record(s.name, str(s.path), s.mos_quality, s.generator) for s in samples]
    first = F.prepare_records(records, cache=tmp_path)
    store = json.loads((tmp_path / "features.json").read_text())
    assert len(store) == 3 and all(k.startswith(F.FEATURES_VERSION) for k in store)
    F.attach_ladders(first, [first[0].name], cache=tmp_path, kinds=KINDS)
    assert len(list((tmp_path / "ladders").glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(F, "extract", boom)
    monkeypatch.setattr(F, "compute_ladders", boom)
    again = F.prepare_records([F.Record(s.name, str(s.path), s.mos_quality, s.generator) for s in samples],
                              cache=tmp_path)  # fmt: skip
    assert [r.features for r in again] == [r.features for r in first]
    F.attach_ladders(again, [again[0].name], cache=tmp_path, kinds=KINDS)
    assert again[0].ladders is not None
    np.testing.assert_array_equal(again[0].ladders.features, first[0].ladders.features)


def test_held_out_and_ladder_images_are_balanced_and_disjoint(synthetic_records):
    held = F.holdout_names(synthetic_records, 3)
    assert len(held) == 3 and len({n.split("_")[0] for n in held}) == 3  # one per generator
    rest = [r for r in synthetic_records if r.name not in held]
    lad = F.ladder_names(rest, 6)
    assert len(lad) == 6 and not set(lad) & set(held)
    assert F.holdout_names(synthetic_records, 3) == held and F.holdout_names(synthetic_records, 0) == []


def test_the_whole_factor_ladder_sits_at_whole_factors_and_leaves_the_other_draws_alone():
    from quality.distortions import KINDS as CHECK

    with_whole = L.severities("x.png", L.FIT_KINDS)
    assert np.array_equal(with_whole[:-1], L.severities("x.png", list(CHECK)))  # the check's kinds draw as before
    factors = [CHECK["resolution_loss"].values(float(s)) for s in with_whole[-1]]
    assert np.allclose(factors, L.WHOLE_FACTORS) and L.FIT_KINDS[-1] == L.WHOLE_FACTOR_KIND
    assert L.WHOLE_FACTOR_KIND not in CHECK and L.distortion_of(L.WHOLE_FACTOR_KIND) == "resolution_loss"
    with pytest.raises(ValueError, match="4 steps"):
        L.severities("x.png", [L.WHOLE_FACTOR_KIND], steps=3)


def test_a_whole_factor_copy_is_an_exact_down_up_copy(monkeypatch):
    import cv2

    rgb = np.random.default_rng(3).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    seen = []
    monkeypatch.setattr(L, "extract", lambda a: seen.append(a) or {"f": 0.0})
    L.compute("x.png", rgb, ["f"], kinds=[L.WHOLE_FACTOR_KIND])
    quarter = cv2.resize(rgb, (32, 16), interpolation=cv2.INTER_AREA)  # 4x: exactly 4x4 block means
    assert np.array_equal(seen[-1], cv2.resize(quarter, (128, 64), interpolation=cv2.INTER_LINEAR))
    assert len(seen) == len(L.WHOLE_FACTORS)


def test_the_human_aligned_rows_skip_the_whole_factor_ladder_unless_asked():
    feats = np.arange(2 * 4 * 2, dtype=float).reshape(2, 4, 2)
    sev = np.vstack([L.severities("r.png", ["jpeg"]), L.severities("r.png", [L.WHOLE_FACTOR_KIND])])
    rec = F.Record("r.png", "r.png", 4.0, "g", features={"a": 0.0, "b": 0.0},
                   ladders=L.Ladders("r.png", ["jpeg", L.WHOLE_FACTOR_KIND], sev, feats))  # fmt: skip
    x, t = F.damage_rows([rec], [0], floor=1.0)
    assert np.array_equal(x, feats[0]) and np.allclose(t, 4.0 - sev[0] * 3.0)
    x_all, _ = F.damage_rows([rec], [0], floor=1.0, kinds=L.FIT_KINDS)
    assert np.array_equal(x_all, feats.reshape(-1, 2))
    assert rec.ladders.only({L.WHOLE_FACTOR_KIND}).kinds == [L.WHOLE_FACTOR_KIND]
