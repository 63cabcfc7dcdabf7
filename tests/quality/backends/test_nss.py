"""The native BRISQUE + NIQE backend: calibration against the published reference values, agreement with live
pyiqa (when installed), the bit-level building blocks, and bad input."""

from __future__ import annotations

import contextlib
import csv
import os
import site
import subprocess
import sys
import sysconfig
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from quality.backends import nss_math as nm
from quality.backends.base import LoadContext
from quality.backends.nss import (
    NSSBackend,
    brisque_features,
    brisque_score,
    nss_features,
    packaged_params,
    read_allrange,
    read_brisque_svm,
)
from quality.backends.nss_tables import TABLE_NAMES, load_shipped
from quality.errors import MetricError, WeightsError
from quality.image_io import load_image
from quality.weights import WeightsStore

REPO = Path(__file__).resolve().parents[3]
AGIQA_TEST = REPO / "tests" / "data" / "agiqa"
AGIQA_SHARED = REPO.parent / "shared" / "data" / "agiqa3k" / "images"
DATA = REPO / "quality" / "data"

#: pyiqa 0.1.16 on its own calibration images (``ResultsCalibra/dist_dir``), from ../shared/params/README.md
PYIQA_CALIBRATION = {
    "I03.bmp": (94.6440, 15.6558),
    "I04.bmp": (-0.1152, 3.6549),
    "I06.bmp": (1.0748, 3.2342),
    "I08.bmp": (5.1383, 3.1917),
    "I19.bmp": (66.8348, 9.0727),
}


def reference_rows() -> list[tuple[str, float, float]]:
    with (AGIQA_TEST / "reference_scores.csv").open() as fh:
        return [(r["name"], float(r["brisque"]), float(r["niqe"])) for r in csv.DictReader(fh)]


def calibration_dir() -> Path | None:
    roots = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    for root in roots:
        folder = Path(root) / "ResultsCalibra" / "dist_dir"
        if folder.is_dir():
            return folder
    return None


