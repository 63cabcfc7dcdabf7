"""Fitting the calibration model (development only: needs scikit-learn, ``pip install comfy-quality[dev]``).

The protocol is fixed (nothing below is tuned on the images a figure is reported for):

1. every image is decoded like the scorer does, reduced to the working size, and gives its handcrafted
   features (:mod:`.features`); images whose features are undefined (flat, failed generations) are left out and
   listed; :data:`HOLDOUT_IMAGES` images (balanced over generators) are kept out of everything, for the ladder
   check on held-out AI images;
2. damage ladders (:mod:`.ladders`, :mod:`quality.distortions`): :data:`LADDER_IMAGES` fit images get
   4 damaged copies per kind (13 kinds); a copy at severity ``s`` is a row whose target is
   ``mos - s * (mos - floor)``, below its original and below every weaker copy (the free orderings: a distorted
   copy is worse than its original, a stronger distortion worse than a weaker one); all damaged rows together
   weigh as much as the human-scored rows. One more ladder per image, resolution loss at whole factors
   (:data:`.ladders.WHOLE_FACTOR_KIND`), teaches the damage head and the ranking term only;
3. per fit set: four members predicting ``mos_quality`` — technical: boosted trees and an RBF SVR on all
   handcrafted features; detail: the same two on the sharpness / noise / texture / NSS subset
   (:data:`FEATURE_SUBSETS`). A dimension is the mean of its members. Two more members, the *damage head*
   (boosted trees and an SVR on all features), predict damage severity (0 as made, 1 heaviest) from the fit
   images' ladders and the natural-photo ladders of :mod:`.damage` (:func:`integrity_rows`); a score is
   ``scale(MOS) - 10 * INTEGRITY_WEIGHT * max(0, min(severity, INTEGRITY_CAP) - INTEGRITY_THRESHOLD)`` plus the
   *ranking term*: a linear function of the robust-scaled features and their squares, fitted by pairwise logistic
   regression on every ordering within every ladder of the same images (:func:`fit_ranker`,
   :func:`ranking_pairs`), standardised over the rated images and weighted :data:`RANKING_WEIGHT` points per unit
   (compressed above 0; :data:`RANKING_SLOPE` more below :data:`RANKING_KNEE`); the sum goes through
   ``soft_ceiling`` and ``soft_floor``
   (:meth:`.model.CalibrationModel.scores_of`): heavy damage pulls
   the score down steeply, every damage, light or heavy, moves the ranking term. (Patch codebooks, used before the
   damage ladders, are still supported by the model format but no member reads one: with damage in training they did
   not raise agreement, and they cost most of the scoring time);
4. the 0–10 scale: the composite's grade boundaries are placed at fixed percentiles of the fit images' human
   scores (:data:`SCALE_PERCENTILES`): a grade says where people would rank the image; below the lowest human
   score the scale runs on to 0 at the damage floor minus :data:`SCALE_BOTTOM_MARGIN`, so heavy damage keeps
   distinct, low scores instead of a clamped 0.

:func:`cross_validate` runs 3–4 on each training split (with the ladders of its training images only) and
predicts its held-out images and their ladders: every image is scored by a model that never saw it nor any
damaged copy of it. Seeds are fixed; scikit-learn's version is recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quality.backends import nss_math as nm
from quality.calibration.features import FEATURES_VERSION, WORKING_SIDE, extract
from quality.calibration.ladders import (
    FIT_KINDS,
    STEPS,
    WHOLE_FACTOR_KIND,
    WHOLE_FACTORS,
    LadderCache,
    Ladders,
    balanced,
)
from quality.calibration.ladders import compute as compute_ladders
from quality.calibration.model import DAMAGE_HEAD, RANKING_HEAD, CalibrationModel, Member
from quality.calibration.parallel import parallel_map
from quality.calibration.patches import Codebook, family_patches, sample_patches
from quality.calibration.runtime import (
    F64,
    KernelSVR,
    PairwiseRanker,
    QuantileNormal,
    RobustScaler,
    Scale,
    TreeEnsemble,
)
from quality.distortions import KINDS
from quality.errors import ConfigError, QualityError

log = logging.getLogger(__name__)

SEED = 0
CODEBOOK_SIZE = 200
SAMPLES_PER_IMAGE = 200
WHITENING_EPS = 0.01
#: (human-score percentile of the fit images, 0–10 score): 0 at the lowest human score, F/D boundary (3.0) at
#: the 20th percentile, D/C (5.0) at the median, C/B (6.5) at the 75th, B/A (8.0) at the 90th, 10 at the highest
#: (since the damage-ladder refit the lowest human score maps to 1.5, and the damage floor minus 0.5 to 0: a
#: heavily damaged copy scores below the worst generated image people rated)
SCALE_PERCENTILES: tuple[tuple[float, float], ...] = ((0, 1.5), (20, 3.0), (50, 5.0), (75, 6.5), (90, 8.0), (100, 10.0))
SCALE_BOTTOM_MARGIN = 0.5
#: (dimension, member kind, codebook family or "" for none, feature subset or "" for all handcrafted features).
#: Patch codebooks are not used since the damage-ladder refit: with damaged copies in training they no longer
#: raised agreement, and their encoding cost most of the calibration's scoring time. The re-encoding features
#: (subset ``encode``) are read by the ranking term only: in the human-aligned part and the damage head they moved
#: ladders between the photos and the AI images (README: re-encoding features).
MEMBERS: tuple[tuple[str, str, str, str], ...] = (
    ("technical", "trees", "", "-encode"), ("technical", "svr", "", "-encode"),
    ("detail", "trees", "", "detail"), ("detail", "svr", "", "detail"),
    (DAMAGE_HEAD, "trees", "", "-encode"), (DAMAGE_HEAD, "svr", "", "-encode"),
    (RANKING_HEAD, "ranker", "", ""),
)  # fmt: skip
#: feature-name prefixes of the subsets members may read; ``"-name"`` reads every feature but subset ``name``'s
FEATURE_SUBSETS: dict[str, tuple[str, ...]] = {
    "encode": ("enc_",),
    "detail": ("lap_", "grad_", "local_sharp", "flat_blocks", "down_loss", "spec_", "noise", "block_", "canny", "lbp",
               "orient_", "bq", "brisque", "niqe", "local_niqe", "block_contrast", "luma_", "clip_", "halo", "level_"),
}  # fmt: skip
#: damage ladders: this many fit images (balanced over generators) get :data:`.ladders.STEPS` damaged copies per
#: kind of :mod:`quality.distortions`; a copy at severity s gets the target ``mos - s * (mos - floor)``, floor =
#: the lowest human score of the fit images minus :data:`DAMAGE_FLOOR_MARGIN`; all damaged rows together weigh
#: :data:`DAMAGE_WEIGHT` times the human-scored rows.
LADDER_IMAGES = 110
DAMAGE_FLOOR_MARGIN = 1.0
DAMAGE_WEIGHT = 1.0
#: the SVR members see a fixed random subset of this many damaged rows (the trees see them all)
SVR_DAMAGE_ROWS = 2000
#: the damage-integrity penalty on the technical and detail scores (:meth:`.model.CalibrationModel.scores_of`):
#: ``10 * weight * max(0, min(severity, cap) - threshold)`` points; chosen by measurement (README: the trade-off)
INTEGRITY_WEIGHT = 0.75
INTEGRITY_THRESHOLD = 0.5
#: the damage head's severity is capped here before the penalty: near the top of its range its trees flatten out,
#: and what they read between the two heaviest copies is noise (README: measured; one photo ladder more, nothing
#: else measured worse but one leave-one-generator-out ladder)
INTEGRITY_CAP = 0.9
#: the damage head's members: more trees (a simpler target with many rows), a finer SVR tube, more SVR rows
DAMAGE_TREE_PARAMS: dict[str, Any] = {"max_iter": 400}
DAMAGE_SVR_EPSILON = 0.02
DAMAGE_SVR_ROWS = 4000
#: the damage head also learns from natural-photo ladders (:mod:`.damage`; ``fit --no-natural-ladders`` turns it off)
NATURAL_LADDERS = True
#: the ranking term (:class:`.runtime.PairwiseRanker`, :meth:`.model.CalibrationModel.scores_of`): score points
#: per standard deviation of the ranker among the rated training images, and the inverse L2 strength of its
#: logistic pairwise fit; chosen by measurement (README: the trade-off)
RANKING_WEIGHT = 0.5
RANKING_C = 0.03
#: below ``RANKING_KNEE`` (an image the ranking term sees as a standard deviation worse than the rated images, or
#: more) each unit of the ranking term costs ``RANKING_SLOPE`` points more: where the human-aligned part and the
#: damage head have flattened out (heavy damage), the ranking term, which has no floor, orders the copies
RANKING_SLOPE = 0.75
RANKING_KNEE = -1.0
#: AGIQA images kept out of every fit (balanced over generators): the ladder check's held-out AI images
HOLDOUT_IMAGES = 30
DIMENSIONS: dict[str, dict[str, list[str]]] = {
    "technical": {"covers": ["brisque", "niqe"]},
    "detail": {"covers": ["edge_density"]},
}
REQUIRES = ["brisque", "niqe"]
TREE_PARAMS: dict[str, Any] = {"max_iter": 250, "learning_rate": 0.06, "max_leaf_nodes": 15, "min_samples_leaf": 20,
                               "l2_regularization": 1.0, "early_stopping": False}  # fmt: skip
SVR_PARAMS: dict[str, Any] = {"C": 1.0, "epsilon": 0.1}
QUANTILE_LEVELS = 200


class CalibrationFitError(QualityError):
    """Fitting cannot proceed (missing dev dependency, too few usable images...)."""


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CalibrationFitError(
            "fitting the calibration needs scikit-learn: pip install 'comfy-quality[dev]' (or pip install scikit-learn)"
        ) from exc
    return sklearn


# ----------------------------------------------------------------------------------------------------
# per-image inputs
# ----------------------------------------------------------------------------------------------------
@dataclass
class Record:
    """What fitting needs of one image (no model-dependent part)."""

    name: str
    path: str
    mos: float
    group: str
    features: dict[str, float] | None = None
    samples: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    error: str | None = None
    prompt: str | None = None
    ladders: Ladders | None = None
    """features of damaged copies (:mod:`.ladders`), for the images chosen to carry ladders"""

    @property
    def usable(self) -> bool:
        return self.features is not None and all(np.isfinite(v) for v in self.features.values())


def working_rgb(path: str, side: int = WORKING_SIDE) -> NDArray[np.uint8]:
    """Decode like the scorer (:func:`quality.image_io.load_image`) and reduce to the working size."""
    from quality.image_io import load_image

    return load_image(path).fit(side)


def families_used() -> list[str]:
    """The codebook families some member of the protocol reads."""
    return sorted({m[2] for m in MEMBERS if m[2]})


def subset_names(subset: str, names: Sequence[str]) -> tuple[str, ...] | None:
    """The feature names of ``subset`` (``""``: all, returned as ``None``)."""
    if not subset:
        return None
    if subset.startswith("-"):
        left_out = FEATURE_SUBSETS[subset[1:]]
        return tuple(n for n in names if not n.startswith(left_out))
    prefixes = FEATURE_SUBSETS[subset]
    return tuple(n for n in names if n.startswith(prefixes))


def prepare_record(record: Record, seed: int = SEED, cached: dict[str, float] | None = None) -> Record:
    """Fill ``features`` and ``samples`` (or ``error``) of one record (``cached``: its features, known already)."""
    try:
        families = families_used()
        if cached is not None and not families:
            record.features = dict(cached)
            return record
        from quality.image_io import load_image

        decoded = load_image(record.path)
        rgb = decoded.fit(WORKING_SIDE)
        record.features = dict(cached) if cached is not None else extract(rgb, source=decoded.rgb)
        y = nm.luma(rgb)
        record.samples = {
            f: sample_patches(family_patches(f, rgb, y), SAMPLES_PER_IMAGE, seed, record.name) for f in families
        }
    except (QualityError, ValueError) as exc:
        record.features, record.samples, record.error = None, {}, f"{type(exc).__name__}: {exc}"
    return record


def prepare_records(records: Sequence[Record], *, seed: int = SEED, jobs: int = 1,
                    cache: Path | None = None) -> list[Record]:  # fmt: skip
    """Features (and codebook samples) of every record; with ``cache`` (a folder), features computed once are
    kept in ``cache/features.json`` (keyed by the features version and each image's SHA-256) and reused."""
    store: dict[str, Any] = {}
    cache_file = None if cache is None else Path(cache) / "features.json"
    if cache_file is not None and cache_file.is_file():
        store = json.loads(cache_file.read_text())
    keys = [f"{FEATURES_VERSION}:{sha256_file(Path(r.path))}" if cache_file is not None else "" for r in records]
    items = []
    for r, key in zip(records, keys, strict=True):
        hit = store.get(key)
        items.append((r, seed, hit.get("features") if isinstance(hit, dict) else None))
    done: list[Record] = parallel_map(_prepare_one, items, jobs)
    if cache_file is not None:
        before = len(store)
        for r, key in zip(done, keys, strict=True):
            if r.features is not None:
                store[key] = {"name": r.name, "features": r.features}
            elif r.error is not None:  # undefined features are remembered too (they stay undefined)
                store[key] = {"name": r.name, "error": r.error}
        if len(store) != before:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")  # concurrent fits never share a temporary file
            tmp.write_text(json.dumps(store))
            tmp.replace(cache_file)
    return done


def _prepare_one(args: tuple[Record, int, dict[str, float] | None]) -> Record:
    r, seed, cached = args
    return prepare_record(r, seed, cached)


def _ladder_one(args: tuple[str, str, list[str], str | None, list[str]]) -> Ladders:
    name, path, names, cache, kinds = args
    store = None if cache is None else LadderCache(Path(cache) / "ladders")
    key = "" if store is None else store.key(sha256_file(Path(path)), names, kinds, STEPS, 0)
    if store is not None:
        hit = store.load(name, key)
        if hit is not None:
            return hit
    done = compute_ladders(name, working_rgb(path), names, kinds)
    if store is not None:
        store.save(done, key)
    return done


def attach_ladders(records: Sequence[Record], chosen: Sequence[str], *, jobs: int = 1, cache: Path | None = None,
                   kinds: Sequence[str] | None = None) -> None:  # fmt: skip
    """Fill ``ladders`` of the records named in ``chosen`` (usable records only), from ``cache/ladders`` or by
    damaging and measuring the image (≈ 4 s per image and core)."""
    by_name = {r.name: r for r in records if r.usable}
    todo = [by_name[n] for n in chosen if n in by_name]
    if not todo:
        return
    names = list(todo[0].features or {})
    kind_list = list(kinds or FIT_KINDS)
    work = [(r.name, r.path, names, None if cache is None else str(cache), kind_list) for r in todo]
    for r, lad in zip(todo, parallel_map(_ladder_one, work, jobs), strict=True):
        r.ladders = lad


def damage_rows(records: Sequence[Record], idx: Iterable[int], floor: float, kinds: Collection[str] = tuple(KINDS),
                ) -> tuple[F64, F64]:  # fmt: skip
    """Rows and targets of the damaged copies of ``records[idx]``: a copy at severity ``s`` of an image with human
    score ``mos`` gets ``mos - s * (mos - floor)`` (so a stronger damage always has a lower target). ``kinds``:
    the ladder check's by default; the whole-factor ladder teaches the damage head and the ranking term only (in
    the human-aligned members too it cost more photo ladders than it gained: README)."""
    xs: list[F64] = []
    ts: list[F64] = []
    for i in idx:
        lad = records[i].ladders
        if lad is None:
            continue
        lad = lad.only(kinds)
        feats = lad.features.reshape(-1, lad.features.shape[-1])
        sev = lad.severity.reshape(-1)
        ok = np.isfinite(feats).all(axis=1)
        xs.append(feats[ok])
        ts.append(records[i].mos - sev[ok] * (records[i].mos - floor))
    if not xs:
        return np.empty((0, 0)), np.empty(0)
    return np.concatenate(xs), np.concatenate(ts)


def holdout_names(records: Sequence[Record], n: int) -> list[str]:
    """``n`` usable images kept out of every fit (balanced over groups, reproducible)."""
    return balanced([r.name for r in records], [r.group for r in records], n, "heldout") if n > 0 else []


def ladder_names(records: Sequence[Record], n: int) -> list[str]:
    """The ``n`` fit images that get damage ladders (balanced over groups, reproducible)."""
    return balanced([r.name for r in records], [r.group for r in records], n, "ladders") if n > 0 else []


def damage_floor(mos: F64) -> float:
    return float(np.min(mos)) - DAMAGE_FLOOR_MARGIN


_ENCODE_SETS: list[dict[str, Codebook]] = []


def _init_encoder(sets: list[dict[str, Codebook]], single_thread: bool = False) -> None:
    global _ENCODE_SETS
    _ENCODE_SETS = sets
    if single_thread:  # worker processes: one BLAS thread each, or they oversubscribe the cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _encode_one(path: str) -> list[dict[str, F64]]:
    if not any(_ENCODE_SETS):  # no codebooks: nothing to decode
        return [{} for _ in _ENCODE_SETS]
    rgb = working_rgb(path)
    y = nm.luma(rgb)
    patches = {f: family_patches(f, rgb, y) for f in families_used()}
    return [{f: cb.encode(patches[f]) for f, cb in s.items()} for s in _ENCODE_SETS]


def encode_records(
    records: Sequence[Record], sets: list[dict[str, Codebook]], *, jobs: int = 1
) -> list[dict[str, F64]]:
    """For every codebook set, ``{family: (n_records, 4K)}``: each image is decoded once for all sets."""
    if not any(sets):
        return [{} for _ in sets]
    per_image = parallel_map(_encode_one, [r.path for r in records], jobs, _init_encoder, (sets, jobs > 1))
    return [{f: np.stack([img[i][f] for img in per_image]) for f in s} for i, s in enumerate(sets)]


# ----------------------------------------------------------------------------------------------------
# the pieces of a model
# ----------------------------------------------------------------------------------------------------
def learn_codebook(family: str, samples: Sequence[NDArray[np.float32]], *, size: int | None = None,
                   seed: int = SEED) -> Codebook:  # fmt: skip
    """ZCA whitening + k-means (scikit-learn ``MiniBatchKMeans``) on the given patch samples."""
    from sklearn.cluster import MiniBatchKMeans

    size = CODEBOOK_SIZE if size is None else size
    x = np.concatenate(list(samples)).astype(np.float64)
    if len(x) < size:
        raise CalibrationFitError(f"{len(x)} patches are too few to learn {size} codewords; give more images")
    mu = x.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    whiten = evecs @ np.diag(1.0 / np.sqrt(np.maximum(evals, 0.0) + WHITENING_EPS)) @ evecs.T
    km = MiniBatchKMeans(n_clusters=size, random_state=seed, n_init=3, batch_size=4096).fit((x - mu) @ whiten)
    words = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-12)
    matrix = whiten @ words.T
    return Codebook(family, matrix.astype(np.float32), (mu @ matrix).astype(np.float32))


