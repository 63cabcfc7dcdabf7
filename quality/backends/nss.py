"""Native BRISQUE + NIQE: the two "technical" metrics from one pass over the image, without torch.

The values are those of pyiqa 0.1.16 used with the packaged LIVE parameters (``create_metric('brisque',
pretrained_model_path=brisque_svm_weights.pth)`` and ``create_metric('niqe', pretrained_model_path=
niqe_modelparameters.mat)``, defaults otherwise). All features agree with the reference to float32 rounding
(NIQE to about 1e-9); BRISQUE scores differ by up to about 0.01 (standard deviation 0.004) because the
reference evaluates its 774-term SVR in float32, while this module does it in float64. The math is described
in :mod:`quality.backends.nss_math`; this module holds the parameters, the two scores and the backend.

**BRISQUE** (lower is better, about 0–100): luma → MSCN at full and half size → 2 × 18 GGD/AGGD features →
scaled to [-1, 1] by the LIVE ``allrange`` table (not clipped) → RBF epsilon-SVR (gamma 0.05, rho -153.591,
774 support vectors). Odd sizes are halved to ``ceil(n / 2)`` (MATLAB ``imresize``); nothing is cropped.

**NIQE** (lower is better, about 2–20): the luma is cropped to whole 96×96 blocks from the top-left corner
(``floor(H / 96) * 96`` by ``floor(W / 96) * 96``: a right/bottom remainder is ignored, so an odd size loses
up to 95 rows/columns); the MSCN features of every 96-px block and, after halving, of the same block at
48 px give one 36-vector per block. NIQE is the Mahalanobis-like distance between their mean/covariance and
the pristine model's (pseudo-inverse of the averaged covariances). Blocks whose fit is undefined (NaN, e.g.
perfectly flat blocks) are left out of the covariance and of the mean of the affected features; one valid
block gives a zero covariance. pyiqa crashes on an image with a side under 96 px (nothing is left after the
crop); here an image whose short side is between 32 and 96 px gets NIQE on a copy upscaled with Pillow's bicubic
until its short side is 96 px (always the same resampling, see :func:`quality.grading.niqe_upscaled_size`), and
BRISQUE on the pixels as given. Under 32 px both refuse with a :class:`MetricError` naming the size (the scorer
refuses such images before any metric runs). When the joint computation fails, the backend falls back to
:func:`each_metric`, so each metric reports its own reason. Resizing policy is the scorer's business: apart from
NIQE's copy of a small image, this module scores exactly the pixels it is given, and the scorer reduces an image
over its pixel budget first (:mod:`quality.budget`), which defines BRISQUE and NIQE for large inputs.

A flat image (one luma value: a failed, one-colour generation) has no statistics: :class:`MetricError`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from quality.analysis import ImagePlanes
from quality.backends import nss_math as nm
from quality.backends.base import Backend, LoadContext
from quality.errors import MetricError, PartialMetricError, WeightsError
from quality.grading import MIN_SIDE, niqe_upscaled_size, too_small_message
from quality.image_io import PreparedImage
from quality.weights import WeightsStore

IMPL_VERSION = "native-nss/1 (pyiqa-0.1.16-compatible)"
SVR_GAMMA = 0.05
SVR_RHO = -153.591
NIQE_BLOCK = 96
#: smallest side BRISQUE is computed for (below it, its 7-px windows at half size have no interior)
BRISQUE_MIN_SIDE = 14
FEATURE_COUNT = 36


# ----------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NSSParams:
    """Model parameters of both metrics (read once, immutable, shared between threads)."""

    sv_coef: NDArray[np.float64]
    """(774,) dual coefficients of the BRISQUE SVR."""
    sv: NDArray[np.float64]
    """(774, 36) support vectors (scaled feature space)."""
    range_min: NDArray[np.float64]
    """(36,) ``allrange`` minima: ``scaled = -1 + 2 (f - min) / (max - min)``."""
    range_max: NDArray[np.float64]
    mu_pris: NDArray[np.float64]
    """(36,) mean of the NIQE pristine model."""
    cov_pris: NDArray[np.float64]
    """(36, 36) covariance of the NIQE pristine model."""
    svm_sha256: str = ""
    niqe_sha256: str = ""


class _TensorTupleUnpickler(pickle.Unpickler):
    """Reads a ``torch.save`` archive of float tensors without torch; refuses anything else."""

    _DTYPES: ClassVar[dict[str, type[np.floating[Any]]]] = {
        "DoubleStorage": np.float64,
        "FloatStorage": np.float32,
    }

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild
        if module == "torch" and name in self._DTYPES:
            return self._DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return dict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid: Any) -> NDArray[Any]:
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), count=int(numel))

    @staticmethod
    def _rebuild(storage: NDArray[Any], offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                 *_: Any) -> NDArray[Any]:
        item = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
        )
        return np.array(view, dtype=storage.dtype.newbyteorder("="))


def read_brisque_svm(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(sv_coef (774,), sv (774, 36))`` from the packaged ``torch.save((sv_coef, sv))`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            coef, sv = _TensorTupleUnpickler(archive.read(pkl), archive, pkl.rsplit("/", 1)[0]).load()
    except (OSError, zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise WeightsError(f"{path} is not a readable BRISQUE SVM file: {exc}", file=path.name) from exc
    coef, sv = np.asarray(coef, np.float64), np.asarray(sv, np.float64)
    if coef.ndim != 1 or sv.shape != (coef.shape[0], FEATURE_COUNT):
        raise WeightsError(f"{path}: unexpected SVM shapes {coef.shape} and {sv.shape}", file=path.name)
    return coef, sv


def read_niqe_model(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(mu (36,), cov (36, 36))`` from ``niqe_pris_params.npz`` (or pyiqa's ``.mat`` layout)."""
    try:
        if path.suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(path)
            mu, cov = data["mu_prisparam"], data["cov_prisparam"]
        else:
            with np.load(path, allow_pickle=False) as data:
                mu, cov = data["mu_pris_param"], data["cov_pris_param"]
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable NIQE model file: {exc}", file=path.name) from exc
    mu, cov = np.ravel(mu).astype(np.float64), np.asarray(cov, np.float64)
    if mu.shape != (FEATURE_COUNT,) or cov.shape != (FEATURE_COUNT, FEATURE_COUNT):
        raise WeightsError(f"{path}: unexpected NIQE model shapes {mu.shape}, {cov.shape}", file=path.name)
    return mu, cov