def rgb_of(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth colour waves + noise, with a flat white patch and a flat black band (flat windows matter)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 37.0 + c) * np.cos(yy / 53.0 - c) for c in range(3)], -1)
    img = cv2.GaussianBlur(img + rng.normal(0, 6, img.shape), (0, 0), 1.2)
    img[h // 4 : h // 2, w // 5 : w // 2] = 250
    img[: h // 8] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------------------------------------
# calibration: published reference values (no pyiqa needed)
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend() -> NSSBackend:
    b = NSSBackend()
    b.load(LoadContext(weights=WeightsStore(offline=True)))
    return b


@pytest.mark.parametrize(("name", "brisque", "niqe"), reference_rows())
def test_reproduces_agiqa_reference_scores(
    backend: NSSBackend, name: str, brisque: float, niqe: float
) -> None:
    values = backend.compute(load_image(AGIQA_TEST / name), None)
    assert values["brisque"] == pytest.approx(brisque, abs=0.1)
    assert values["niqe"] == pytest.approx(niqe, abs=0.1)


def test_reference_table_has_all_ten_images() -> None:
    rows = reference_rows()
    assert len(rows) == 10
    assert all((AGIQA_TEST / name).is_file() for name, _, _ in rows)


@pytest.mark.parametrize("name", sorted(PYIQA_CALIBRATION))
def test_reproduces_pyiqa_calibration_images(name: str) -> None:
    folder = calibration_dir()
    if folder is None:
        pytest.skip("pyiqa's ResultsCalibra/dist_dir is not installed")
    result = nss_features(rgb_of(folder / name))
    brisque, niqe = PYIQA_CALIBRATION[name]
    assert result["brisque"] == pytest.approx(brisque, abs=0.1)
    assert result["niqe"] == pytest.approx(niqe, abs=0.1)


# ------------------------------------------------------------------------------------------------------------
# agreement with live pyiqa
# ------------------------------------------------------------------------------------------------------------
#: pyiqa run in a child process with MKL's "conditional numerical reproducibility" mode COMPATIBLE. torch's x86
#: float32 matmul and vector math are MKL's, and the code path MKL picks depends on the CPU: on its AVX2/AVX-512
#: paths the luma product ``[r, g, b] @ [0.299, 0.587, 0.114]`` is evaluated with fused multiply-adds
#: (fma(b, wb, fma(g, wg, r * wr)), checked for all 2^24 colours), which rounds 1869 of the 16782 colours whose
#: luma is exactly k + 0.5 the other way. A handful of pixels of an image then move by one grey level, which moves
#: NIQE by up to 6e-3 (measured: 513x257 textured image, 13 of 131841 pixels) and BRISQUE by up to 2.4e-2. The
#: COMPATIBLE path evaluates the reference's arithmetic unfused, op by op (the path this backend and its shipped
#: tables were calibrated on); there the NIQE scores agree to 1e-11.
PYIQA_WORKER = """
import contextlib, sys
import numpy as np, pyiqa, torch
from pyiqa.utils.color_util import to_y_channel
from quality.backends.nss_math import luma
with contextlib.redirect_stdout(sys.stderr):  # pyiqa prints while loading
    brisque = pyiqa.create_metric("brisque", device="cpu", pretrained_model_path=sys.argv[1])
    niqe = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=sys.argv[2])
for line in sys.stdin:
    rgb = np.load(line.strip())
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous().float().div(255)[None]
    fused = int((to_y_channel(x, 255.0)[0, 0].numpy() != luma(rgb)).sum())
    print(float(brisque(x).item()), float(niqe(x).item()), fused, flush=True)
"""


class PyiqaWorker:
    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0
        self.log = (folder / "worker.log").open("w+")
        env = {**os.environ, "MKL_CBWR": "COMPATIBLE"}
        args = [str(DATA / "brisque_svm_weights.pth"), str(DATA / "niqe_modelparameters.mat")]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PYIQA_WORKER, *args], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
        )

    def scores(self, rgb: np.ndarray) -> tuple[float, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.count += 1
        path = self.folder / f"{self.count}.npy"
        np.save(path, np.ascontiguousarray(rgb))
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            pytest.fail(f"the pyiqa process ended: {self.log.read()[-2000:]}")
        brisque, niqe, fused = line.split()
        if int(fused):
            pytest.skip(f"torch's float32 matmul here rounds {fused} luma ties unlike the reference even with "
                        "MKL_CBWR=COMPATIBLE (not an MKL build?)")
        return float(brisque), float(niqe)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def pyiqa_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyiqaWorker]:
    pytest.importorskip("pyiqa")
    worker = PyiqaWorker(tmp_path_factory.mktemp("pyiqa"))
    yield worker
    worker.close()


def pyiqa_scores(metrics: PyiqaWorker, rgb: np.ndarray) -> tuple[float, float]:
    return metrics.scores(rgb)


def shared_agiqa_images() -> list[Path]:
    if not AGIQA_SHARED.is_dir():
        return []
    return sorted(AGIQA_SHARED.glob("*.jpg"))[50::98][:20]


def check_agiqa_agreement(metrics: PyiqaWorker, images: list[Path]) -> None:
    for path in images:
        rgb = rgb_of(path)
        ours = nss_features(rgb)
        brisque, niqe = pyiqa_scores(metrics, rgb)
        # BRISQUE: pyiqa evaluates its 774-term SVR in float32 (rounding noise up to about ±0.01); ours is
        # float64 on the same features (test_brisque_features_equal_pyiqa_features checks those tightly)
        assert ours["brisque"] == pytest.approx(brisque, abs=2e-2), path.name
        assert ours["niqe"] == pytest.approx(niqe, abs=1e-6), path.name


def test_agrees_with_live_pyiqa_on_some_agiqa_images(pyiqa_metrics: PyiqaWorker) -> None:
    images = shared_agiqa_images()
    if len(images) < 20:
        pytest.skip(f"needs the AGIQA-3K images in {AGIQA_SHARED}")
    check_agiqa_agreement(pyiqa_metrics, images[::5])


@pytest.mark.slow
def test_agrees_with_live_pyiqa_on_twenty_agiqa_images(pyiqa_metrics: PyiqaWorker) -> None:
    images = shared_agiqa_images()
    if len(images) < 20:
        pytest.skip(f"needs the AGIQA-3K images in {AGIQA_SHARED}")
    check_agiqa_agreement(pyiqa_metrics, images)


