import json
import shutil

import pytest

from quality.eval import Sample, agreement_table, grade_checks, load_dataset, main
from tests.quality.conftest import AGIQA


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFY_QUALITY_OFFLINE", "1")
    monkeypatch.setenv("COMFY_QUALITY_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COMFY_QUALITY_DEVICE", "cpu")


def test_eval_command_on_a_rated_folder_writes_table_json_scores_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(AGIQA), "-o", str(out), "--bootstrap", "50", "--plcc-bootstrap", "20", "-q"])
    assert code == 0
    data = json.loads((out / "eval.json").read_text())
    overall = data["agreement"]["mos_quality"]["composite_score"]["overall"]
    assert overall["n"] == 10
    assert -1 <= overall["srocc"]["value"] <= 1 and overall["srocc"]["ci_low"] <= overall["srocc"]["value"]
    assert "per_grade" in data["checks"] and "false_positives" in data["checks"]
    for name in ("composite_vs_mos.png", "mos_per_grade.png", "scores.jsonl"):
        assert (out / name).stat().st_size > 0
    assert (out / "composite_vs_mos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "agreement with mos_quality" in capsys.readouterr().out


def test_scores_can_be_reused_without_rescoring(tmp_path):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    assert main([str(AGIQA), "-o", str(out1), "--bootstrap", "0", "--plcc-bootstrap", "0", "-q", "--no-plots"]) == 0
    assert main([str(AGIQA), "-o", str(out2), "--scores", str(out1 / "scores.jsonl"), "--bootstrap", "0",
                 "--plcc-bootstrap", "0", "-q", "--no-plots"]) == 0  # fmt: skip
    assert (out1 / "scores.jsonl").read_text() == (out2 / "scores.jsonl").read_text()


def test_a_users_folder_with_images_next_to_labels_works(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    rows = ["name,mos_quality"]
    for i, src in enumerate(sorted(AGIQA.glob("*.jpg"))[:6]):
        shutil.copy(src, folder / src.name)
        rows.append(f"{src.name},{i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    samples = load_dataset(folder)
    assert len(samples) == 6 and samples[0].path.parent == folder and samples[0].generator == "all"
    assert main([str(folder), "-o", str(tmp_path / "o"), "--bootstrap", "0", "-q", "--no-plots"]) == 0


def test_missing_labels_or_columns_is_a_usage_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    (tmp_path / "labels.csv").write_text("file,score\na.png,1\n")
    assert main([str(tmp_path)]) == 2
    assert "mos_quality" in capsys.readouterr().err


def sample(name, mos, composite, grade, gen="g"):
    return Sample(name=name, path=AGIQA / name, mos_quality=mos, generator=gen,
                  values={"composite_score": composite, "technical": composite}, grade=grade)  # fmt: skip


def test_grade_checks_find_false_positives_and_monotonicity():
    samples = [sample(f"{i}", mos, comp, g) for i, (mos, comp, g) in enumerate(
        [(0.1, 7.5, "B"), (0.2, 2.0, "F"), (1.0, 4.0, "D"), (1.5, 5.5, "C"), (3.0, 7.0, "B"), (4.0, 8.5, "A"),
         (4.2, 9.0, "A"), (0.3, 1.0, "F")])]  # fmt: skip
    checks = grade_checks(samples)
    assert checks["false_positives"] == ["0"]  # bottom-quartile MOS with composite >= 7
    assert checks["per_grade"]["A"]["n"] == 2
    assert checks["mean_mos_rises_from_F_to_A"] is True
    samples[0].grade = "A"
    samples[0].mos_quality = 0.0
    assert grade_checks(samples)["mean_mos_rises_from_F_to_A"] is False


def test_agreement_table_groups_by_generator_and_skips_tiny_groups():
    samples = [sample(f"a{i}", i, i + 0.5, "C", "gen1") for i in range(8)]
    samples += [sample(f"b{i}", i, -i, "C", "gen2") for i in range(6)]
    samples += [sample("c0", 1, 1, "C", "gen3")]
    table = agreement_table(samples, resamples=20, plcc_resamples=5)
    groups = table["mos_quality"]["composite_score"]
    assert groups["gen1"]["srocc"]["value"] == pytest.approx(1.0)
    assert groups["gen2"]["srocc"]["value"] == pytest.approx(-1.0)
    assert "gen3" not in groups and groups["overall"]["n"] == 15


def test_images_the_calibration_was_fitted_on_are_flagged_in_sample(tmp_path, capsys):
    """tests/data/agiqa holds some of the shipped model's check images (fit images): the table says in-sample."""
    out = tmp_path / "out"
    assert main([str(AGIQA), "-o", str(out), "--bootstrap", "0", "--plcc-bootstrap", "0", "--no-plots", "-q"]) == 0
    data = json.loads((out / "eval.json").read_text())
    assert "fitted on" in data["in_sample"] and "in-sample" in capsys.readouterr().out
    # the same images scored without calibration are nobody's training data
    assert main([str(AGIQA), "-o", str(out), "--bootstrap", "0", "--plcc-bootstrap", "0", "--no-plots", "-q",
                 "--no-calibration"]) == 0  # fmt: skip
    assert "in_sample" not in json.loads((out / "eval.json").read_text())


def test_a_users_own_images_are_not_flagged_in_sample(tmp_path):
    from quality.eval import fitted_on

    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(AGIQA / "sd1.5_normal_000.jpg", folder / "sd1.5_normal_000.jpg")  # not a check image
    (folder / "labels.csv").write_text("name,mos_quality\nsd1.5_normal_000.jpg,3.0\n")
    assert fitted_on(load_dataset(folder), folder / "labels.csv") is None


def test_within_group_statistics_use_prompt_and_generator_groups():
    from quality.eval import within_group

    def s(name, prompt, gen, mos, comp):
        return Sample(name=name, path=AGIQA / name, mos_quality=mos, prompt=prompt, generator=gen,
                      values={"composite_score": comp, "technical": -comp}, grade="C")  # fmt: skip

    samples = [
        s("1", "cat", "sd", 1.0, 3.0), s("2", "cat", "sd", 2.0, 5.0), s("3", "cat", "sd", 3.0, 4.0),
        s("4", "cat", "xl", 4.0, 1.0),  # same prompt, other generator: its own (single-image) group
        s("5", "dog", "sd", 1.0, 9.0), s("6", "dog", "sd", 3.0, 2.0),
        Sample(name="7", path=AGIQA / "7", mos_quality=2.0, values={"composite_score": 5.0}),  # no prompt: left out
    ]  # fmt: skip
    w = within_group(samples)
    comp = w["composite_score"]
    # pairs (|ΔMOS| >= 0.5): cat/sd (1,2) right, (1,3) right, (2,3) wrong; dog/sd (5,6) wrong
    assert comp["pairs"] == 4 and comp["pair_accuracy"] == pytest.approx(0.5)
    # selection: cat/sd picks MOS 2 (mean 2, oracle +1); dog/sd picks MOS 1 (mean 2, oracle +1) → (0 - 1) / 2
    assert comp["groups"] == 2 and comp["selection_gain"] == pytest.approx(-0.5)
    assert w["technical"]["pair_accuracy"] == pytest.approx(0.5)
    assert "brisque" not in w  # no values: not reported
