"""The calibration model file: reading, writing, and scoring one image with it.

File: one ``.npz`` (``allow_pickle=False``) holding ``meta`` (a JSON string: identity, feature list, members, scale,
dataset hashes, seed, cross-validated figures) and the arrays of the codebooks (``cb.<family>.matrix``/``offset``)
and of the members (``m<i>.<field>``, see :mod:`.runtime`). The shipped model is
``quality/data/calibration.npz``; :func:`load_default` reads it once per process.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quality.backends import nss_math as nm
from quality.backends.nss import NSSParams
from quality.calibration.features import extract, shared_planes
from quality.calibration.patches import Codebook, family_patches
from quality.calibration.runtime import F64, Arrays, KernelSVR, PairwiseRanker, Predictor, Scale, TreeEnsemble
from quality.errors import ConfigError

FORMAT = "comfy-quality-calibration/1"
DEFAULT_FILE = "calibration.npz"
#: the members of this pseudo-dimension predict damage severity (0–1), not a human score (:meth:`scores_of`)
DAMAGE_HEAD = "damage"
#: the member of this pseudo-dimension is a ranking function learned from damage orderings (:meth:`scores_of`)
RANKING_HEAD = "ranking"
#: the member kind of each predictor class in the file
KINDS: dict[str, type[TreeEnsemble] | type[KernelSVR] | type[PairwiseRanker]] = {
    "trees": TreeEnsemble, "svr": KernelSVR, "ranker": PairwiseRanker}  # fmt: skip


def soft_floor(v: F64) -> F64:
    """``v`` above 1; ``exp(v - 1)`` below: continuous, strictly increasing, always above 0."""
    v = np.asarray(v, np.float64)
    return np.asarray(np.where(v >= 1.0, v, np.exp(np.minimum(v, 1.0) - 1.0)), np.float64)


def ranking_gain(r: F64) -> F64:
    """``r`` below 0, ``log(1 + r)`` above: strictly increasing, but an image the ranking term sees as far cleaner
    than the rated images gains little (the term is there to make damage cost, not to lift outliers)."""
    r = np.asarray(r, np.float64)
    return np.asarray(np.where(r <= 0.0, r, np.log1p(np.maximum(r, 0.0))), np.float64)


def soft_ceiling(v: F64) -> F64:
    """``v`` below 9; ``10 - exp(9 - v)`` above: continuous, strictly increasing, always below 10."""
    v = np.asarray(v, np.float64)
    return np.asarray(np.where(v <= 9.0, v, 10.0 - np.exp(9.0 - np.maximum(v, 9.0))), np.float64)


@dataclass(frozen=True)
class Member:
    dimension: str
    kind: str
    """"trees", "svr" or "ranker" (:data:`KINDS`)"""
    codebook: str
    """patch-codebook family whose encoding the member reads after the features ("" for none)"""
    predictor: Predictor
    inputs: tuple[str, ...] | None = None
    """the handcrafted features the member reads, in order (``None``: all of the model's)"""


@dataclass(frozen=True)
class CalibrationModel:
    meta: dict[str, Any]
    codebooks: dict[str, Codebook]
    members: tuple[Member, ...]
    scale: Scale
    sha256: str = ""
    path: str = ""

    # -- description ------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta.get("name", "unnamed"))

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    @property
    def dimensions(self) -> dict[str, list[str]]:
        """dimension → the raw metrics whose spec-table mapping it replaces."""
        return {d: list(v["covers"]) for d, v in self.meta["dimensions"].items()}

    @property
    def requires(self) -> list[str]:
        """Raw metrics that must have run for the model to apply (its features include theirs)."""
        return list(self.meta.get("requires", []))

    @property
    def working_side(self) -> int:
        return int(self.meta.get("working_side", 512))

    def identity(self) -> str:
        cv = self.meta.get("cv", {})
        figures = ", ".join(
            f"{split} SROCC {cv[split]['composite']:.3f}" for split in ("kfold5", "logo") if split in cv
        )
        return f"{self.name} sha256:{self.sha256[:12]}" + (f" ({figures})" if figures else "")

    def features_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.feature_names).encode()).hexdigest()

    # -- prediction -------------------------------------------------------------------------------------------
    def predict_mos(self, base: F64, encodings: dict[str, F64]) -> dict[str, F64]:
        """Mean predicted MOS per dimension for ``n`` images: ``base`` is ``(n, features)`` in
        :attr:`feature_names` order, ``encodings[family]`` is ``(n, 4K)``."""
        base = np.atleast_2d(np.asarray(base, np.float64))
        sums: dict[str, F64] = {}
        counts: dict[str, int] = {}
        index = {n: i for i, n in enumerate(self.feature_names)}
        for m in self.members:
            x = base if m.inputs is None else base[:, [index[n] for n in m.inputs]]
            if m.codebook:
                x = np.hstack([x, np.atleast_2d(encodings[m.codebook])])
            sums[m.dimension] = sums.get(m.dimension, 0.0) + m.predictor.predict(x)
            counts[m.dimension] = counts.get(m.dimension, 0) + 1
        return {d: sums[d] / counts[d] for d in sums}

    def encode(self, rgb: NDArray[np.uint8], y: NDArray[np.float32] | None = None) -> dict[str, F64]:
        """Codebook encodings of a working-size image (``y``: its luma, if the caller has it)."""
        y = nm.luma(rgb) if y is None else y
        return {f: cb.encode(family_patches(f, rgb, y)) for f, cb in self.codebooks.items()}

    def base_vector(self, features: dict[str, float]) -> F64:
        try:
            return np.array([features[n] for n in self.feature_names], dtype=np.float64)
        except KeyError as exc:
            raise ConfigError(
                f"calibration model {self.name} needs feature {exc.args[0]!r}, which this version does not compute: "
                "refit it (python -m quality.calibration fit DATASET_DIR) or upgrade comfy-quality"
            ) from None

    def score(self, rgb: NDArray[np.uint8], nss: dict[str, Any] | None = None, params: NSSParams | None = None,
              source: NDArray[np.uint8] | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """``({dimension: 0–10 score}, {dimension: predicted MOS})`` of a working-size image (the second mapping
        also holds ``"damage"``, the damage head's predicted severity, when the model has one).

        ``nss``: :func:`quality.backends.nss.nss_features` of exactly these pixels, if already computed;
        ``source``: the image ``rgb`` was reduced from, if it was (:func:`.features.extract`). Raises
        :class:`quality.errors.MetricError` where the features are undefined (flat or tiny images) and
        ``ValueError`` if a feature is not finite.
        """
        planes = shared_planes(rgb, nss)
        feats = extract(rgb, nss, params, planes=planes, source=source)
        base = self.base_vector(feats)
        if not np.all(np.isfinite(base)):
            bad = [n for n, v in zip(self.feature_names, base, strict=True) if not np.isfinite(v)]
            raise ValueError(f"calibration features are undefined for this image: {', '.join(bad[:5])}")
        encodings = self.encode(rgb, planes.luma()) if self.codebooks else {}
        pred = self.predict_mos(base[None, :], encodings)
        scores = self.scores_of(pred)
        return {d: round(float(v[0]), 4) for d, v in scores.items()}, {d: float(v[0]) for d, v in pred.items()}

    @property
    def integrity(self) -> tuple[float, float] | None:
        """``(weight, threshold)`` of the damage-integrity penalty (``None``: the model has no damage head, its
        scores are the human-aligned part alone)."""
        spec = self.meta.get("integrity")
        return None if not spec else (float(spec["weight"]), float(spec["threshold"]))

    @property
    def severity_cap(self) -> float | None:
        """The damage head's severity is capped here before the penalty (``None``: no cap; models fitted before the
        cap have none): near the top of its range the head's trees flatten out and its reading of the heaviest
        copies is noise, not information."""
        spec = self.meta.get("integrity") or {}
        return None if spec.get("cap") is None else float(spec["cap"])

    @property
    def ranking(self) -> float | None:
        """Score points per unit of the ranking term (``None``: the model has none)."""
        spec = self.meta.get("ranking")
        return None if not spec else float(spec["weight"])

    @property
    def ranking_slope(self) -> tuple[float, float]:
        """``(slope, knee)``: below ``knee`` every unit of the ranking term costs ``slope`` points more (``(0, 0)``:
        none; models fitted before it have none)."""
        spec = self.meta.get("ranking") or {}
        return float(spec.get("slope") or 0.0), float(spec.get("knee") or 0.0)

    def ranking_points(self, ranking: F64) -> F64:
        """Score points of the ranking term: ``r·ranking_gain(ranking) + slope·min(0, ranking - knee)``
        (:attr:`ranking`, :attr:`ranking_slope`); strictly increasing. 0 for a model without a ranking term."""
        r = np.asarray(ranking, np.float64)
        slope, knee = self.ranking_slope
        return np.asarray((self.ranking or 0.0) * ranking_gain(r) + slope * np.minimum(0.0, r - knee), np.float64)

    def scores_of(self, pred: dict[str, F64]) -> dict[str, F64]:
        """0–10 scores of the calibrated dimensions from :meth:`predict_mos`'s output.

        ``human = scale(predicted MOS)``; with a damage head (``pred["damage"]``: predicted severity, 0 as made,
        1 at the heaviest damage of :mod:`quality.distortions`) and :attr:`integrity` ``(w, t)``,
        ``v = human - 10·w·max(0, min(severity, cap) - t)`` (``cap``: :attr:`severity_cap`, none if the model has
        none): images the head sees as (nearly) undamaged keep their human-aligned score, damage beyond ``t`` pulls
        it down steeply. With a ranking term (``pred["ranking"]``,
        0 on average over the rated training images, one unit per standard deviation among them) and
        :attr:`ranking` ``r``, ``v += r·ranking_gain(ranking) + slope·min(0, ranking - knee)``
        (:attr:`ranking_slope`): every damage moves it, light or heavy, it has no floor (:func:`ranking_gain` only
        compresses it above 0), and far below the rated images it counts more.
        ``score = soft_floor(v)``: scores below 1 stay positive and strictly ordered (``exp(v - 1)``) instead of
        clamping to 0; with a ranking term the top is :func:`soft_ceiling` too (``10 - exp(9 - v)`` above 9),
        otherwise scores are clamped at 10.
        """
        spec = self.integrity if DAMAGE_HEAD in pred else None
        rank = self.ranking if RANKING_HEAD in pred else None
        penalty: F64 | float = 0.0
        if spec is not None:
            severity = np.asarray(pred[DAMAGE_HEAD], np.float64)
            if self.severity_cap is not None:
                severity = np.minimum(severity, self.severity_cap)
            penalty = 10.0 * spec[0] * np.maximum(0.0, severity - spec[1])
        gain = None if rank is None else self.ranking_points(pred[RANKING_HEAD])
        out: dict[str, F64] = {}
        for d, v in pred.items():
            if d in (DAMAGE_HEAD, RANKING_HEAD):
                continue
            score = np.asarray(self.scale(v), np.float64) - penalty
            if gain is not None:
                score = soft_ceiling(score + gain)
            if spec is not None or gain is not None:
                score = soft_floor(score)
            out[d] = np.asarray(np.minimum(score, 10.0), np.float64)
        return out

    # -- file -------------------------------------------------------------------------------------------------
    def arrays(self) -> Arrays:
        out: Arrays = {}
        for f, cb in self.codebooks.items():
            out[f"cb.{f}.matrix"] = cb.matrix
            out[f"cb.{f}.offset"] = cb.offset
        for i, m in enumerate(self.members):
            out.update(m.predictor.arrays(f"m{i}"))
        return out

    def to_bytes(self) -> bytes:
        meta = dict(self.meta)
        meta["format"] = FORMAT
        meta["members"] = [
            {"dimension": m.dimension, "kind": m.kind, "codebook": m.codebook}
            | ({} if m.inputs is None else {"inputs": list(m.inputs)})
            for m in self.members
        ]
        meta["codebooks"] = {f: cb.size for f, cb in self.codebooks.items()}
        meta["scale"] = {**meta.get("scale", {}), "mos": list(self.scale.mos), "score": list(self.scale.score)}
        arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **self.arrays()}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, arr in arrays.items():  # fixed timestamps: the same model gives the same bytes
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
        return buf.getvalue()

    def save(self, path: Path) -> str:
        data = self.to_bytes()
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()