@pytest.mark.parametrize(("h", "w"), [(96, 96), (97, 131), (255, 383), (513, 257), (200, 100), (389, 770)])
def test_agrees_with_live_pyiqa_on_odd_sizes(pyiqa_metrics: PyiqaWorker, h: int, w: int) -> None:
    rgb = textured(h, w, seed=h * w)
    ours = nss_features(rgb)
    brisque, niqe = pyiqa_scores(pyiqa_metrics, rgb)
    assert ours["brisque"] == pytest.approx(brisque, abs=2e-2)
    assert ours["niqe"] == pytest.approx(niqe, abs=1e-6)


def test_agrees_with_live_pyiqa_at_1024(pyiqa_metrics: PyiqaWorker) -> None:
    rgb = np.asarray(Image.open(AGIQA_TEST / "DALLE2_normal_001.jpg").convert("RGB").resize((1024, 1024)))
    ours = nss_features(rgb)
    brisque, niqe = pyiqa_scores(pyiqa_metrics, rgb)
    assert ours["brisque"] == pytest.approx(brisque, abs=2e-2)
    assert ours["niqe"] == pytest.approx(niqe, abs=1e-6)


def test_grayscale_looking_rgb_works_and_agrees(pyiqa_metrics: PyiqaWorker) -> None:
    gray = Image.open(AGIQA_TEST / "glide_normal_000.jpg").convert("L")
    rgb = np.asarray(gray.convert("RGB"))
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    ours = nss_features(rgb)
    assert np.isfinite(ours["brisque"]) and np.isfinite(ours["niqe"])
    brisque, niqe = pyiqa_scores(pyiqa_metrics, rgb)
    assert ours["brisque"] == pytest.approx(brisque, abs=2e-2)
    assert ours["niqe"] == pytest.approx(niqe, abs=1e-6)


def test_brisque_features_equal_pyiqa_features() -> None:
    """The features themselves agree to float32 rounding: the score differences are the reference's SVR."""
    torch = pytest.importorskip("torch")
    brisque_arch = pytest.importorskip("pyiqa.archs.brisque_arch")
    color_util = pytest.importorskip("pyiqa.utils.color_util")
    matlab_utils = pytest.importorskip("pyiqa.matlab_utils")
    for name in ("sd1.5_normal_000.jpg", "midjourney_normal_000.jpg"):
        rgb = rgb_of(AGIQA_TEST / name)
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)[None]
        y = color_util.to_y_channel(tensor, 255.0)
        theirs = []
        for _ in range(2):
            theirs.append(brisque_arch.natural_scene_statistics(y)[0].numpy())
            y = matlab_utils.imresize(y, scale=0.5, antialiasing=True)
        ours = brisque_features(nm.luma(rgb))
        np.testing.assert_allclose(ours, np.concatenate(theirs), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------------------
# building blocks, bit for bit
# ------------------------------------------------------------------------------------------------------------
def test_luma_rounds_every_colour_like_pyiqa() -> None:
    """Every colour: the reference's float32 arithmetic, unfused (product by product, summed R, G, then B); off
    exact .5 ties that is the exactly rounded luma, and live pyiqa agrees there whatever its BLAS does."""
    torch = pytest.importorskip("torch")
    color_util = pytest.importorskip("pyiqa.utils.color_util")
    v = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(4096, 4096, 3)
    ours = nm.luma(rgb)
    scaled = np.arange(256, dtype=np.float32) / np.float32(255)
    r, g, b = (scaled[rgb[..., c]] * np.float32(w) for c, w in enumerate(nm.YIQ_Y))
    assert np.array_equal(ours, np.round(((r + g) + b) * np.float32(255)))
    q, rem = np.divmod(rgb.astype(np.int64) @ np.array([299, 587, 114]), 1000)
    tie = rem == 500
    assert tie.sum() == 16782
    assert np.array_equal(ours[~tie], (q + (rem > 500))[~tie])
    assert np.all((ours[tie] == q[tie]) | (ours[tie] == q[tie] + 1))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).contiguous().float().div(255)[None]
    theirs = color_util.to_y_channel(tensor, 255.0)[0, 0].numpy()
    # with fused multiply-adds (MKL's AVX2/AVX-512 sgemm) 1869 of the ties round the other way: see PYIQA_WORKER
    assert np.array_equal(ours[~tie], theirs[~tie])
    assert np.all(np.abs(ours[tie] - theirs[tie]) <= 1)


