"""Fitting: the no-leakage rule (every held-out image is scored by a model that never saw it), splits, data
identity, and the fit command."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from quality.calibration import fit as F
from quality.calibration.cli import main
from quality.calibration.model import load
from quality.calibration.runtime import Scale


def test_kfold_and_logo_splits_partition_the_images_without_overlap():
    for train, test in F.kfold(23, 5, seed=3):
        assert not set(train) & set(test) and len(train) + len(test) == 23
    assert sorted(np.concatenate([t for _, t in F.kfold(23, 5, seed=3)])) == list(range(23))
    assert [t.tolist() for _, t in F.kfold(23, 5, seed=3)] == [t.tolist() for _, t in F.kfold(23, 5, seed=3)]
    groups = ["a", "b", "a", "c", "b", "a"]
    splits = F.leave_one_group_out(groups)
    assert len(splits) == 3
    for train, test in splits:
        held = {groups[i] for i in test}
        assert len(held) == 1 and held.isdisjoint(groups[i] for i in train)


class Memoriser:
    """A "model" that remembers every fitted image's label by its exact features: it predicts held-out labels
    perfectly if and only if they leaked into its fit set."""

    def __init__(self, base, mos):
        self.rows = {tuple(r): m for r, m in zip(base, mos, strict=True)}
        self.base, self.mos = base, mos
        self.scale = Scale((0.0, 4.0), (0.0, 10.0))

    def predict_mos(self, base, encodings):
        out = []
        for row in base:
            if tuple(row) in self.rows:
                out.append(self.rows[tuple(row)])
            else:  # nearest fitted image: a plausible but uninformed guess
                out.append(self.mos[np.argmin(((self.base - row) ** 2).sum(axis=1))])
        p = np.array(out)
        return {"technical": p, "detail": p}

    def scores_of(self, pred):
        return {d: self.scale(v) for d, v in pred.items()}


def test_a_subset_reads_its_prefixes_and_a_minus_subset_every_other_feature():
    names = ["niqe", "enc_jpeg30", "lap_var", "enc_luma", "halo"]
    assert F.subset_names("encode", names) == ("enc_jpeg30", "enc_luma")
    assert F.subset_names("-encode", names) == ("niqe", "lap_var", "halo")
    assert F.subset_names("", names) is None
    with pytest.raises(KeyError):
        F.subset_names("-nothing", names)
    # the shipped protocol: the ranking term reads every feature, the other members no re-encoding feature
    subsets = {(m[0], m[1]): m[3] for m in F.MEMBERS}
    assert subsets[("ranking", "ranker")] == "" and subsets[("technical", "trees")] == "-encode"


def test_leak_detector_a_memorising_model_is_caught_in_sample_but_learns_nothing_out_of_fold(
    synthetic_records, small_codebooks, monkeypatch
):
    records = synthetic_records
    mos = np.array([r.mos for r in records])
    monkeypatch.setattr(F, "fit_model", lambda base, enc, y, cbs, **kw: Memoriser(base, y))
    base = F.base_matrix(records, list(records[0].features))
    in_sample = Memoriser(base, mos).predict_mos(base, {})["technical"]
    assert stats.spearmanr(in_sample, mos).statistic == pytest.approx(1.0)  # a leak would look like this
    result = F.cross_validate(records, F.kfold(len(records), 4, seed=0))
    rho = stats.spearmanr(result.mos["technical"], mos).statistic
    assert rho < 0.6, f"out-of-fold predictions of a memoriser agree with the labels ({rho:.2f}): leakage"
    assert np.all(np.isfinite(result.mos["technical"])) and set(result.fold.tolist()) == {0, 1, 2, 3}


def test_every_fold_fits_codebooks_and_members_on_its_training_images_only(
    synthetic_records, small_codebooks, monkeypatch
):
    records = synthetic_records
    names = list(records[0].features)
    base = F.base_matrix(records, names)
    seen_codebook_images: list[set[str]] = []
    seen_fit_rows: list[np.ndarray] = []
    real_codebooks, real_fit = F.codebooks_for, F.fit_model

    def spy_codebooks(recs, idx, seed):
        idx = list(idx)
        seen_codebook_images.append({recs[i].name for i in idx})
        return real_codebooks(recs, idx, seed)

    def spy_fit(b, enc, y, cbs, **kw):
        seen_fit_rows.append(b.copy())
        return real_fit(b, enc, y, cbs, **kw)

    monkeypatch.setattr(F, "codebooks_for", spy_codebooks)
    monkeypatch.setattr(F, "fit_model", spy_fit)
    splits = F.leave_one_group_out([r.group for r in records])
    checked = []

    def on_fold(i, model, split):
        train, test = split
        test_names = {records[j].name for j in test}
        assert seen_codebook_images[i] == {records[j].name for j in train}
        assert seen_codebook_images[i].isdisjoint(test_names)
        fitted = {tuple(r) for r in seen_fit_rows[i]}
        assert len(fitted) == len(train) and not any(tuple(base[j]) in fitted for j in test)
        # no image here carries damage ladders: the damage head and the ranking term have no rows and are left out
        assert len(model.members) == sum(m[0] not in ("damage", "ranking") for m in F.MEMBERS)
        assert model.integrity is None and model.ranking is None
        checked.append(i)

    result = F.cross_validate(records, splits, on_fold=on_fold)
    assert checked == list(range(len(splits)))
    for dim in F.DIMENSIONS:
        assert np.all(np.isfinite(result.score[dim])) and np.all((result.score[dim] >= 0) & (result.score[dim] <= 10))


def test_cross_validate_refuses_a_split_that_overlaps(synthetic_records, small_codebooks):
    bad = [(np.arange(0, 20), np.arange(15, 24))]
    with pytest.raises(F.CalibrationFitError, match="both its training and its test"):
        F.cross_validate(synthetic_records, bad)


def test_flat_images_are_excluded_from_fitting_with_the_reason(tmp_path):
    from PIL import Image

    path = tmp_path / "flat.png"
    Image.new("RGB", (128, 128), (40, 40, 40)).save(path)
    rec = F.prepare_record(F.Record("flat.png", str(path), 1.0, "g"))
    assert not rec.usable and "flat" in (rec.error or "")


def test_fit_command_writes_a_model_and_report_with_data_hashes(synthetic_folder, small_codebooks, tmp_path):
    out = tmp_path / "m.npz"
    assert main(["fit", str(synthetic_folder), "-o", str(out), "--cv", "3", "--bootstrap", "0"]) == 0
    report = json.loads(out.with_suffix(".report.json").read_text())
    model = load(out)
    assert report["model_sha256"] == model.sha256
    ds = model.meta["dataset"]
    assert ds["images"] == 24 and len(ds["labels_sha256"]) == 64 and len(ds["images_sha256"]) == 64
    assert ds["labels_sha256"] == F.sha256_file(synthetic_folder / "labels.csv")
    assert set(model.meta["cv"]) == {"kfold3"} and "composite" in model.meta["cv"]["kfold3"]
    # two images carried damage ladders (the small protocol); the held-out folds' ladders were checked
    assert len(ds["ladder_images"]) == 2 and ds["held_out"] == []  # too few images to hold any out
    assert 0 <= model.meta["cv"]["kfold3"]["ladders_strict_technical"] <= 1
    assert "within_group" in report["cv_details"]["kfold3"] and "ladders" in report["cv_details"]["kfold3"]
    assert model.meta["seed"] == 0 and model.feature_names == report["feature_names"]
    # the fit-time check values are reproduced by the loaded file from the images themselves
    assert model.meta["check"]
    for name, expected in model.meta["check"].items():
        path = Path(synthetic_folder) / "images" / name
        assert F.sha256_file(path) == expected["sha256"]
        _, mos = model.score(F.working_rgb(str(path)))
        for dim in ("technical", "detail"):
            assert mos[dim] == pytest.approx(expected[dim], abs=1e-6)


def test_fit_command_reports_bad_input_as_usage_error(tmp_path, capsys):
    assert main(["fit", str(tmp_path)]) == 2
    assert "labels.csv" in capsys.readouterr().err
