"""The CLI's batch output (a table and a summary by default, machine formats when asked) and argument hints."""

import json
import shutil

import pytest
from PIL import Image

from quality.cli import EXIT_BELOW, EXIT_IMAGE, EXIT_OK, EXIT_USAGE
from tests.quality.cli_helpers import offline, run  # noqa: F401 (offline: autouse fixture)
from tests.quality.conftest import AGIQA


@pytest.fixture
def folder(tmp_path):
    """Three AGIQA images and one unreadable file."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("midjourney_normal_000.jpg", "sd1.5_normal_000.jpg", "DALLE2_normal_001.jpg"):
        shutil.copy(AGIQA / name, shots / name)
    return shots


def test_a_folder_without_output_prints_one_line_per_image_and_a_summary(folder):
    code, text = run(str(folder), "-q")
    assert code == EXIT_OK
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["image", "grade", "score"]
    rows = [line for line in lines if ".jpg" in line]
    assert len(rows) == 3 and all(line.split()[1] in list("ABCDF") for line in rows)
    assert "3 images: 3 scored, 0 failed" in text and "composite mean" in text
    assert "{" not in text  # no JSON
    assert len(text) < 1500  # was ~10 KB of JSON per image


def test_the_summary_counts_grades_failures_and_the_bar(folder):
    (folder / "broken.png").write_bytes(b"not an image")
    code, text = run(str(folder), "-q", "--min-grade", "B")
    assert code == EXIT_IMAGE
    broken = next(line for line in text.splitlines() if "broken.png" in line)
    assert "error:" in broken and "not a readable image" in broken
    assert "4 images: 3 scored, 1 failed" in text
    grades = [line.split()[1] for line in text.splitlines() if line.split()[0].endswith(".jpg")]
    below = sum(g not in "AB" for g in grades)
    assert f"below grade B: {below}" in text
    summary = next(line for line in text.splitlines() if line.startswith("grades:"))
    for grade in set(grades):
        assert f"{grade} {grades.count(grade)}" in summary


def test_machine_formats_only_when_asked(folder):
    code, text = run(str(folder), "-q", "--json")
    records = [json.loads(line) for line in text.splitlines()]
    assert code == EXIT_OK and len(records) == 3 and all("composite_score" in r for r in records)
    code, text = run(str(folder), "-q", "--format", "csv")
    assert code == EXIT_OK and text.splitlines()[0].startswith("file,prompt,composite_score")
    assert len(text.splitlines()) == 4


def test_below_the_bar_exits_1_in_table_mode(folder):
    code, text = run(str(folder), "-q", "--min-score", "10.01")
    assert code == EXIT_BELOW and "below score 10.01: 3" in text


def test_several_images_then_a_prompt_points_to_prompt_options(folder, capsys):
    a, b = sorted(folder.glob("*.jpg"))[:2]
    code, text = run(str(a), str(b), "statue of a man")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and text == ""
    assert "'statue of a man'" in err and "--prompt" in err and "--prompts" in err


def test_a_long_prompt_is_not_echoed_whole(folder, capsys):
    a, b = sorted(folder.glob("*.jpg"))[:2]
    prompt = "a very long prompt " * 20
    assert run(str(a), str(b), prompt)[0] == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--prompts" in err and prompt not in err and len(err) < 400


def test_a_missing_image_among_several_is_still_reported_as_missing(folder, capsys):
    a = sorted(folder.glob("*.jpg"))[0]
    code, _ = run(str(a), str(folder / "gone.jpg"), str(a))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "no such file or folder" in err and "gone.jpg" in err and "--prompts" not in err


def test_one_image_and_a_prompt_still_score_and_image_list_with_p_works(folder):
    a, b = sorted(folder.glob("*.jpg"))[:2]
    code, text = run(str(a), "statue of a man", "--json")
    assert code == EXIT_OK and json.loads(text)["prompt"] == "statue of a man"
    code, text = run(str(a), str(b), "-p", "statue of a man", "--json", "-q")
    assert code == EXIT_OK and [json.loads(line)["prompt"] for line in text.splitlines()] == ["statue of a man"] * 2


def test_unreadable_files_in_a_glob_are_lines_of_the_table(tmp_path):
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 50, 100, 100)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    code, text = run(str(tmp_path / "*.png"), "-q")
    assert code == EXIT_IMAGE and "3 images: 2 scored, 1 failed" in text