def test_window_sums_are_bit_identical_to_pyiqa() -> None:
    torch = pytest.importorskip("torch")
    matlab_utils = pytest.importorskip("pyiqa.matlab_utils")
    y = nm.luma(rgb_of(AGIQA_TEST / "sd1.5_normal_000.jpg"))
    kernel = matlab_utils.fspecial(7, 7 / 6, 1)
    assert np.array_equal(nm.window(), kernel[0, 0].numpy())
    variants = ((np.float32, cv2.BORDER_CONSTANT, "same"), (np.float64, cv2.BORDER_REPLICATE, "replicate"))
    for dtype, border, padding in variants:
        x: np.ndarray[Any, np.dtype[np.floating[Any]]] = y.astype(dtype)
        k = kernel.to(torch.float64) if dtype == np.float64 else kernel
        for image in (x, x * x):
            theirs = matlab_utils.imfilter(torch.from_numpy(image)[None, None], k, padding=padding)[0, 0]
            ours = cv2.filter2D(image, -1, nm.window().astype(dtype), borderType=border)
            assert np.array_equal(ours, theirs.numpy())


@pytest.mark.parametrize(("h", "w"), [(64, 64), (65, 99), (7, 12), (9, 9), (513, 300), (1023, 767)])
def test_half_is_bit_identical_to_matlab_imresize(h: int, w: int) -> None:
    torch = pytest.importorskip("torch")
    matlab_utils = pytest.importorskip("pyiqa.matlab_utils")
    x = (np.random.default_rng(h).random((h, w)) * 255).astype(np.float32)
    theirs = matlab_utils.imresize(torch.from_numpy(x)[None, None], scale=0.5, antialiasing=True)[0, 0]
    ours = nm.half(x)
    assert ours.shape == ((h + 1) // 2, (w + 1) // 2)
    assert np.array_equal(ours, theirs.numpy())


def test_shipped_ratio_tables_equal_a_fresh_torch_evaluation(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from quality.backends.nss_tables import evaluate_with_torch

    shipped = load_shipped()
    # the unfused MKL path (how the tables are made, see nss_tables): bit for bit
    code = (
        "import sys, numpy as np; from quality.backends.nss_tables import evaluate_with_torch as e; "
        "np.savez(sys.argv[1], **e())"
    )
    env = {**os.environ, "MKL_CBWR": "COMPATIBLE"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.npz")], cwd=REPO, env=env, check=True, timeout=300)
    with np.load(tmp_path / "t.npz") as unfused:
        for name in TABLE_NAMES:
            assert shipped[name].dtype == np.float32 and shipped[name].shape == (9801,)
            assert np.array_equal(shipped[name], unfused[name]), name
    # this process's path (AVX2/AVX-512 MKL: about 160 values per table are 1 ulp off): within 1 ulp
    fresh = evaluate_with_torch()
    for name in TABLE_NAMES:
        np.testing.assert_array_max_ulp(shipped[name], fresh[name], maxulp=1)


def test_nearest_increasing_matches_brute_force() -> None:
    table = nm.tables().aggd64
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.uniform(table[0] - 0.1, table[-1] + 0.1, 2000),
        (table[:-1] + table[1:])[::97] / 2,  # exact midpoints: the lower index wins
        table[::501],
        [np.nan, -np.inf, np.inf],
    ])
    with np.errstate(invalid="ignore"):
        brute = np.argmin(np.abs(values[:, None] - table[None, :]), axis=1)
    brute[np.isnan(values)] = 0
    assert np.array_equal(nm.nearest_increasing(table, values), brute)


@pytest.mark.parametrize("shift", [*nm.NEIGHBOURS, (-1, 1), (0, -1), (-1, -1)])
def test_wrapped_product_equals_roll(shift: tuple[int, int]) -> None:
    m = np.random.default_rng(1).standard_normal((3, 5, 7))
    expected = m * np.roll(m, shift, axis=(-2, -1))
    assert np.array_equal(nm.wrapped_product(m, *shift), expected)


# ------------------------------------------------------------------------------------------------------------
# features, parameters, backend
# ------------------------------------------------------------------------------------------------------------
def test_nss_features_returns_features_that_give_the_scores() -> None:
    rgb = rgb_of(AGIQA_TEST / "xl2.2_normal_004.jpg")
    result = nss_features(rgb)
    assert result["brisque_features"].shape == (36,)
    assert result["niqe_features"].shape == (36,)
    assert result["niqe_blocks"] == (512 // 96) ** 2
    assert brisque_score(result["brisque_features"], packaged_params()) == result["brisque"]


def test_niqe_ignores_the_remainder_beyond_whole_blocks() -> None:
    rgb = textured(300, 410, seed=3)
    cropped = np.ascontiguousarray(rgb[:288, :384])
    assert nss_features(rgb)["niqe"] == pytest.approx(nss_features(cropped)["niqe"], abs=1e-9)
    assert nss_features(rgb)["brisque"] != pytest.approx(nss_features(cropped)["brisque"], abs=1e-6)


def test_backend_versions_and_values(backend: NSSBackend) -> None:
    versions = backend.versions()
    assert "sha256:e69ee320" in versions["brisque"] and "pyiqa-0.1.16" in versions["brisque"]
    assert "sha256:2a7c182a" in versions["niqe"]
    image = load_image(AGIQA_TEST / "sd1.5_lowcorr_000.jpg")
    result = nss_features(image.rgb)
    expected = {"brisque": result["brisque"], "niqe": result["niqe"]}
    assert backend.compute(image, "a prompt is ignored") == expected


def test_backend_single_thread_option_gives_the_same_values(backend: NSSBackend) -> None:
    single = NSSBackend()
    single.load(LoadContext(weights=WeightsStore(offline=True), options={"nss_threads": 1}))
    image = load_image(AGIQA_TEST / "AttnGAN_normal_000.jpg")
    assert single.compute(image, None) == backend.compute(image, None)
    with pytest.raises(MetricError, match="nss_threads"):
        NSSBackend().load(LoadContext(weights=WeightsStore(offline=True), options={"nss_threads": 0}))


def test_backend_is_safe_to_call_from_several_threads(backend: NSSBackend) -> None:
    images = [load_image(AGIQA_TEST / name) for name, _, _ in reference_rows()[:4]]
    expected = [backend.compute(im, None) for im in images]
    got: dict[int, dict[str, float]] = {}

    def work(i: int) -> None:
        got[i] = backend.compute(images[i], None)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [got[i] for i in range(len(images))] == expected


def test_compute_before_load_is_a_clear_error() -> None:
    with pytest.raises(MetricError, match="load"):
        NSSBackend().compute(load_image(AGIQA_TEST / "glide_normal_000.jpg"), None)
    assert NSSBackend().versions() == {}


def test_svm_reader_matches_torch_load() -> None:
    torch = pytest.importorskip("torch")
    coef, sv = read_brisque_svm(DATA / "brisque_svm_weights.pth")
    t_coef, t_sv = torch.load(DATA / "brisque_svm_weights.pth", weights_only=True)
    assert coef.shape == (774,) and sv.shape == (774, 36)
    assert np.array_equal(coef, t_coef.numpy()) and np.array_equal(sv, t_sv.numpy())


def test_svm_reader_refuses_other_pickles(tmp_path: Path) -> None:
    import pickle

    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("evil/data.pkl", b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(WeightsError, match=r"unexpected object os\.system"):
        read_brisque_svm(evil)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(WeightsError, match="not a readable"):
        read_brisque_svm(junk)


def test_allrange_reader() -> None:
    lo, hi = read_allrange((DATA / "allrange").read_text())
    assert lo.shape == hi.shape == (36,)
    assert (lo[0], hi[0]) == (0.338, 10.0) and (lo[-1], hi[-1]) == (0.001118, 0.370399)
    assert np.all(hi > lo)
    with pytest.raises(WeightsError):
        read_allrange("x\n-1 1\n1 0 1\n")


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 180, 90)])
def test_flat_image_is_a_clear_metric_error(colour: tuple[int, int, int]) -> None:
    rgb = np.empty((256, 256, 3), np.uint8)
    rgb[:] = colour
    with no_warnings(), pytest.raises(MetricError, match="flat"):
        nss_features(rgb)