def from_bytes(data: bytes, source: str = "<bytes>") -> CalibrationModel:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays: Arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("meta").item()))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        codebooks = {
            f: Codebook(
                f, np.asarray(arrays[f"cb.{f}.matrix"], np.float32), np.asarray(arrays[f"cb.{f}.offset"], np.float32)
            )
            for f in meta["codebooks"]
        }
        members = []
        for i, spec in enumerate(meta["members"]):
            kind = spec["kind"]
            if kind not in KINDS:
                raise ValueError(f"member {i} is of unknown kind {kind!r} (this version reads {', '.join(KINDS)})")
            predictor: Predictor = KINDS[kind].from_arrays(arrays, f"m{i}")
            inputs = spec.get("inputs")
            members.append(Member(spec["dimension"], kind, spec["codebook"], predictor,
                                  None if inputs is None else tuple(str(n) for n in inputs)))  # fmt: skip
        scale = Scale(tuple(meta["scale"]["mos"]), tuple(meta["scale"]["score"]))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{source} is not a readable calibration model ({exc}); refit it with "
            "`python -m quality.calibration fit DATASET_DIR` or set COMFY_QUALITY_CALIBRATION=false"
        ) from exc
    return CalibrationModel(meta, codebooks, tuple(members), scale, hashlib.sha256(data).hexdigest(), source)


def load(path: Path) -> CalibrationModel:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the calibration model {path}: {exc}") from exc
    return from_bytes(data, str(path))


@lru_cache(maxsize=1)
def load_default() -> CalibrationModel:
    """The model shipped as package data (read once per process)."""
    ref = resources.files("quality") / "data" / DEFAULT_FILE
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"the shipped calibration model quality/data/{DEFAULT_FILE} is missing ({exc}); reinstall comfy-quality, "
            "or set COMFY_QUALITY_CALIBRATION=false"
        ) from exc
    return from_bytes(data, f"quality/data/{DEFAULT_FILE}")