def read_allrange(text: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Minima and maxima of the LIBSVM ``svm-scale`` range file (line 1 ``x``, line 2 ``-1 1``, then
    ``index min max`` for features 1..36)."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0] != ["x"] or [float(v) for v in lines[1]] != [-1.0, 1.0]:
        raise WeightsError("allrange: expected a LIBSVM range file scaling to [-1, 1]", file="allrange")
    ranges = {int(i): (float(lo), float(hi)) for i, lo, hi in lines[2:]}
    if sorted(ranges) != list(range(1, FEATURE_COUNT + 1)):
        raise WeightsError(f"allrange: expected features 1..{FEATURE_COUNT}", file="allrange")
    lo, hi = zip(*(ranges[i] for i in range(1, FEATURE_COUNT + 1)), strict=True)
    return np.array(lo), np.array(hi)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_params(weights: WeightsStore) -> NSSParams:
    """Read the BRISQUE SVM, the ``allrange`` table and the NIQE pristine model (verified by ``weights``)."""
    svm_path, niqe_path = weights.path("brisque_svm"), weights.path("niqe_pristine")
    coef, sv = read_brisque_svm(svm_path)
    mu, cov = read_niqe_model(niqe_path)
    lo, hi = read_allrange((resources.files("quality") / "data" / "allrange").read_text(encoding="ascii"))
    return NSSParams(coef, sv, lo, hi, mu, cov, _sha256(svm_path), _sha256(niqe_path))


@lru_cache(maxsize=1)
def packaged_params() -> NSSParams:
    """The parameters shipped in ``quality/data`` (no download, no settings)."""
    return load_params(WeightsStore(offline=True))


# ----------------------------------------------------------------------------------------------------
# the two metrics
# ----------------------------------------------------------------------------------------------------
def brisque_features(y: nm.F32, halved_y: nm.F32 | None = None) -> nm.F32:
    """The 36 unscaled BRISQUE features of a float32 luma image (full size, then half size). ``halved_y``:
    :func:`nss_math.half` of ``y``, if the caller has it."""
    full = nm.brisque_scale_features(nm.mscn_brisque(y))
    halved = nm.brisque_scale_features(nm.mscn_brisque(nm.half(y) if halved_y is None else halved_y))
    return np.concatenate([full, halved])


def brisque_score(features: nm.F32, params: NSSParams) -> float:
    """SVR prediction for unscaled BRISQUE features (scaling in float32, like the reference)."""
    lo, hi = params.range_min.astype(np.float32), params.range_max.astype(np.float32)
    scaled = np.float32(-1) + np.float32(2) * (features - lo) / (hi - lo)
    dist = np.sum((scaled.astype(np.float64) - params.sv) ** 2, axis=1)
    return float(np.exp(-SVR_GAMMA * dist) @ params.sv_coef - SVR_RHO)


def niqe_block_features(y: nm.F32) -> nm.F64:
    """Per-block NIQE features, shape ``(blocks, 36)``: 18 at 96 px then 18 of the same block at 48 px
    (NaN where undefined)."""
    rows, cols = (y.shape[0] // NIQE_BLOCK) * NIQE_BLOCK, (y.shape[1] // NIQE_BLOCK) * NIQE_BLOCK
    full = y[:rows, :cols].astype(np.float64)
    f1 = nm.niqe_block_features(nm.mscn_niqe(full), NIQE_BLOCK)
    # float32 y / 255 equals float64 y / 255 rounded to float32 (a correctly rounded float64 quotient of float32
    # operands rounds to the correctly rounded float32 one: 53 >= 2 * 24 + 2), without the float64 copy
    halved = nm.half(y[:rows, :cols] / np.float32(255.0)).astype(np.float64) * 255.0
    f2 = nm.niqe_block_features(nm.mscn_niqe(halved), NIQE_BLOCK // 2)
    return np.concatenate([f1, f2], axis=1)


def _pinv(a: nm.F64) -> nm.F64:
    u, s, vt = np.linalg.svd(a)
    keep = s > s.max() * max(a.shape) * np.finfo(np.float64).eps
    return (vt[keep].T / s[keep]) @ u[:, keep].T


def niqe_score(blocks: nm.F64, params: NSSParams) -> tuple[float, nm.F64]:
    """NIQE value and the mean feature vector (36) from per-block features."""
    valid = ~np.isnan(blocks)
    counts = valid.sum(axis=0)
    rows = blocks[valid.all(axis=1)]
    if counts.min() == 0 or len(rows) == 0:
        raise MetricError(
            "NIQE is undefined for this image: no 96-px block has defined statistics (the image is almost "
            "flat)",
            metric="niqe",
        )
    mean = np.where(valid, blocks, 0.0).sum(axis=0) / counts
    cov = np.cov(rows, rowvar=False, ddof=1 if len(rows) > 1 else 0).reshape(FEATURE_COUNT, FEATURE_COUNT)
    diff = params.mu_pris - mean
    quality = diff @ _pinv((params.cov_pris + cov) / 2) @ diff
    return float(np.sqrt(quality)), mean


def _check_image(rgb: NDArray[np.uint8]) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MetricError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise MetricError(too_small_message(w, h))


def niqe_luma(rgb: NDArray[np.uint8], y: nm.F32) -> nm.F32:
    """The luma NIQE scores: ``y`` itself, or for a short side under 96 px the luma of a bicubic copy
    upscaled to a 96-px short side (:func:`quality.grading.niqe_upscaled_size`)."""
    size = niqe_upscaled_size(rgb.shape[1], rgb.shape[0])
    if size is None:
        return y
    from PIL import Image

    big = Image.fromarray(rgb, mode="RGB").resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    return nm.luma(np.ascontiguousarray(np.asarray(big, dtype=np.uint8)))


def _check_not_flat(y: nm.F32) -> None:
    if float(y.max()) == float(y.min()):
        raise MetricError(
            f"the image is flat (every pixel has luma {int(y.flat[0])}): BRISQUE and NIQE measure the "
            "statistics of local contrast and are undefined without any; a one-colour image is a failed "
            "generation",
        )


def nss_features(rgb: NDArray[np.uint8], params: NSSParams | None = None,
                 pool: ThreadPoolExecutor | None = None, planes: ImagePlanes | None = None) -> dict[str, Any]:
    """Both scores and their features from one pass over an ``(H, W, 3)`` uint8 RGB image.

    Returns ``brisque`` (float), ``niqe`` (float), ``brisque_features`` (36 unscaled, float32: full-size 18
    then half-size 18, in ``allrange`` order), ``niqe_features`` (36, float64: the mean over blocks that NIQE
    compares with the pristine model), ``niqe_blocks`` (number of 96-px blocks), ``niqe_block_features``
    (``(blocks, 36)`` float64, NaN where a fit is undefined: see :func:`niqe_block_features`), ``planes`` (the
    :class:`~quality.analysis.ImagePlanes` of ``rgb`` used: its luma planes are computed, and later users of the
    same pixels reuse them). The scores are computed from exactly these features. ``params`` defaults to the
    packaged files; ``pool`` runs NIQE in a worker; ``planes``: the shared planes of ``rgb``, if the caller has them.
    Raises :class:`MetricError` for flat or too small images and when a statistic is undefined.
    """
    params = params or packaged_params()
    _check_image(rgb)
    if planes is None or planes.rgb is not rgb:
        planes = ImagePlanes(rgb)
    y = planes.luma()
    _check_not_flat(y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y_niqe = niqe_luma(rgb, y)
        if pool is None:
            bfeat, blocks = brisque_features(y, planes.half_luma()), niqe_block_features(y_niqe)
        else:
            future = pool.submit(niqe_block_features, y_niqe)
            bfeat = brisque_features(y, planes.half_luma())
            blocks = future.result()
        if not np.all(np.isfinite(bfeat)):
            raise MetricError(
                "BRISQUE is undefined for this image: its local-contrast statistics have an empty side (the "
                "image is almost flat)",
                metric="brisque",
            )
        brisque = brisque_score(bfeat, params)
        niqe, mean = niqe_score(blocks, params)
    if not (np.isfinite(brisque) and np.isfinite(niqe)):
        raise MetricError(f"BRISQUE/NIQE gave a non-finite value ({brisque}, {niqe})")
    return {
        "brisque": brisque,
        "niqe": niqe,
        "brisque_features": bfeat,
        "niqe_features": mean,
        "niqe_blocks": len(blocks),
        "niqe_block_features": blocks,
        "planes": planes,
    }


def each_metric(rgb: NDArray[np.uint8], params: NSSParams) -> tuple[dict[str, float], dict[str, str]]:
    """BRISQUE and NIQE computed independently: ``(values, reasons)`` where each metric that cannot be computed
    has *its own* reason. The backend falls back to this when the joint pass (:func:`nss_features`) fails, so that
    a NIQE size limit does not cost the image its BRISQUE value, nor give BRISQUE a reason about NIQE (and vice
    versa). A flat image still raises :class:`MetricError` (both metrics are undefined for the same reason)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MetricError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    y = nm.luma(rgb)
    _check_not_flat(y)
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if min(h, w) < BRISQUE_MIN_SIDE:
            reasons["brisque"] = (
                f"BRISQUE needs an image of at least {BRISQUE_MIN_SIDE}×{BRISQUE_MIN_SIDE} pixels (7-px local "
                f"windows at full and half size); this one is {w}×{h}"
            )
        else:
            bfeat = brisque_features(y)
            value = brisque_score(bfeat, params) if np.all(np.isfinite(bfeat)) else np.nan
            if np.isfinite(value):
                values["brisque"] = float(value)
            else:
                reasons["brisque"] = (
                    "BRISQUE is undefined for this image: its local-contrast statistics have an empty side (the "
                    "image is almost flat)"
                )
        if min(h, w) < NIQE_BLOCK:
            reasons["niqe"] = (
                f"NIQE needs an image of at least {NIQE_BLOCK}×{NIQE_BLOCK} pixels (it scores 96-px blocks); "
                f"this one is {w}×{h}"
            )
        else:
            try:
                niqe, _ = niqe_score(niqe_block_features(y), params)
            except MetricError as exc:
                reasons["niqe"] = str(exc)
            else:
                if np.isfinite(niqe):
                    values["niqe"] = niqe
                else:
                    reasons["niqe"] = "NIQE is undefined for this image: its distance to the pristine model is infinite"
    return values, reasons


# ----------------------------------------------------------------------------------------------------
# the backend
# ----------------------------------------------------------------------------------------------------
class NSSBackend(Backend):
    """BRISQUE and NIQE from one pass (see the module docstring). No torch, no download.

    ``ctx.options["nss_threads"]`` (default 2): with 2 or more, NIQE runs in a worker thread while the calling
    thread computes BRISQUE (numpy and OpenCV release the GIL); 1 computes both in the calling thread.
    ``compute`` keeps no per-call state, so it can be called from several threads at once.
    """

    uses_torch = False

    def __init__(self) -> None:
        super().__init__()
        self._params: NSSParams | None = None
        self._pool: ThreadPoolExecutor | None = None

    def load(self, ctx: LoadContext) -> None:
        self._params = load_params(ctx.weights)
        nm.tables()  # read the shipped ratio tables now rather than on the first image
        threads = ctx.options.get("nss_threads", 2)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise MetricError(f"option nss_threads must be a positive integer, got {threads!r}")
        if threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(threads - 1, os.cpu_count() or 1),
                                            thread_name_prefix="nss")

    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        return self.compute_detailed(image, prompt)[0]

    def compute_detailed(self, image: PreparedImage, prompt: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        """The scores, plus ``{"nss": nss_features(...), "shape": (H, W, 3)}`` of the pixels scored (the
        calibration step reuses them when it works on the same pixels)."""
        if self._params is None:
            raise MetricError("the nss backend was used before load(): call load() once first")
        try:
            result = nss_features(image.rgb, self._params, pool=self._pool)
        except MetricError as exc:
            values, reasons = each_metric(image.rgb, self._params)
            if not reasons:  # the joint pass failed where each alone succeeds: report the joint reason
                reasons = {m: str(exc) for m in self.metrics}
                values = {}
            raise PartialMetricError(values, reasons) from exc
        values = {"brisque": float(result["brisque"]), "niqe": float(result["niqe"])}
        return values, {"nss": result, "shape": tuple(image.rgb.shape), "params": self._params}

    def versions(self) -> dict[str, str]:
        if self._params is None:
            return {}
        return {
            "brisque": f"{IMPL_VERSION} svm sha256:{self._params.svm_sha256[:8]}",
            "niqe": f"{IMPL_VERSION} pristine sha256:{self._params.niqe_sha256[:8]}",
        }
