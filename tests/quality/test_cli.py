import csv
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from quality.cli import EXIT_BELOW, EXIT_IMAGE, EXIT_OK, EXIT_USAGE
from tests.quality.cli_helpers import offline, run  # noqa: F401 (offline: autouse fixture)
from tests.quality.conftest import AGIQA, REPO


def test_single_image_with_prompt_prints_a_table():
    code, text = run(str(AGIQA / "sd1.5_lowstep_001.jpg"), "a tray of sushi")
    assert code == EXIT_OK
    assert 'prompt: "a tray of sushi"' in text
    for label in ("technical", "aesthetic", "prompt adherence", "detail", "composite", "grade"):
        assert label in text
    assert "weights prefetch" in text  # tells the user how to get the missing metrics


def test_json_output_is_the_full_report():
    code, text = run(str(AGIQA / "xl2.2_normal_004.jpg"), "red and blue armor", "--json")
    data = json.loads(text)
    assert code == EXIT_OK and data["prompt"] == "red and blue armor"
    assert data["grade"] in "ABCDF" and "coverage" in data and "metrics" in data


def test_batch_over_a_folder_writes_csv_with_per_image_prompts(tmp_path):
    out = tmp_path / "scores.csv"
    code, _ = run(str(AGIQA), "-o", str(out), "-q")
    assert code == EXIT_OK
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["DALLE2_normal_001.jpg"]["prompt"] == "a tray of sushi"  # from the folder's labels.csv
    assert all(r["grade"] in "ABCDF" and r["edge_density"] for r in rows)


def test_batch_jsonl_over_a_glob_reports_unreadable_files_and_exits_3(tmp_path):
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 50, 100, 100)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "broken.png").write_bytes(b"nope")
    code, text = run(str(tmp_path / "*.png"), "--format", "jsonl", "-q")
    lines = [json.loads(line) for line in text.splitlines()]
    assert code == EXIT_IMAGE and len(lines) == 3
    broken = next(line for line in lines if line["file"].endswith("broken.png"))
    assert "not a readable image" in broken["error"]


def test_min_grade_gates_the_exit_code():
    flat = str(REPO / "tests" / "data" / "agiqa" / "sd1.5_normal_000.jpg")
    code, _ = run(flat, "--min-score", "10.01")
    assert code == EXIT_BELOW
    code, _ = run(flat, "--min-grade", "F")
    assert code == EXIT_OK


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["nope.png"], EXIT_USAGE), (["--metrics", "psnr", str(AGIQA / "DALLE2_normal_001.jpg")], 4), ([], EXIT_USAGE)],
)
def test_usage_and_config_errors_have_distinct_exit_codes(argv, expected, capsys):
    code, _ = run(*argv)
    assert code == expected
    if argv:
        assert "error" in capsys.readouterr().err


def test_unreadable_single_image_exits_3(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    code, _ = run(str(bad))
    assert code == EXIT_IMAGE and "bad.jpg" in capsys.readouterr().err


def test_weights_list_and_metrics_table():
    code, text = run("weights", "list")
    assert code == EXIT_OK and "brisque_svm" in text and "packaged" in text and "missing" in text
    code, text = run("weights", "list", "--json")
    entries = {e["name"]: e for e in json.loads(text)}
    assert entries["niqe_pristine"]["verified"] is True and entries["clip_vit_l14"]["present"] is False
    code, text = run("metrics")
    assert code == EXIT_OK and "| `niqe` | technical |" in text and "12.0 → 0" in text


def test_prefetch_refuses_when_offline():
    code, _ = run("weights", "prefetch")
    assert code == 4


def test_module_entry_point_prints_only_the_report_on_stdout():
    proc = subprocess.run(
        [sys.executable, "-m", "quality", str(AGIQA / "midjourney_normal_000.jpg"), "statue of a man", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"]["width"] == 512


def test_readme_metric_table_is_the_one_the_code_uses():
    code, table = run("metrics")
    readme = (REPO / "README.md").read_text()
    assert code == EXIT_OK
    for line in table.splitlines()[2:]:
        assert line in readme, f"README's metric table is stale: {line}"


def test_batch_in_two_processes_gives_the_same_scores_in_the_same_order(tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert run(str(AGIQA), "-o", str(one), "-q")[0] == EXIT_OK
    assert run(str(AGIQA), "-o", str(two), "-q", "--jobs", "2")[0] == EXIT_OK
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(csv.DictReader(one.open())) == strip(csv.DictReader(two.open()))


def test_eval_help_shows_the_eval_options():

    from quality.cli import main as cli_main

    buf = io.StringIO()
    assert cli_main(["eval", "--help"], out=buf) == 0
    assert "--cv" in buf.getvalue() and "--no-calibration" in buf.getvalue()