def test_luma_flat_but_colourful_image_is_flat() -> None:
    rgb = np.zeros((200, 200, 3), np.uint8)
    rgb[::2] = (255, 0, 0)  # luma 76.245 -> 76
    rgb[1::2] = (0, 130, 0)  # luma 76.31 -> 76
    with no_warnings(), pytest.raises(MetricError, match="flat"):
        nss_features(rgb)


@pytest.mark.parametrize("value", [0, 128, 250])
def test_nearly_flat_image_gives_a_value_or_a_clear_error(value: int) -> None:
    rgb = np.full((200, 200, 3), value, np.uint8)
    rgb[100, 100] = 255 - value
    with no_warnings():
        try:
            result = nss_features(rgb)
        except MetricError as exc:
            assert "flat" in str(exc)
        else:
            assert np.isfinite(result["brisque"]) and np.isfinite(result["niqe"])


def test_image_under_a_niqe_block_gets_niqe_from_the_bicubic_copy_and_brisque_as_is() -> None:
    from PIL import Image

    from quality.backends import nss_math as nm
    from quality.backends.nss import brisque_features, brisque_score, niqe_block_features, niqe_score, packaged_params

    rgb = textured(80, 300, seed=1)
    result = nss_features(rgb)
    big = np.asarray(Image.fromarray(rgb).resize((360, 96), Image.Resampling.BICUBIC, reducing_gap=None))
    expected, _ = niqe_score(niqe_block_features(nm.luma(np.ascontiguousarray(big))), packaged_params())
    assert result["niqe"] == pytest.approx(expected, rel=1e-12)
    assert result["niqe_blocks"] == 3  # 96 × 360: three whole 96-px blocks
    assert result["brisque"] == pytest.approx(brisque_score(brisque_features(nm.luma(rgb)), packaged_params()))


