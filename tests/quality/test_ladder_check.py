import json

import pytest

from quality import ladder_check as L
from quality.eval import main as eval_main
from tests.quality.conftest import textured


def lad(image, kind, technical, composite):
    return {"image": image, "kind": kind, "scores": {"technical": technical, "composite_score": composite},
            "errors": []}  # fmt: skip


def test_summary_counts_strict_steps_ranges_and_heavy_copies():
    ladders = [
        lad("a", "jpeg", [8.0, 7.0, 6.0, 5.0, 1.0], [7.0, 6.0, 5.0, 4.0, 2.0]),
        lad("b", "jpeg", [6.0, 6.0, 5.0, 5.5, 2.0], [6.5, 6.0, 5.5, 5.2, 5.0]),  # 2 flat/rising technical steps
        lad("a", "blur", [8.0, 7.0, None, 3.0, 2.0], [7.0, 6.0, 4.0, 3.0, 1.0]),  # a failed rung never "falls"
    ]
    s = L.summarise(ladders)
    jpeg = s["kinds"]["jpeg"]
    assert jpeg["ladders"] == 2
    assert jpeg["technical"]["strict_steps"] == pytest.approx(6 / 8)
    assert jpeg["technical"]["strict_ladders"] == 0.5
    assert jpeg["technical"]["drop_mean"] == pytest.approx((7.0 + 4.0) / 2)
    assert jpeg["technical"]["drop_min"] == pytest.approx(4.0)
    assert jpeg["composite_score"]["strict_steps"] == 1.0
    assert s["kinds"]["blur"]["technical"]["strict_steps"] == 0.5
    assert s["overall"]["technical"]["strict_steps"] == pytest.approx(8 / 12, abs=1e-4)
    assert s["overall"]["composite_score"]["strict_ladders"] == 1.0
    # b's heaviest copy keeps composite 5.0: at the limit counts as a failure
    assert s["heavy_at_or_above_limit"] == [{"image": "b", "kind": "jpeg", "composite": 5.0}]
    assert {(b["image"], b["kind"], b["score"]) for b in s["not_strict"]} == {("b", "jpeg", "technical"),
                                                                            ("a", "blur", "technical")}  # fmt: skip
    assert not s["passed"]
    clean = L.summarise([ladders[0]])
    assert clean["passed"] and not clean["not_strict"] and not clean["heavy_at_or_above_limit"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFY_QUALITY_OFFLINE", "1")
    monkeypatch.setenv("COMFY_QUALITY_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COMFY_QUALITY_DEVICE", "cpu")


def test_eval_ladders_scores_every_rung_of_small_made_images(offline, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    textured(1, 160).save(folder / "one.png")
    textured(2, 192).save(folder / "two.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    code = eval_main(["--ladders", str(folder), "--distortion", "gaussian_blur", "--distortion", "jpeg",
                      "-o", str(out)])  # fmt: skip
    data = json.loads((out / "ladders.json").read_text())
    assert data["images"] == ["one.png", "two.jpg"]
    assert set(data["kinds"]) == {"gaussian_blur", "jpeg"} and data["ladders"] == 4
    assert data["parameters"]["jpeg"][-1] <= 5 and data["parameters"]["gaussian_blur"][-1] >= 4
    for entry in data["scores"]:
        assert len(entry["scores"]["technical"]) == len(entry["scores"]["composite_score"]) == 5
        assert all(v is not None for v in entry["scores"]["technical"])
    blur = data["kinds"]["gaussian_blur"]["technical"]
    assert blur["drop_min"] > 0  # the heaviest blur scores below the original
    assert code == (0 if data["passed"] else 4)
    printed = capsys.readouterr().out
    assert "damage ladders: 2 images × 2 kinds" in printed and "gaussian_blur" in printed


def test_eval_ladders_refuses_bad_input(offline, tmp_path, capsys):
    assert eval_main(["--ladders", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert eval_main(["--ladders", str(tmp_path)]) == 2
    assert "no images" in capsys.readouterr().err
    textured(1, 96).save(tmp_path / "a.png")
    assert eval_main(["--ladders", str(tmp_path), "--distortion", "sepia", "-o", str(tmp_path / "o")]) == 2
    assert "unknown distortion" in capsys.readouterr().err
    assert eval_main([]) == 2