def fit_trees(x: F64, y: F64, seed: int = SEED, weight: F64 | None = None,
              params: dict[str, Any] | None = None) -> tuple[TreeEnsemble, Callable[[F64], F64]]:  # fmt: skip
    """The exported trees and scikit-learn's own predict function (for the fit-time check values)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(random_state=seed, **{**TREE_PARAMS, **(params or {})})
    model.fit(x, y, sample_weight=weight)
    return export_trees(model), model.predict


def export_trees(model: Any) -> TreeEnsemble:
    """Flatten a fitted ``HistGradientBoostingRegressor`` (numeric features only) into a :class:`TreeEnsemble`."""
    nodes = [p.nodes for it in model._predictors for p in it]
    if any(n["is_categorical"].any() for n in nodes):
        raise CalibrationFitError("categorical splits are not supported by the calibration runtime")
    offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
    allnodes = np.concatenate(nodes)
    shift = np.concatenate([np.full(len(n), o) for n, o in zip(nodes, offsets, strict=True)])
    return TreeEnsemble(
        feature=allnodes["feature_idx"].astype(np.int32),
        threshold=allnodes["num_threshold"].astype(np.float64),
        left=(allnodes["left"] + shift).astype(np.int32),
        right=(allnodes["right"] + shift).astype(np.int32),
        is_leaf=allnodes["is_leaf"].astype(bool),
        missing_left=allnodes["missing_go_to_left"].astype(bool),
        value=allnodes["value"].astype(np.float64),
        roots=offsets.astype(np.int32),
        baseline=float(np.ravel(model._baseline_prediction)[0]),
        depth=int(allnodes["depth"].max()) + 1,
    )


def fit_svr(x: F64, y: F64, weight: F64 | None = None,
            params: dict[str, Any] | None = None) -> tuple[KernelSVR, Callable[[F64], F64]]:  # fmt: skip
    """The exported SVR and a fit-time predict function (scikit-learn's SVR on the transformed inputs)."""
    from sklearn.svm import SVR

    transform = QuantileNormal.fit(x, QUANTILE_LEVELS)
    z = transform(x)
    gamma = 1.0 / (z.shape[1] * float(z.var()) or 1.0)
    svr = SVR(kernel="rbf", gamma=gamma, **{**SVR_PARAMS, **(params or {})}).fit(z, y, sample_weight=weight)
    exported = KernelSVR(transform, svr.support_vectors_.astype(np.float64), svr.dual_coef_.ravel().astype(np.float64),
                         float(svr.intercept_[0]), gamma)  # fmt: skip
    return exported, lambda v: np.asarray(svr.predict(transform(v)), np.float64)


def fit_ranker(rated: F64, better: F64, worse: F64) -> PairwiseRanker:
    """A linear ranking function of the robust-scaled features and their squares, fitted by logistic regression
    on the differences of ordered pairs (``better[i]`` above ``worse[i]``, each pair also given reversed, no
    intercept: RankNet's objective for a linear score); ``offset`` and ``unit`` standardise it over ``rated``."""
    from sklearn.linear_model import LogisticRegression

    scaler = RobustScaler.fit(np.vstack([rated, better, worse]))

    def expand(x: F64) -> F64:
        z = scaler(x)
        return np.hstack([z, z * z])

    diff = expand(better) - expand(worse)
    lr = LogisticRegression(C=RANKING_C, fit_intercept=False, max_iter=3000)
    lr.fit(np.vstack([diff, -diff]), np.r_[np.ones(len(diff)), np.zeros(len(diff))])
    weights = np.asarray(lr.coef_[0], np.float64)
    raw = expand(rated) @ weights
    unit = float(raw.std()) or 1.0
    return PairwiseRanker(scaler, weights, float(raw.mean()), unit)


def fit_scale(mos: F64, floor: float | None = None) -> Scale:
    """Grade boundaries at human-score percentiles; with a damage ``floor``, 0 at ``floor - SCALE_BOTTOM_MARGIN``
    (below the lowest human score, where the heaviest damage lands) so damaged copies keep distinct scores."""
    anchors = [(float(np.percentile(mos, p)), s) for p, s in SCALE_PERCENTILES]
    if floor is not None:
        anchors.insert(0, (floor - SCALE_BOTTOM_MARGIN, 0.0))
    clean: list[tuple[float, float]] = []
    for m, s in anchors:  # ties (tiny fit sets) would make the map non-increasing: keep the first of equal MOS
        if not clean or m > clean[-1][0]:
            clean.append((m, s))
    if len(clean) < 2:
        raise CalibrationFitError("the human scores of the fit images are all equal: nothing to calibrate on")
    return Scale(tuple(m for m, _ in clean), tuple(s for _, s in clean))


def fit_model(base: F64, encodings: dict[str, F64], mos: F64, codebooks: dict[str, Codebook], *,
              seed: int = SEED, meta: dict[str, Any] | None = None, check: dict[str, int] | None = None,
              damage: tuple[F64, F64] | None = None,
              integrity: tuple[F64, F64] | None = None,
              ranking: tuple[F64, F64] | None = None) -> CalibrationModel:  # fmt: skip
    """Fit the members on ``base`` (n, F) + ``encodings`` of the given images (nothing else), and on ``damage``:
    rows of damaged copies of some of them with their targets (:func:`damage_rows`; members that read codebook
    encodings cannot use them). ``integrity``: rows and severities for the damage head (:func:`integrity_rows`);
    without them the model has no damage head and its scores are the human-aligned part alone. ``ranking``:
    ``(better, worse)`` rows of ordered pairs for the ranking term (:func:`ranking_pairs`); without them, none.

    ``check``: image name → row; for those images the model records, in ``meta["check"]``, the per-dimension
    MOS that scikit-learn's fitted estimators predict from the fit-time features: a later load of the file,
    given the same image, must reproduce them (tests do).
    """
    _sklearn()
    members = []
    fit_time: dict[str, list[F64]] = {}
    rows = list((check or {}).values())
    names = list((meta or {}).get("feature_names") or [])
    has_damage = damage is not None and len(damage[1]) > 0
    has_integrity = integrity is not None and len(integrity[1]) > 0
    has_ranking = ranking is not None and len(ranking[0]) > 0
    for dim, kind, family, subset in MEMBERS:
        inputs = subset_names(subset, names) if names else None
        cols = slice(None) if inputs is None else [names.index(n) for n in inputs]
        if dim == RANKING_HEAD:
            if not has_ranking or ranking is None:
                continue
            ranker = fit_ranker(base[:, cols], ranking[0][:, cols], ranking[1][:, cols])
            members.append(Member(dim, kind, family, ranker, inputs))
            if rows:
                fit_time.setdefault(dim, []).append(ranker.predict(base[rows][:, cols]))
            continue
        if dim == DAMAGE_HEAD:
            if not has_integrity or integrity is None:
                continue
            x, y = integrity[0][:, cols], integrity[1]
            if kind == "svr" and len(y) > DAMAGE_SVR_ROWS:
                keep = np.sort(np.random.default_rng(seed).choice(len(y), DAMAGE_SVR_ROWS, replace=False))
                x, y = x[keep], y[keep]
            predictor, predict = (fit_trees(x, y, seed, None, DAMAGE_TREE_PARAMS) if kind == "trees"
                                  else fit_svr(x, y, None, {"epsilon": DAMAGE_SVR_EPSILON}))  # fmt: skip
            members.append(Member(dim, kind, family, predictor, inputs))
            if rows:
                fit_time.setdefault(dim, []).append(predict(base[rows][:, cols]))
            continue
        x = base[:, cols]
        y, weight = mos, None
        if family:
            x = np.hstack([x, encodings[family]])
        elif has_damage and damage is not None:
            dx, dt = damage
            if kind == "svr" and len(dt) > SVR_DAMAGE_ROWS:  # a kernel SVR's cost grows with the square of its rows
                keep = np.sort(np.random.default_rng(seed).choice(len(dt), SVR_DAMAGE_ROWS, replace=False))
                dx, dt = dx[keep], dt[keep]
            x = np.vstack([x, dx[:, cols]])
            y = np.concatenate([mos, dt])
            share = DAMAGE_WEIGHT * len(mos) / len(dt)
            weight = np.concatenate([np.ones(len(mos)), np.full(len(dt), share)])
        predictor, predict = fit_trees(x, y, seed, weight) if kind == "trees" else fit_svr(x, y, weight)
        members.append(Member(dim, kind, family, predictor, inputs))
        if rows:
            fit_time.setdefault(dim, []).append(predict(x[rows]))
    meta = dict(meta or {})
    if check:
        means = {d: np.mean(v, axis=0) for d, v in fit_time.items()}
        meta["check"] = {name: {d: float(means[d][i]) for d in means} for i, name in enumerate(check)}
    if has_integrity:
        meta["integrity"] = {"weight": INTEGRITY_WEIGHT, "threshold": INTEGRITY_THRESHOLD, "cap": INTEGRITY_CAP,
                             "head": DAMAGE_HEAD,
                             "score": "damage penalty = 10 * weight * max(0, min(severity, cap) - threshold)"}
    if has_ranking:
        meta["ranking"] = {
            "weight": RANKING_WEIGHT,
            "slope": RANKING_SLOPE,
            "knee": RANKING_KNEE,
            "head": RANKING_HEAD,
            "score": "soft_floor(soft_ceiling(scale(predicted MOS) - damage penalty"
            " + weight * ranking_gain(ranking) + slope * min(0, ranking - knee)))",
        }
    scale = fit_scale(mos, damage_floor(mos) if has_damage else None)
    return CalibrationModel(meta, dict(codebooks), tuple(members), scale)


#: ``(clean features, its ladders)`` per source image: what the free orderings are made of
LadderPairs = Sequence[tuple[F64, Ladders]]


def ladder_pairs(records: Sequence[Record], idx: Iterable[int], natural: LadderPairs | None = None,
                 ) -> list[tuple[F64, Ladders]]:  # fmt: skip
    """``(clean features, ladders)`` of every ladder image of ``records[idx]``, then ``natural`` (the
    natural-photo ladders of :func:`natural_pairs`)."""
    names = None
    pairs = []
    for i in idx:
        r = records[i]
        if r.ladders is None or r.features is None:
            continue
        names = names or list(r.features)
        pairs.append((np.array([r.features[n] for n in names], np.float64), r.ladders))
    return pairs + list(natural or ())


def integrity_rows(records: Sequence[Record], idx: Iterable[int], natural: LadderPairs | None = None,
                   ) -> tuple[F64, F64]:  # fmt: skip
    """The damage head's rows: every ladder image of ``records[idx]`` and of ``natural`` as made (severity 0) and
    its damaged copies (their severities)."""
    from quality.calibration.damage import integrity_rows as rows_of

    return rows_of(ladder_pairs(records, idx, natural))


def ranking_pairs(records: Sequence[Record], idx: Iterable[int], natural: LadderPairs | None = None,
                  ) -> tuple[F64, F64]:  # fmt: skip
    """The ranking term's ``(better, worse)`` rows: the free orderings within every ladder of ``records[idx]`` and
    of ``natural`` (:func:`.damage.ordered_pairs`)."""
    from quality.calibration.damage import ordered_pairs

    return ordered_pairs(ladder_pairs(records, idx, natural))


def check_rows(records: Sequence[Record], per_group: int = 2) -> dict[str, int]:
    """The first ``per_group`` images of each group in name order: the fit-time check set."""
    chosen: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i in sorted(range(len(records)), key=lambda j: records[j].name):
        g = records[i].group
        if counts.get(g, 0) < per_group:
            chosen[records[i].name] = i
            counts[g] = counts.get(g, 0) + 1
    return chosen


def natural_pairs(names: Sequence[str], *, jobs: int = 1, cache: Path | None = None) -> list[tuple[F64, Ladders]]:
    """The natural-photo ladders of :mod:`.damage` (every fold uses them all; none when :data:`NATURAL_LADDERS`
    is off)."""
    if not NATURAL_LADDERS:
        return []
    from quality.calibration.damage import natural_ladders

    return natural_ladders(names, WORKING_SIDE, jobs=jobs, cache=cache)


# ----------------------------------------------------------------------------------------------------
# splits and cross-validation
# ----------------------------------------------------------------------------------------------------
Split = tuple[NDArray[np.intp], NDArray[np.intp]]


def kfold(n: int, k: int, seed: int = SEED) -> list[Split]:
    if not 2 <= k <= n:
        raise ConfigError(f"--cv {k}: need 2 <= K <= number of images ({n})")
    order = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(order, k)
    return [(np.sort(np.concatenate(folds[:i] + folds[i + 1 :])), np.sort(f)) for i, f in enumerate(folds)]


def leave_one_group_out(groups: Sequence[str]) -> list[Split]:
    labels = np.asarray(groups)
    names = sorted(set(groups))
    if len(names) < 2:
        raise ConfigError("--cv logo needs at least two generators (the labels' generator column)")
    idx = np.arange(len(labels))
    return [(idx[labels != g], idx[labels == g]) for g in names]


@dataclass
class CVResult:
    """Out-of-fold predictions: ``mos[dim][i]`` and ``score[dim][i]`` for usable record ``i``; ``fold[i]``."""

    mos: dict[str, F64]
    score: dict[str, F64]
    fold: NDArray[np.intp]
    seconds: float
    ladders: dict[int, dict[str, F64]] = field(default_factory=dict)
    """record index → dimension → (kinds, 1 + steps) out-of-fold scores of the original and its damaged copies"""


def codebooks_for(records: Sequence[Record], idx: Iterable[int], seed: int) -> dict[str, Codebook]:
    chosen = [records[i] for i in idx]
    return {f: learn_codebook(f, [r.samples[f] for r in chosen], seed=seed) for f in families_used()}


def base_matrix(records: Sequence[Record], names: Sequence[str]) -> F64:
    return np.array([[r.features[n] for n in names] for r in records if r.features is not None], dtype=np.float64)


def cross_validate(records: Sequence[Record], splits: Sequence[Split], *, seed: int = SEED, jobs: int = 1,
                   on_fold: Callable[[int, CalibrationModel, Split], None] | None = None,
                   sets: Sequence[dict[str, Codebook]] | None = None,
                   encoded: Sequence[dict[str, F64]] | None = None,
                   natural: LadderPairs | None = None) -> CVResult:  # fmt: skip
    """Fit on each split's training part only and predict its held-out part. ``records`` must all be usable.

    ``on_fold`` sees each fold's model and split (tests use it to prove no held-out image was fitted on).
    ``natural``: the natural-photo ladders (:func:`natural_pairs`; no AGIQA image among them), used by the damage
    head and the ranking term of every fold beside the training images' own ladders.
    ``sets``/``encoded``: the per-split codebooks (learned on that split's training images) and every record's
    encodings with them, when the caller computed them already (:func:`encode_records` decodes each image once
    for any number of sets).
    """
    started = time.perf_counter()
    if not all(r.usable for r in records):
        raise CalibrationFitError("cross_validate takes usable records only (drop those with an error first)")
    names = list(records[0].features or {})
    base = base_matrix(records, names)
    mos = np.array([r.mos for r in records])
    if sets is None or encoded is None:
        sets = [codebooks_for(records, train, seed) for train, _ in splits]
        encoded = encode_records(records, sets, jobs=jobs)
    out_mos = {d: np.full(len(records), np.nan) for d in DIMENSIONS}
    out_score = {d: np.full(len(records), np.nan) for d in DIMENSIONS}
    fold_of = np.full(len(records), -1, dtype=np.intp)
    ladders: dict[int, dict[str, F64]] = {}
    for i, ((train, test), cbs, enc) in enumerate(zip(splits, sets, encoded, strict=True)):
        if len(set(train.tolist()) & set(test.tolist())):
            raise CalibrationFitError(f"split {i} has images in both its training and its test part")
        damage = damage_rows(records, train, damage_floor(mos[train]))
        integrity = integrity_rows(records, train, natural)
        ranking = ranking_pairs(records, train, natural)
        model = fit_model(base[train], {f: e[train] for f, e in enc.items()}, mos[train], cbs, seed=seed,
                          meta={"feature_names": names, "dimensions": DIMENSIONS},
                          damage=damage if len(damage[1]) else None,
                          integrity=integrity if len(integrity[1]) else None,
                          ranking=ranking if len(ranking[0]) else None)  # fmt: skip
        if on_fold is not None:
            on_fold(i, model, (train, test))
        pred = model.predict_mos(base[test], {f: e[test] for f, e in enc.items()})
        for d, p in model.scores_of(pred).items():
            out_mos[d][test] = pred[d]
            out_score[d][test] = p
        fold_of[test] = i
        for j in test:  # the held-out images' damage ladders, scored by the same model
            lad = records[j].ladders
            if lad is None or any(enc.values()):
                continue
            flat = lad.features.reshape(-1, lad.features.shape[-1])
            ok = np.isfinite(flat).all(axis=1)
            rungs = {d: np.full(len(flat), np.nan) for d in out_score}
            if ok.any():
                for d, p in model.scores_of(model.predict_mos(flat[ok], {})).items():
                    rungs[d][ok] = p
            clean = {d: np.full(lad.features.shape[0], out_score[d][j]) for d in rungs}
            ladders[j] = {d: np.column_stack([clean[d], v.reshape(lad.features.shape[:2])]) for d, v in rungs.items()}
        log.info("fold %d/%d fitted on %d images, predicted %d", i + 1, len(splits), len(train), len(test))
    return CVResult(out_mos, out_score, fold_of, time.perf_counter() - started, ladders)


# ----------------------------------------------------------------------------------------------------
# identity of the data
# ----------------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def image_set_sha256(records: Sequence[Record]) -> str:
    """SHA-256 over the sorted lines ``name<TAB>sha256(file bytes)`` of the images given."""
    lines = sorted(f"{r.name}\t{sha256_file(Path(r.path))}" for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def environment() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("scikit-learn", "numpy", "scipy", "opencv-python-headless", "opencv-python", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def model_meta(name: str, records: Sequence[Record], excluded: Sequence[Record], labels: Path, seed: int,
               cv: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "features_version": FEATURES_VERSION,
        "feature_names": list(records[0].features or {}),
        "working_side": WORKING_SIDE,
        "dimensions": DIMENSIONS,
        "requires": REQUIRES,
        "target": "mos_quality",
        "seed": seed,
        "protocol": {
            "codebook_size": CODEBOOK_SIZE,
            "samples_per_image": SAMPLES_PER_IMAGE,
            "trees": TREE_PARAMS,
            "svr": SVR_PARAMS,
            "quantile_levels": QUANTILE_LEVELS,
            "scale_percentiles": [list(p) for p in SCALE_PERCENTILES],
            "scale_bottom_margin": SCALE_BOTTOM_MARGIN,
            "members": [list(m) for m in MEMBERS],
            "feature_subsets": {k: list(v) for k, v in FEATURE_SUBSETS.items()},
            "damage": {"ladder_images": LADDER_IMAGES, "steps": STEPS, "kinds": list(KINDS),
                       "whole_factor_ladder": {"kind": WHOLE_FACTOR_KIND, "factors": list(WHOLE_FACTORS),
                                               "rows": "damage head and ranking term only"},
                       "svr_rows": SVR_DAMAGE_ROWS, "floor_margin": DAMAGE_FLOOR_MARGIN, "weight": DAMAGE_WEIGHT,
                       "target": "mos - severity * (mos - floor)"},
            "holdout_images": HOLDOUT_IMAGES,
            "integrity": {"weight": INTEGRITY_WEIGHT, "threshold": INTEGRITY_THRESHOLD, "cap": INTEGRITY_CAP,
                          "trees": DAMAGE_TREE_PARAMS,
                          "svr_epsilon": DAMAGE_SVR_EPSILON,
                          "svr_rows": DAMAGE_SVR_ROWS, "target": "severity (0 as made, 1 heaviest)",
                          "rows": "fit images' ladders + natural-photo ladders (quality.calibration.damage)"},
            "ranking": {"weight": RANKING_WEIGHT, "c": RANKING_C, "slope": RANKING_SLOPE, "knee": RANKING_KNEE,
                        "features": "robust-scaled features and their squares",
                        "pairs": "every ordered pair within each ladder of the fit images and the natural photos"},
        },
        "dataset": {
            "labels": labels.name,
            "labels_sha256": sha256_file(labels),
            "images_sha256": image_set_sha256(records),
            "images": len(records),
            "excluded": {r.name: r.error or "features undefined" for r in excluded},
        },
        "cv": cv,
        "trained_with": environment(),
    }