def test_image_under_the_minimum_is_a_clear_error() -> None:
    with pytest.raises(MetricError, match="31×300 px, smaller than the 32 px minimum"):
        nss_features(textured(300, 31, seed=1))


@pytest.mark.parametrize("array", [np.zeros((100, 100), np.uint8), np.zeros((100, 100, 3), np.float32)])
def test_wrong_array_is_a_clear_error(array: np.ndarray) -> None:
    with pytest.raises(MetricError, match="uint8"):
        nss_features(array)


def _sums_reference(tile: np.ndarray) -> list[float]:
    neg = np.minimum(tile, 0).ravel()
    pos = tile.ravel() - neg
    counts = [float((neg < 0).sum()), float((pos > 0).sum())]
    return [*counts, float(neg @ neg), float(pos @ pos), float(np.abs(tile).sum())]


def test_tile_sums_equal_the_straightforward_sums() -> None:
    rng = np.random.default_rng(7)
    stack = rng.standard_normal((5, 12, 12))
    stack[1] = np.abs(stack[1])  # no negative values
    stack[2, :6] = 0.0
    stack[3, 2, 2] = np.nan
    sums = nm.SidedSums.of_tiles(stack)
    got = np.stack([sums.n_left, sums.n_right, sums.sq_left, sums.sq_right, sums.abs_sum], axis=1)
    expected = np.array([_sums_reference(t) for t in stack])
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    assert sums.n_left[1] == 0 and sums.size == 144


def test_niqe_block_features_equal_a_tile_by_tile_computation() -> None:
    """Strips with reused buffers and one fit per map against each tile's features computed on its own (np.roll
    for the wrapped neighbour products)."""
    m = nm.mscn_niqe(nm.luma(textured(192, 192, seed=4)).astype(np.float64))
    got = nm.niqe_block_features(m, 48)
    t = nm.tables()
    for index, (r, c) in enumerate((r, c) for r in range(0, 192, 48) for c in range(0, 192, 48)):
        tile = m[r : r + 48, c : c + 48][None]
        alpha, bl, br, _ = nm._aggd_fit64(nm.SidedSums.of_tiles(tile))
        row = [alpha[0], (bl[0] + br[0]) / 2]
        for dy, dx in nm.NEIGHBOURS:
            p = tile * np.roll(tile, (dy, dx), axis=(-2, -1))
            alpha, bl, br, idx = nm._aggd_fit64(nm.SidedSums.of_tiles(p))
            row += [alpha[0], (br[0] - bl[0]) * t.mean64[idx[0]], bl[0], br[0]]
        np.testing.assert_array_equal(got[index], np.array(row))
