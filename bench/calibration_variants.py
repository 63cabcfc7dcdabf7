"""Alternatives to the shipped calibration protocol, measured on the same folds, ladders and held-out images.

    python bench/calibration_variants.py DATASET_DIR --cache DIR [--jobs 2] [--monotone] [--natural-human]
        [--new-only] [--shipped-only] [--independent] [--ringing] [--whole] [--encode] [--reversals KIND]
        [--photos DIR]

Not a timing benchmark: the script behind README's "measured, not shipped" figures for the grade's monotonicity.
It fits the protocol's parts (:func:`quality.calibration.fit.fit_model`: human-aligned members, damage head,
ranking term) on each of the 5 folds and once on all fit images, keeps each part's raw predictions, and scores
every variant from them, so that variants differ only in what they change:

* out of fold: the composite's SROCC against the human scores, pair accuracy and selection gain inside
  (prompt, generator) groups, false positives (bottom-quartile images at composite ≥ 7.0), and the held-out
  folds' own damage ladders (the fit's severities);
* with the model fitted on all fit images: the ladders of scikit-image's ten sample photos and of the AGIQA images
  kept out of every fit, at the ladder check's severities (:data:`quality.distortions.LEVELS`; damage at full
  size, then reduced to the working size as the scorer does), technical and composite.

The shipped variant reproduces ``python -m quality.calibration fit`` and ``python -m quality eval --ladders``
(variants are scored by :meth:`quality.calibration.model.CalibrationModel.scores_of` itself). Other
variants: a larger ranking weight, another ranking slope below -1, no cap on the damage head's severity, a
ranking term with a hidden layer (RankNet on the same ordered pairs, with torch), the linear and that term
averaged, a linear term also fitted on the human orderings inside (prompt, generator) groups, the five fold
models averaged, each part alone, and a penalty from per-kind detectors (one ranking term per kind of damage,
:class:`KindDetectors`; the script also prints how each detector orders every kind). ``--monotone`` also refits
every fold with monotone constraints on the damage-specific features in the boosted trees, ``--natural-human``
with the natural-photo ladders in the human-aligned part (pseudo human scores; each one more set of six fits);
``--new-only`` skips the alternatives of the first table; ``--independent`` scores ``bench/independent_ladders.py``'s
sets with the final model, with and without the penalty of the kinds read backwards (:func:`independent_check`);
``--ringing`` adds a penalty from a measure of unsharp-mask halos that is not one of the model's features
(:func:`ringing`, :class:`RingingPenalty`); ``--whole`` refits without the fit's whole-factor resolution-loss ladder
(:data:`quality.calibration.ladders.WHOLE_FACTOR_KIND`) and with it in every part, beside a refit with another
seed, with and without it (:func:`whole_rows`); ``--encode`` scores the shipped folds with other ranking slopes
and refits with the re-encoding features in other parts (:func:`encode_rows`); ``--shipped-only`` leaves out the
detector rows too;
``--reversals KIND`` prints where that kind's ladders turn back (:func:`reversals`). Features and ladders are cached
in ``--cache`` (the fit's own cache layout; a first run takes ~35 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import logging
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quality.calibration import fit as F  # noqa: E402
from quality.calibration.evaluate import composite_of  # noqa: E402
from quality.calibration.ladders import FIT_KINDS, WHOLE_FACTOR_KIND, Ladders  # noqa: E402
from quality.calibration.model import DAMAGE_HEAD, RANKING_HEAD, CalibrationModel  # noqa: E402
from quality.calibration.runtime import RobustScaler  # noqa: E402
from quality.distortions import KINDS  # noqa: E402

F64 = NDArray[np.float64]
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "immunohistochemistry", "moon",
          "retina", "rocket")  # fmt: skip
#: monotone constraints of ``--monotone`` (feature-name prefix → sign for the human-aligned trees; the damage
#: head's trees get the opposite sign): more energy in the spectrum's bands reads as better, halos and empty
#: levels as worse
MONOTONE = {"spec_band": 1, "halo": -1, "level_gaps": -1}
#: the kinds whose steps the shipped model still reads backwards (README: what still fails)
BACKWARDS = ("oversharpen", "resolution_loss", "webp")
#: the within-group human orderings' weight beside the damage orderings (each pair repeated this many times)
GROUP_REPEAT = 30


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    records: list[F.Record]
    names: list[str]
    natural: F.LadderPairs
    photos: F64
    """(photos, kinds, 1 + levels, features): the clean photo then its copies"""
    held: F64
    """the same for the AGIQA images kept out of every fit"""
    held_paths: list[str] = field(default_factory=list)
    """those images' files, in ``held``'s order"""
    whole: dict[str, Ladders] = field(default_factory=dict)
    """the fit's whole-factor resolution-loss ladder of each ladder image (record name →; the records' own
    ``ladders`` keep the ladder check's kinds, which every figure reads), learnt from as the fit does
    (:func:`fit_folds`)"""
    whole_natural: list[Ladders] = field(default_factory=list)
    """the same for each :attr:`natural` pair, in its order"""

    def __post_init__(self) -> None:
        # (records, features) and the human scores: what every fit, prediction and figure reads
        self.base = F.base_matrix(self.records, self.names)
        self.mos = np.array([r.mos for r in self.records])


def check_rungs(path: str, kinds: Sequence[str] | None = None, levels: tuple[float, ...] | None = None,
                ) -> Iterator[tuple[int, int, NDArray[np.uint8], NDArray[np.uint8]]]:  # fmt: skip
    """``(kind index, rung, copy, copy at working size)`` of an image and its copies at ``levels`` (default: the
    ladder check's kinds and severities; rung 0 the image itself), reduced as the scorer reduces."""
    from PIL import Image

    from quality.calibration.features import WORKING_SIDE
    from quality.distortions import LEVELS, ladder
    from quality.image_io import load_image

    rgb = load_image(path).rgb
    for i, kind in enumerate(kinds or KINDS):
        for k, arr in enumerate(ladder(kind, rgb, levels or LEVELS, 0)):
            yield i, k, arr, load_image(Image.fromarray(arr)).fit(WORKING_SIDE)


def rung_features(arr: NDArray[np.uint8], work: NDArray[np.uint8], names: Sequence[str]) -> F64:
    """Features of one copy ``arr`` reduced to ``work`` as the scorer does (NaN where they are undefined)."""
    from quality.calibration.features import extract

    try:
        f = extract(work, source=arr if work.shape != arr.shape else None)
    except Exception:  # undefined features: the rung stays NaN and its ladder counts as not scored
        return np.full(len(names), np.nan)
    return np.array([f[n] for n in names], np.float64)


def ladder_features(path: str, names: Sequence[str]) -> F64:
    """Features of an image and its copies at the ladder check's severities (:func:`check_rungs`)."""
    from quality.distortions import LEVELS

    out = np.full((len(KINDS), 1 + len(LEVELS), len(names)), np.nan)
    for i, k, arr, work in check_rungs(path):
        out[i, k] = rung_features(arr, work, names)
    return out


def _ladder_features_job(args: tuple[str, list[str]]) -> F64:
    return ladder_features(*args)


def load_data(dataset: Path, cache: Path, photos: Path, jobs: int) -> Data:
    from quality.calibration.parallel import parallel_map
    from quality.eval import load_dataset

    samples = load_dataset(dataset)
    records = [F.Record(s.name, str(s.path), s.mos_quality, s.generator, prompt=s.prompt) for s in samples]
    records = F.prepare_records(records, seed=F.SEED, jobs=jobs, cache=cache)
    usable = [r for r in records if r.usable]
    held_names = set(F.holdout_names(usable, F.HOLDOUT_IMAGES))
    held = [r for r in usable if r.name in held_names]
    fit = [r for r in usable if r.name not in held_names]
    F.attach_ladders(fit, F.ladder_names(fit, F.LADDER_IMAGES), jobs=jobs, cache=cache)
    whole = {}
    for r in fit:
        if r.ladders is not None:
            whole[r.name], r.ladders = r.ladders.only({WHOLE_FACTOR_KIND}), r.ladders.only(KINDS)
    names = list(fit[0].features or {})
    pairs = F.natural_pairs(names, jobs=jobs, cache=cache)
    natural = [(clean, lad.only(KINDS)) for clean, lad in pairs]
    whole_natural = [lad.only({WHOLE_FACTOR_KIND}) for _, lad in pairs]
    photo_paths = [str(photos / f"{p}.png") for p in PHOTOS]
    store = cache / "variants-ladders.npz"
    key = f"{len(names)}:{'|'.join(names)}:{'|'.join(r.name for r in held)}"
    if store.is_file():
        with np.load(store, allow_pickle=False) as z:
            if str(z["key"]) == key:
                photo_f, held_f = np.asarray(z["photos"]), np.asarray(z["held"])
                return Data(fit, names, natural, photo_f, held_f, [r.path for r in held], whole, whole_natural)
    feats = parallel_map(_ladder_features_job, [(p, names) for p in [*photo_paths, *(r.path for r in held)]], jobs)
    photo_f, held_f = np.stack(feats[: len(photo_paths)]), np.stack(feats[len(photo_paths) :])
    np.savez(store, key=np.array(key), photos=photo_f, held=held_f)
    return Data(fit, names, natural, photo_f, held_f, [r.path for r in held], whole, whole_natural)


def write_photos(folder: Path) -> Path:
    """scikit-image's ten sample photos as PNG files (what ``python -m quality eval --ladders`` is given)."""
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        target = folder / f"{name}.png"
        if not target.is_file():
            Image.fromarray(np.asarray(getattr(skimage.data, name)())).save(target)
    return folder


# ----------------------------------------------------------------------------------------------------------------
# fits: raw predictions of every part
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Fold:
    train: NDArray[np.intp]
    test: NDArray[np.intp]
    model: CalibrationModel
    test_pred: dict[str, F64]
    ladders: dict[int, dict[str, F64]] = field(default_factory=dict)
    """test record → head → (kinds, steps) predictions of its damaged copies"""
    photos: dict[str, F64] = field(default_factory=dict)
    held: dict[str, F64] = field(default_factory=dict)


def predict_grid(model: CalibrationModel, x: F64) -> dict[str, F64]:
    """``model.predict_mos`` of every finite row of ``x`` (any leading shape), NaN elsewhere."""
    flat = x.reshape(-1, x.shape[-1])
    ok = np.isfinite(flat).all(axis=1)
    pred = model.predict_mos(flat[ok], {})
    out = {}
    for head, v in pred.items():
        full = np.full(len(flat), np.nan)
        full[ok] = v
        out[head] = full.reshape(x.shape[:-1])
    return out


def natural_human_rows(model: CalibrationModel, natural: F.LadderPairs, floor: float) -> tuple[F64, F64]:
    """Rows and targets that teach the human-aligned members the natural-photo ladders too: a clean source's
    target is ``model``'s own predicted human score of it (the photos have none), a copy at severity ``s`` gets
    ``pseudo - s * (pseudo - floor)``, as the rated images' copies do (:func:`quality.calibration.fit.damage_rows`)."""
    xs: list[F64] = []
    ts: list[F64] = []
    for clean, lad in natural:
        if not np.isfinite(clean).all():
            continue
        pseudo = float(model.predict_mos(clean[None, :], {})["technical"][0])
        feats = lad.features.reshape(-1, lad.features.shape[-1])
        sev = lad.severity.reshape(-1)
        ok = np.isfinite(feats).all(axis=1)
        xs += [clean[None, :], feats[ok]]
        ts += [np.array([pseudo]), pseudo - sev[ok] * (pseudo - floor)]
    return np.concatenate(xs), np.concatenate(ts)


def fit_folds(data: Data, log: logging.Logger, pseudo_from: list[Fold] | None = None, whole: str = "shipped",
              seed: int = F.SEED) -> list[Fold]:  # fmt: skip
    """Five folds (the fit's own split) and the final model (trained on all, its test part empty).

    ``pseudo_from``: the same folds fitted before; the human-aligned members then also learn the natural-photo
    ladders, with the earlier fold model's predicted human score of each clean source (:func:`natural_human_rows`).
    ``whole``: what learns from the whole-factor resolution-loss ladders (:attr:`Data.whole`): ``"shipped"`` the
    damage head and the ranking term, ``"all"`` the human-aligned members too, ``"none"`` nothing (the protocol
    before it). Every figure reads the ladder check's kinds only. ``seed``: the models' (the split stays the fit's).
    """
    if whole not in ("shipped", "all", "none"):
        raise ValueError(f"whole: shipped, all or none, not {whole!r}")
    recs, base, mos = data.records, data.base, data.mos
    train_recs, train_nat = recs, data.natural
    if whole != "none":
        train_recs = [r if r.ladders is None else replace(r, ladders=join(r.ladders, data.whole[r.name])) for r in recs]
        train_nat = [(c, join(lad, w)) for (c, lad), w in zip(data.natural, data.whole_natural, strict=True)]
    human_kinds = FIT_KINDS if whole == "all" else KINDS
    splits = [*F.kfold(len(recs), 5), (np.arange(len(recs)), np.array([], dtype=np.intp))]
    folds = []
    for i, (train, test) in enumerate(splits):
        floor = F.damage_floor(mos[train])
        damage = F.damage_rows(train_recs, train, floor, human_kinds)
        if pseudo_from is not None:
            nx, nt = natural_human_rows(pseudo_from[i].model, data.natural, floor)
            damage = (np.vstack([damage[0], nx]), np.concatenate([damage[1], nt]))
        model = F.fit_model(base[train], {}, mos[train], {}, seed=seed,
                            meta={"feature_names": data.names, "dimensions": F.DIMENSIONS}, damage=damage,
                            integrity=F.integrity_rows(train_recs, train, train_nat),
                            ranking=F.ranking_pairs(train_recs, train, train_nat))  # fmt: skip
        fold = Fold(train, test, model, model.predict_mos(base[test], {}) if len(test) else {})
        for j in test:
            lad = recs[j].ladders
            if lad is not None:
                fold.ladders[int(j)] = predict_grid(model, lad.features)
        fold.photos, fold.held = predict_grid(model, data.photos), predict_grid(model, data.held)
        folds.append(fold)
        log.info("fitted %s", f"fold {i + 1} of 5" if len(test) else "the final model")
    return folds


def group_pairs(
    recs: Sequence[F.Record], train: NDArray[np.intp], min_delta: float = 0.5
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``(better, worse)`` record indices of the training images' pairs inside one (prompt, generator) group whose
    human scores differ by ``min_delta`` or more: the orderings refinement has to make."""
    by_group: dict[tuple[str | None, str], list[int]] = {}
    for j in train:
        by_group.setdefault((recs[j].prompt, recs[j].group), []).append(int(j))
    better, worse = [], []
    for members in by_group.values():
        for i, j in itertools.combinations(members, 2):
            if abs(recs[i].mos - recs[j].mos) >= min_delta:
                better.append(i if recs[i].mos > recs[j].mos else j)
                worse.append(j if recs[i].mos > recs[j].mos else i)
    return np.array(better, np.intp), np.array(worse, np.intp)


def monotone_fit_trees(names: Sequence[str]) -> Callable[..., Any]:
    """:func:`quality.calibration.fit.fit_trees` with :data:`MONOTONE` constraints (for ``--monotone``)."""
    original = F.fit_trees
    detail = list(F.subset_names("detail", names) or ())

    def fit_trees(x: F64, y: F64, seed: int = F.SEED, weight: F64 | None = None,
                  params: dict[str, Any] | None = None) -> Any:  # fmt: skip
        cols = names if x.shape[1] == len(names) else detail
        sign = -1 if params is not None else 1  # only the damage head's members pass their own parameters
        cst = [next((s * sign for p, s in MONOTONE.items() if n.startswith(p)), 0) for n in cols]
        return original(x, y, seed, weight, {**(params or {}), "monotonic_cst": cst})

    return fit_trees


# ----------------------------------------------------------------------------------------------------------------
# rankers
# ----------------------------------------------------------------------------------------------------------------
class HiddenLayerRanker:
    """``w · z + v · softplus(A z + b)`` of the robust-scaled, clipped features, fitted by RankNet's loss on
    ordered pairs and standardised over the rated images like :class:`quality.calibration.runtime.PairwiseRanker`."""

    def __init__(self, rated: F64, better: F64, worse: F64, *, hidden: int = 64, weight_decay: float = 1e-4,
                 epochs: int = 600, clip: float = 10.0, seed: int = 0) -> None:  # fmt: skip
        import torch

        torch.manual_seed(seed)
        self.scaler = RobustScaler.fit(np.vstack([rated, better, worse]))
        self.clip = clip
        n = rated.shape[1]
        self.linear = torch.nn.Linear(n, 1, bias=False)
        self.hidden = torch.nn.Sequential(torch.nn.Linear(n, hidden), torch.nn.Softplus(),
                                          torch.nn.Linear(hidden, 1, bias=False))  # fmt: skip
        params = [*self.linear.parameters(), *self.hidden.parameters()]
        opt = torch.optim.Adam(params, lr=3e-3, weight_decay=weight_decay)
        zb, zw = self._z(better), self._z(worse)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.softplus(self._net(zw) - self._net(zb)).mean()
            loss.backward()
            opt.step()
        raw = self._raw(rated)
        self.offset, self.unit = float(raw.mean()), float(raw.std()) or 1.0

    def _z(self, x: F64) -> Any:
        import torch

        return torch.tensor(np.clip(self.scaler(np.atleast_2d(x)), -self.clip, self.clip), dtype=torch.float32)

    def _net(self, z: Any) -> Any:
        return (self.linear(z) + self.hidden(z)).squeeze(-1)

    def _raw(self, x: F64) -> F64:
        import torch

        with torch.no_grad():
            return np.asarray(self._net(self._z(x)).double().numpy(), np.float64)

    def predict(self, x: F64) -> F64:
        return (self._raw(x) - self.offset) / self.unit


#: a change of one fold's raw predictions ``pred`` of feature rows ``x`` (:func:`measure`)
Adjust = Callable[[CalibrationModel, dict[str, F64], F64], dict[str, F64]]


class KindDetectors:
    """One ranking term per kind of damage (:func:`quality.calibration.fit.fit_ranker` on that kind's orderings
    only) and a penalty from those that read an image as damaged beyond what most rated images show:
    ``weight · Σ_k τ · softplus((c_k - R_k(x)) / τ)`` points, ``c_k`` the ``quantile`` of ``R_k`` over the rated
    training images (a smooth ``max(0, c_k - R_k)``). Each alone orders its own kind's ladders almost perfectly;
    the question is whether a penalty from them orders every kind without knowing which one an image has."""

    def __init__(self, records: Sequence[F.Record], train: NDArray[np.intp], rated: F64, natural: F.LadderPairs,
                 kinds: Sequence[str]) -> None:  # fmt: skip
        from quality.calibration.damage import ordered_pairs
        from quality.calibration.ladders import Ladders

        sources = F.ladder_pairs(records, train, natural)
        self.kinds = list(kinds)
        self.rankers = []
        for kind in self.kinds:
            one = []
            for clean, lad in sources:
                k = lad.kinds.index(kind)
                one.append((clean, Ladders(lad.name, [kind], lad.severity[k : k + 1], lad.features[k : k + 1])))
            self.rankers.append(F.fit_ranker(rated, *ordered_pairs(one)))
        self.rated = np.column_stack([r.predict(rated) for r in self.rankers])

    def readings(self, x: F64) -> F64:
        """``(..., kinds)`` detector values of ``(..., features)`` rows (NaN where a row is not finite)."""
        flat = x.reshape(-1, x.shape[-1])
        ok = np.isfinite(flat).all(axis=1)
        out = np.full((len(flat), len(self.rankers)), np.nan)
        out[ok] = np.column_stack([r.predict(flat[ok]) for r in self.rankers])
        return out.reshape(*x.shape[:-1], len(self.rankers))

    def penalty(self, x: F64, kinds: Sequence[str], weight: float, quantile: float, tau: float) -> F64:
        cols = [self.kinds.index(k) for k in kinds]
        c = np.quantile(self.rated[:, cols], quantile, axis=0)
        d = tau * np.logaddexp(0.0, (c - self.readings(x)[..., cols]) / tau)
        return np.asarray(weight * d.sum(axis=-1), np.float64)


def with_penalty(pred: dict[str, F64], model: CalibrationModel, points: F64) -> dict[str, F64]:
    """``pred`` with its ranking term moved so that :meth:`CalibrationModel.scores_of` subtracts ``points`` more
    before the soft floor and ceiling: ``f(r') = f(r) - points`` for the model's ranking points
    ``f(r) = w · gain(r) + slope · min(0, r - knee)``, strictly increasing and so invertible (for ``knee ≤ 0``,
    where ``gain`` is the identity below the knee)."""
    w = model.ranking or 1.0
    slope, knee = model.ranking_slope
    assert knee <= 0.0, "the inverse is exact only for a knee where the ranking gain is the identity"
    t = model.ranking_points(pred[RANKING_HEAD]) - points
    y = t / w  # above the knee: gain(r') = t / w
    above = np.where(y <= 0.0, y, np.expm1(np.maximum(y, 0.0)))
    below = (t + slope * knee) / (w + slope)
    return {**pred, RANKING_HEAD: np.where(t >= w * knee, above, below)}


@dataclass(frozen=True)
class Detectors:
    """A :class:`KindDetectors` penalty as a variant: which kinds, points per unit, threshold quantile, τ."""

    kinds: tuple[str, ...]
    weight: float
    quantile: float
    tau: float = 0.1

    def adjust(self, fitted: list[KindDetectors]) -> list[Adjust]:
        def one(det: KindDetectors) -> Adjust:
            return lambda model, pred, x: with_penalty(
                pred, model, det.penalty(x, self.kinds, self.weight, self.quantile, self.tau)
            )

        return [one(d) for d in fitted]


@dataclass(frozen=True)
class PenalisedModel(CalibrationModel):
    """``model`` with a detector penalty in its ranking term (:func:`with_penalty`), as the scorer would use it if
    it shipped: :meth:`predict_mos` is the only change, so the full scorer can score images with it."""

    penalty: Callable[[F64], F64] | None = None

    @classmethod
    def of(cls, model: CalibrationModel, penalty: Callable[[F64], F64]) -> PenalisedModel:
        return cls(**{f.name: getattr(model, f.name) for f in fields(CalibrationModel)}, penalty=penalty)

    def predict_mos(self, base: F64, encodings: dict[str, F64]) -> dict[str, F64]:
        pred = super().predict_mos(base, encodings)
        if self.penalty is None:
            return pred
        return with_penalty(pred, self, self.penalty(np.atleast_2d(np.asarray(base, np.float64))))


def independent(model: CalibrationModel) -> None:
    """``bench/independent_ladders.py``'s sets (damage code of their own, other levels) scored by the full scorer
    with ``model``."""
    spec = importlib.util.spec_from_file_location("independent_ladders", REPO / "bench" / "independent_ladders.py")
    assert spec is not None and spec.loader is not None
    ind = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ind)
    ind.run_all(ind.scorer_for(model, True, REPO / ".no-weights"))


def independent_check(data: Data, folds: list[Fold], det: Detectors) -> None:
    """:func:`independent` with the final model and with the same model plus ``det``'s penalty (detectors fitted
    on all fit images)."""
    final = folds[5]
    detectors = KindDetectors(data.records, final.train, data.base[final.train], data.natural, list(det.kinds))
    models = {
        "final model (the shipped protocol)": final.model,
        f"with the penalty of {', '.join(det.kinds)} ({det.weight} beyond the {det.quantile:.0%} quantile)":
            PenalisedModel.of(final.model, lambda x: detectors.penalty(x, det.kinds, det.weight, det.quantile,
                                                                       det.tau)),
    }  # fmt: skip
    for title, model in models.items():
        print(f"independent ladders, {title}:")
        independent(model)


# ----------------------------------------------------------------------------------------------------------------
# a ringing measure: unsharp-mask halos on both sides of an edge, as a penalty
# ----------------------------------------------------------------------------------------------------------------
def ringing(rgb: NDArray[np.uint8], top: float = 5.0, reach: int = 6) -> float:
    """Symmetric overshoot at strong edges: at the ``top`` % of pixels with the strongest gradient, the luma profile
    along the gradient (bilinear, ``-reach`` to ``reach`` px); the bright side's peak 1–3 px out above its plateau
    (the last two samples) and the dark side's trough below its own, the smaller of the two as a share of the
    edge's contrast, averaged over edges with at least 8 grey levels of contrast. A natural edge, sharp or soft,
    runs into its plateaus (0; blur never creates overshoot); an unsharp-masked one overshoots on both sides, so
    the smaller of the two ignores one-sided texture next to an edge (what the model's ``halo`` feature also counts).
    """
    import cv2

    from quality.analysis import sobel
    from quality.backends.nss_math import luma

    y = luma(rgb)
    gx, gy = sobel(y)
    mag = np.hypot(gx, gy)
    h, w = y.shape
    m = reach + 1
    if h <= 2 * m or w <= 2 * m:
        return 0.0
    inner = mag[m:-m, m:-m]
    rows, cols = np.nonzero(inner > max(float(np.percentile(inner, 100.0 - top)), 1e-3))
    if rows.size == 0:
        return 0.0
    rows, cols = rows + m, cols + m
    g = mag[rows, cols]
    ny, nx = gy[rows, cols] / g, gx[rows, cols] / g
    ks = np.arange(-reach, reach + 1, dtype=np.float32)[:, None]
    prof = cv2.remap(y, (cols + ks * nx).astype(np.float32), (rows + ks * ny).astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    c = reach  # the edge pixel's row of ``prof``
    bright, dark = prof[-2:].mean(axis=0), prof[:2].mean(axis=0)
    contrast = bright - dark
    ok = contrast >= 8.0
    if not ok.any():
        return 0.0
    over = prof[c + 1 : c + 4].max(axis=0) - bright
    under = dark - prof[c - 3 : c].min(axis=0)
    return float(np.mean(np.maximum(np.minimum(over, under)[ok], 0.0) / contrast[ok]))


def _ringing_rated(path: str) -> float:
    return ringing(F.working_rgb(path))


def _ringing_fit_ladder(args: tuple[str, str, list[str], F64]) -> F64:
    """:func:`ringing` of the fit's damaged copies of one image (:func:`quality.calibration.ladders.compute`'s)."""
    from quality.calibration.ladders import image_seed
    from quality.distortions import apply

    name, path, kinds, severity = args
    rgb, seed = F.working_rgb(path), image_seed(name)
    return np.array([[ringing(apply(kind, rgb, float(s), seed)) for s in row] for kind, row in zip(kinds, severity,
                     strict=True)])  # fmt: skip


def _ringing_check_ladder(path: str) -> F64:
    """:func:`ringing` of an image and its copies at the ladder check's severities (:func:`check_rungs`)."""
    from quality.distortions import LEVELS

    out = np.zeros((len(KINDS), 1 + len(LEVELS)))
    for i, k, _, work in check_rungs(path):
        out[i, k] = ringing(work)
    return out


class RowValues:
    """A value per feature row that is not one of the model's features (:func:`ringing`), looked up by the row's
    bytes: every variant's adjustment gets only the rows (:data:`Adjust`), and no two images here share a row."""

    def __init__(self) -> None:
        self.values: dict[bytes, float] = {}

    def add(self, x: F64, values: F64) -> None:
        flat, vals = x.reshape(-1, x.shape[-1]), np.asarray(values, np.float64).reshape(-1)
        assert len(flat) == len(vals)
        for row, v in zip(flat, vals, strict=True):
            if np.isfinite(row).all():
                self.values[np.ascontiguousarray(row, np.float64).tobytes()] = float(v)

    def __call__(self, x: F64) -> F64:
        flat = x.reshape(-1, x.shape[-1])
        out = [self.values[np.ascontiguousarray(r, np.float64).tobytes()] if np.isfinite(r).all() else np.nan
               for r in flat]  # fmt: skip
        return np.asarray(out, np.float64).reshape(x.shape[:-1])


def ringing_values(data: Data, photos: Path, cache: Path, jobs: int) -> tuple[RowValues, F64]:
    """:func:`ringing` of every row :func:`measure` scores: the rated images, the fit's ladders, the photos' and
    the held-out AI images' ladders at the check's severities (cached in ``cache``; ~2 minutes on 2 cores), and
    the rated images' values alone."""
    from quality.calibration.parallel import parallel_map

    recs = data.records
    laddered = [r for r in recs if r.ladders is not None]
    held = data.held_paths
    store = cache / "variants-ringing.npz"
    key = "ringing/1:" + "|".join([*(r.name for r in recs), *held])
    cached = None
    if store.is_file():
        with np.load(store, allow_pickle=False) as z:
            if str(z["key"]) == key:
                cached = np.asarray(z["rated"]), np.asarray(z["fit"]), np.asarray(z["check"])
    if cached is not None:
        rated, fit_l, check = cached
    else:
        rated = np.array(parallel_map(_ringing_rated, [r.path for r in recs], jobs))
        jobs_l = [(r.name, r.path, r.ladders.kinds, r.ladders.severity) for r in laddered]  # type: ignore[union-attr]
        fit_l = np.stack(parallel_map(_ringing_fit_ladder, jobs_l, jobs))
        paths = [str(photos / f"{p}.png") for p in PHOTOS] + held
        check = np.stack(parallel_map(_ringing_check_ladder, paths, jobs))
        np.savez(store, key=np.array(key), rated=rated, fit=fit_l, check=check)
    values = RowValues()
    values.add(data.base, rated)
    for r, v in zip(laddered, fit_l, strict=True):
        values.add(r.ladders.features, v)  # type: ignore[union-attr]
    values.add(data.photos, check[: len(PHOTOS)])
    values.add(data.held, check[len(PHOTOS) :])
    return values, rated


@dataclass(frozen=True)
class RingingPenalty:
    """``weight · τ · softplus((ringing - c) / τ)`` points, ``c`` the ``quantile`` of :func:`ringing` over the
    fold's rated training images, subtracted before the soft floor (:func:`with_penalty`)."""

    weight: float
    quantile: float
    tau: float = 0.02

    def adjust(self, values: RowValues, rated: F64, folds: list[Fold]) -> list[Adjust]:
        def one(c: float) -> Adjust:
            return lambda model, pred, x: with_penalty(
                pred, model, self.weight * self.tau * np.logaddexp(0.0, (values(x) - c) / self.tau)
            )

        return [one(float(np.quantile(rated[f.train], self.quantile))) for f in folds]


def ringing_rows(data: Data, folds: list[Fold], photos: Path, cache: Path, jobs: int,
                 log: logging.Logger) -> list[dict[str, Any]]:  # fmt: skip
    """The :class:`RingingPenalty` variants, and how :func:`ringing` moves along each kind's check ladders."""
    log.info("measuring the ringing of every rated image and ladder")
    values, rated = ringing_values(data, photos, cache, jobs)
    grid = np.vstack([values(data.photos), values(data.held)])  # (images, kinds, rungs)
    j = list(KINDS).index("oversharpen")
    sharpen = grid[:, j]
    step1, clean = sharpen[:, 1], sharpen[:, 0]
    print(f"ringing of the rated images: median {np.median(rated):.3f}, 95th percentile "
          f"{np.quantile(rated, 0.95):.3f}; first oversharpening step above its clean image in "
          f"{np.mean(step1 > clean):.0%} of the photos and held-out AI images (median x"
          f"{np.median(step1 / np.maximum(clean, 1e-6)):.1f}), above the rated median in "
          f"{np.mean(step1 > np.median(rated)):.0%}, above the 95th percentile in "
          f"{np.mean(step1 > np.quantile(rated, 0.95)):.0%}")  # fmt: skip
    final = folds[5]
    shipped = np.vstack([variant_scores(final.model, pred, Variant("shipped"))["technical"][:, j]
                         for pred in (final.photos, final.held)])  # fmt: skip
    names = [*PHOTOS, *(Path(h).stem for h in data.held_paths)]
    rising = [f"{names[i]} ({100 * np.mean(rated < step1[i]):.0f})" for i in range(len(names))
              if not (np.diff(shipped[i]) < 0).all()]  # fmt: skip
    print(
        "oversharpening ladders the shipped model does not order, with the rated images' percentile of their "
        "first step's ringing: " + ", ".join(rising)
    )
    print("| kind | steps where ringing rises |\n| --- | --- |")
    for j, kind in enumerate(KINDS):
        print(f"| {kind} | {100 * np.mean(np.diff(grid[:, j], axis=1) > 0):.0f} % |")
    rows = []
    for w, q in ((5.0, 0.95), (10.0, 0.95), (5.0, 0.8), (10.0, 0.5)):
        label = f"ringing penalty, {w:g} points per unit beyond the {q:.0%} quantile"
        rows.append(measure(data, folds, Variant(label), adjust=RingingPenalty(w, q).adjust(values, rated, folds)))
    return rows


def reversals(data: Data, folds: list[Fold], kind: str, top: int = 8) -> None:
    """Where a kind's ladders stop falling: the damage head's steps read as less damage, on the fit's own ladders
    (final model), the held-out folds' ladders (fold models) and the check's photo and held-out AI ladders (final
    model), and the features that turn back at the check's last step (moving against the step before it)."""
    j, final = list(KINDS).index(kind), folds[5]

    def backwards(sev: F64) -> str:
        d = np.diff(sev, axis=-1)
        ok = np.isfinite(d)
        return " / ".join(f"{100 * np.mean(d[..., k][ok[..., k]] < 0):.0f} %" for k in range(d.shape[-1]))

    own = [r.ladders for r in data.records if r.ladders is not None]
    fit_sev = predict_grid(final.model, np.stack([lad.features[lad.kinds.index(kind)] for lad in own]))[DAMAGE_HEAD]
    out_sev = np.stack([f.ladders[i][DAMAGE_HEAD][data.records[i].ladders.kinds.index(kind)]  # type: ignore[union-attr]
                        for f in folds[:5] for i in f.ladders])  # fmt: skip
    check = np.vstack([final.photos[DAMAGE_HEAD][:, j], final.held[DAMAGE_HEAD][:, j]])
    print(
        f"{kind}: damage head's steps read as less damage, step by step: fit ladders (final model) "
        f"{backwards(fit_sev)}; held-out folds' ladders {backwards(out_sev)}; check ladders {backwards(check)}"
    )
    x = np.vstack([data.photos[:, j], data.held[:, j]])  # (images, rungs, features)
    turn = np.sign(x[:, -1] - x[:, -2]) * np.sign(x[:, -2] - x[:, -3]) < 0
    share = np.mean(turn, axis=0)
    order = np.argsort(-share)[:top]
    print(
        f"features turning back at the last step of the check's {kind} ladders (share of the {len(x)} images): "
        + ", ".join(f"{data.names[k]} {100 * share[k]:.0f} %" for k in order)
    )


# ----------------------------------------------------------------------------------------------------------------
# whole-factor resolution loss: the fit's extra ladder, and what it changes
# ----------------------------------------------------------------------------------------------------------------
def join(lad: Ladders, more: Ladders) -> Ladders:
    """``lad``'s ladders followed by ``more``'s (one image's)."""
    return Ladders(lad.name, [*lad.kinds, *more.kinds], np.vstack([lad.severity, more.severity]),
                   np.concatenate([lad.features, more.features], axis=0))  # fmt: skip


JUMP_FACTORS = (3.0, 3.9, 4.0)
"""the ladder check's 3× and 4× (its heaviest) resolution loss, and 3.9× (a copy 1 px larger at 512 px)"""


def jump_features(data: Data) -> F64:
    """``(held-out images, factors, features)`` of each held-out AI image's resolution-loss copies at
    :data:`JUMP_FACTORS` (the ladder check's code)."""
    from quality.distortions import resolution_loss_severity

    levels = tuple(resolution_loss_severity(f) for f in JUMP_FACTORS)
    x = np.full((len(data.held_paths), len(JUMP_FACTORS), len(data.names)), np.nan)
    for i, path in enumerate(data.held_paths):
        for _, k, arr, work in check_rungs(path, ["resolution_loss"], levels):
            if k > 0:  # rung 0: the image itself
                x[i, k - 1] = rung_features(arr, work, data.names)
    return x


def print_whole_factor_jump(title: str, model: CalibrationModel, x: F64) -> None:
    """How ``model``'s technical score orders :func:`jump_features`' copies ``x``."""
    t = variant_scores(model, predict_grid(model, x), Variant("jump"))["technical"]
    print(f"{title}: held-out AI images whose 4× resolution-loss copy does not score below the 3.9× one "
          f"{int(np.sum(t[:, 2] >= t[:, 1]))} of {len(t)}, below the 3× one {int(np.sum(t[:, 2] >= t[:, 0]))}; "
          f"3.9× not below 3× {int(np.sum(t[:, 1] >= t[:, 0]))}")  # fmt: skip


def whole_rows(data: Data, log: logging.Logger, shipped: list[Fold] | None = None) -> list[dict[str, Any]]:
    """The protocol without the whole-factor resolution-loss ladder (as before it) and with it in every part,
    beside the shipped protocol and the one without it refitted with another seed (what a refit alone moves);
    prints :func:`print_whole_factor_jump` for the final models of the first and of ``shipped``."""
    rows, jump = [], jump_features(data)
    for whole, label in (("none", "without the whole-factor resolution-loss ladder (the protocol before it)"),
                         ("all", "whole-factor resolution-loss ladder in every part")):  # fmt: skip
        log.info("refitting every fold %s", label)
        folds = fit_folds(data, log, whole=whole)
        rows.append(measure(data, folds, Variant(label)))
        if whole == "none":
            print_whole_factor_jump(label, folds[5].model, jump)
    if shipped is not None:
        print_whole_factor_jump("shipped protocol", shipped[5].model, jump)
    for whole, label in (("shipped", "shipped protocol"), ("none", "without the whole-factor ladder")):
        log.info("refitting the %s with seed %d", label, F.SEED + 1)
        reseeded = fit_folds(data, log, whole=whole, seed=F.SEED + 1)
        rows.append(measure(data, reseeded, Variant(f"{label}, fit seed {F.SEED + 1}")))
    return rows


#: where the re-encoding features (fit subset ``encode``) are read, beside the shipped protocol (the ranking term
#: only): label → feature subsets of the technical, damage-head and ranking members
ENCODE_PLACES: dict[str, tuple[str, str, str]] = {
    "re-encoding features in every part": ("", "", ""),
    "re-encoding features in the damage head and ranking term": ("-encode", "", ""),
    "re-encoding features in the damage head only": ("-encode", "", "-encode"),
    "re-encoding features in the human-aligned part and ranking term": ("", "-encode", ""),
    "no re-encoding features (features version 3's inputs)": ("-encode", "-encode", "-encode"),
}


def members_reading(technical: str, damage: str, ranking: str) -> tuple[tuple[str, str, str, str], ...]:
    """:data:`quality.calibration.fit.MEMBERS` with these feature subsets for the technical, damage-head and
    ranking members (the detail members keep theirs)."""
    subsets = {"technical": technical, DAMAGE_HEAD: damage, RANKING_HEAD: ranking}
    return tuple((d, k, fam, subsets.get(d, sub)) for d, k, fam, sub in F.MEMBERS)


def slope_variant(label: str, slope: float, knee: float = F.RANKING_KNEE) -> Variant:
    return Variant(f"{label}, ranking slope {slope:g} below {knee:g}", slope=slope, knee=knee)


def encode_rows(data: Data, log: logging.Logger, shipped: list[Fold]) -> list[dict[str, Any]]:
    """The shipped folds without the ranking slope and with its neighbours, then every fold refitted with the
    re-encoding features in other parts (:data:`ENCODE_PLACES`), each without and with the shipped slope."""
    neighbours = [Variant("shipped, no ranking slope", slope=0.0), slope_variant("shipped", 0.5),
                  slope_variant("shipped", 1.0), slope_variant("shipped", F.RANKING_SLOPE, -0.5)]  # fmt: skip
    rows = [measure(data, shipped, v) for v in neighbours]
    original = F.MEMBERS
    try:
        for label, subsets in ENCODE_PLACES.items():
            F.MEMBERS = members_reading(*subsets)
            log.info("refitting every fold: %s", label)
            folds = fit_folds(data, log)
            pair = (Variant(f"{label}, no ranking slope", slope=0.0), slope_variant(label, F.RANKING_SLOPE))
            rows += [measure(data, folds, v) for v in pair]
    finally:
        F.MEMBERS = original
    return rows


# ----------------------------------------------------------------------------------------------------------------
# variants
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    label: str
    weight: float | None = None
    """ranking points per unit (None: the model's)"""
    slope: float | None = None
    """ranking points per unit below ``knee``, in place of the model's own (None: the model's)"""
    knee: float = -1.0
    cap: float | None = None
    """the damage head's severity is capped here before the penalty (None: the model's cap; ``math.inf``: none)"""
    bagged: bool = False
    """photos and held-out AI ladders scored by the five fold models averaged instead of the final model"""


def variant_scores(model: CalibrationModel, pred: dict[str, F64], v: Variant) -> dict[str, F64]:
    """Technical, detail and composite of the raw predictions ``pred``, by the model's own
    :meth:`CalibrationModel.scores_of` with the cap, ranking weight and ranking slope ``v`` names in its
    metadata."""
    integrity, ranking = dict(model.meta["integrity"]), dict(model.meta["ranking"])
    if v.cap is not None:
        integrity["cap"] = None if math.isinf(v.cap) else v.cap
    if v.weight is not None:
        ranking["weight"] = v.weight
    if v.slope is not None:
        ranking["slope"], ranking["knee"] = v.slope, v.knee
    variant = replace(model, meta={**model.meta, "integrity": integrity, "ranking": ranking})
    out = variant.scores_of(pred)
    out["composite"] = composite_grid(out["technical"], out["detail"])
    return out


def composite_grid(technical: F64, detail: F64) -> F64:
    flat = [composite_of({"technical": float(t), "detail": float(d)})[0] if np.isfinite(t) and np.isfinite(d)
            else np.nan for t, d in zip(technical.ravel(), detail.ravel(), strict=True)]  # fmt: skip
    return np.asarray(flat, np.float64).reshape(technical.shape)


def falling(scores: F64) -> tuple[float, int, int]:
    """``(share of strictly falling steps, strictly falling ladders, ladders)`` of ``(..., rungs)`` scores."""
    ok = np.isfinite(scores).all(axis=-1)
    steps = scores[..., 1:] < scores[..., :-1]
    return float(steps[ok].mean()), int(steps[ok].all(axis=-1).sum()), int(ok.sum())


def with_ranker(pred: dict[str, F64], ranker: Any, x: F64) -> dict[str, F64]:
    flat = x.reshape(-1, x.shape[-1])
    ok = np.isfinite(flat).all(axis=1)
    r = np.full(len(flat), np.nan)
    r[ok] = ranker.predict(flat[ok])
    return {**pred, RANKING_HEAD: r.reshape(x.shape[:-1])}


def measure(data: Data, folds: list[Fold], v: Variant, rankers: list[Any] | None = None,
            adjust: list[Adjust] | None = None) -> dict[str, Any]:  # fmt: skip
    """The figures of one variant; ``rankers``: a ranking term per fold in place of the fitted one; ``adjust``: per
    fold, a change of the raw predictions of rows ``x`` (for example :meth:`Detectors.adjust`)."""

    def adj(k: int, model: CalibrationModel, pred: dict[str, F64], x: F64) -> dict[str, F64]:
        return pred if adjust is None else adjust[k](model, pred, x)

    from scipy.stats import spearmanr

    from quality.stats import pair_accuracy, selection_gain

    recs, base, mos = data.records, data.base, data.mos
    comp = np.full(len(recs), np.nan)
    cv: dict[str, list[F64]] = {"technical": [], "composite": []}
    for i, fold in enumerate(folds[:5]):
        ranker = None if rankers is None else rankers[i]
        pred = fold.test_pred if ranker is None else with_ranker(fold.test_pred, ranker, base[fold.test])
        s = variant_scores(fold.model, adj(i, fold.model, pred, base[fold.test]), v)
        comp[fold.test] = s["composite"]
        for pos, j in enumerate(fold.test):
            if int(j) not in fold.ladders:
                continue
            lad = recs[j].ladders
            assert lad is not None
            lp = fold.ladders[int(j)] if ranker is None else with_ranker(fold.ladders[int(j)], ranker, lad.features)
            rungs = variant_scores(fold.model, adj(i, fold.model, lp, lad.features), v)
            for key in cv:
                cv[key].append(np.column_stack([np.full(lad.features.shape[0], s[key][pos]), rungs[key]]))
    out: dict[str, Any] = {"variant": v.label, "srocc": float(spearmanr(comp, mos)[0])}
    groups = [(r.prompt, r.group) for r in recs]
    out["pair_accuracy"] = pair_accuracy(comp, mos, groups, min_delta=0.5)[0]
    out["selection_gain"] = selection_gain(comp, mos, groups)[0]
    out["false_positives"] = int(((mos <= np.quantile(mos, 0.25)) & (comp >= 7.0)).sum())
    for key in cv:
        out[f"folds_{key}"] = falling(np.vstack(cv[key]))
    final = folds[5]
    for name, x in (("photos", data.photos), ("held_out_ai", data.held)):
        preds = []
        for k in range(5) if v.bagged else [5]:
            p = folds[k].photos if name == "photos" else folds[k].held
            p = p if rankers is None else with_ranker(p, rankers[k], x)
            preds.append(adj(k, folds[k].model, p, x))
        pred = {h: np.mean([p[h] for p in preds], axis=0) for h in preds[0]}
        s = variant_scores(final.model, pred, v)
        for key in ("technical", "composite"):
            out[f"{name}_{key}"] = falling(s[key])
    return out


def part_alone(data: Data, folds: list[Fold], head: str, rankers: list[Any] | None = None) -> dict[str, Any]:
    """Ladders (and, for a ranking term, agreement) of one part alone: is any part more monotone than the sum?"""
    from scipy.stats import spearmanr

    from quality.stats import pair_accuracy, selection_gain

    sign = -1.0 if head == DAMAGE_HEAD else 1.0
    out: dict[str, Any] = {"variant": f"{head} alone" + (" (hidden layer)" if rankers else "")}
    final = folds[5]
    for name, x, pred in (("photos", data.photos, final.photos), ("held_out_ai", data.held, final.held)):
        p = pred if rankers is None else with_ranker(pred, rankers[5], x)
        out[f"{name}_technical"] = falling(sign * p[head])
    if head == RANKING_HEAD:
        recs, base, mos = data.records, data.base, data.mos
        r = np.full(len(recs), np.nan)
        for i, fold in enumerate(folds[:5]):
            p = fold.test_pred if rankers is None else with_ranker(fold.test_pred, rankers[i], base[fold.test])
            r[fold.test] = p[RANKING_HEAD]
        groups = [(x.prompt, x.group) for x in recs]
        out["srocc"] = float(spearmanr(r, mos)[0])
        out["pair_accuracy"] = pair_accuracy(r, mos, groups, min_delta=0.5)[0]
        out["selection_gain"] = selection_gain(r, mos, groups)[0]
    return out


def render(row: dict[str, Any]) -> str:
    def lad(key: str) -> str:
        if key not in row:
            return "–"
        share, strict, total = row[key]
        return f"{100 * share:.1f} % ({strict}/{total})"

    cells = [row["variant"]]
    cells += [f"{row[k]:.3f}" if k in row else "–" for k in ("srocc", "pair_accuracy")]
    cells.append(f"{100 * row['selection_gain']:.1f} %" if "selection_gain" in row else "–")
    cells.append(str(row.get("false_positives", "–")))
    cells += [lad(k) for k in ("folds_composite", "photos_technical", "photos_composite", "held_out_ai_technical",
                               "held_out_ai_composite")]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


HEADER = ("| variant | SROCC (5-fold) | pair acc. | selection gain | false pos. | held-out folds' ladders, composite "
          "| photos, technical | photos, composite | held-out AI, technical | held-out AI, composite |\n"
          "|" + " --- |" * 10)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path, help="rated folder (labels.csv and images), e.g. ../shared/data/agiqa3k")
    p.add_argument("--cache", type=Path, required=True, help="feature cache folder (outside the repository)")
    p.add_argument("--photos", type=Path, help="folder of the ten sample photos as PNG (default: written to the cache)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--monotone", action="store_true", help="also refit every fold with monotone constraints")
    p.add_argument(
        "--natural-human",
        action="store_true",
        help="also refit every fold with the natural-photo ladders in the human-aligned part (slower)",
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="also score bench/independent_ladders.py's sets with the final model, with and without the penalty of "
        "the kind detectors of the kinds read backwards",
    )
    p.add_argument(
        "--ringing",
        action="store_true",
        help="also measure a penalty from the ringing (symmetric edge overshoot) of every image (~2 minutes more)",
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="also refit without the whole-factor resolution-loss ladder, with it in every part, and with another seed",
    )
    p.add_argument(
        "--encode",
        action="store_true",
        help="also measure the ranking slope's neighbours, and refit with the re-encoding features in other parts",
    )
    p.add_argument("--reversals", metavar="KIND", choices=list(KINDS),
                   help="also print where this kind's ladders turn back")  # fmt: skip
    p.add_argument(
        "--new-only",
        action="store_true",
        help="only the shipped row, the per-kind detector penalties and --natural-human (not the first table's)",
    )
    p.add_argument(
        "--shipped-only",
        action="store_true",
        help="only the shipped row (and the rows other options ask for): no alternatives, no detectors",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("variants")
    F._sklearn()
    photos = args.photos or write_photos(args.cache / "photos")
    data = load_data(args.dataset, args.cache, photos, max(1, args.jobs))
    folds = fit_folds(data, log)
    rows = [measure(data, folds, Variant("shipped"))]
    if not (args.new_only or args.shipped_only):
        rows += published_rows(data, folds, log, args.monotone)
    if not args.shipped_only:
        rows += detector_rows(data, folds, log)
    if args.ringing:
        rows += ringing_rows(data, folds, photos, args.cache, max(1, args.jobs), log)
    if args.whole:
        rows += whole_rows(data, log, folds)
    if args.encode:
        rows += encode_rows(data, log, folds)
    if args.natural_human:
        log.info("refitting every fold with the natural-photo ladders in the human-aligned part")
        rows.append(
            measure(
                data,
                fit_folds(data, log, pseudo_from=folds),
                Variant("human-aligned part also on the natural-photo ladders (pseudo scores)"),
            )
        )
    print(HEADER)
    for row in rows:
        print(render(row))
    if args.reversals:
        reversals(data, folds, args.reversals)
    if args.independent:
        independent_check(data, folds, Detectors(BACKWARDS, 1.0, 0.05))
    return 0


def detector_rows(data: Data, folds: list[Fold], log: logging.Logger) -> list[dict[str, Any]]:
    """Per-kind detectors (:class:`KindDetectors`) as a penalty beside the shipped parts; prints how each detector
    alone orders each kind's photo and held-out AI ladders (the final model's detectors)."""
    log.info("fitting one ranking term per kind of damage in every fold")
    fitted = [KindDetectors(data.records, f.train, data.base[f.train], data.natural, list(KINDS)) for f in folds]
    final = fitted[5]
    print("share of strictly falling steps, photo and held-out AI ladders: detector (row) along each kind (column)")
    print("| detector | " + " | ".join(KINDS) + " |\n|" + " --- |" * (len(KINDS) + 1))
    # readings[j]: every detector along kind j's photo and held-out AI ladders, (images, steps, detectors)
    readings = [np.vstack([final.readings(data.photos[:, j]), final.readings(data.held[:, j])])
                for j in range(len(KINDS))]  # fmt: skip
    for k, kind in enumerate(KINDS):
        cells = [f"{100 * falling(r[..., k])[0]:.0f} %" for r in readings]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    rows = []
    for label, det in (
        ("kind detectors, all kinds, 0.5 points per unit past the 5th percentile", Detectors(tuple(KINDS), 0.5, 0.05)),
        ("kind detectors, all kinds, 1.0 beyond the 5th percentile", Detectors(tuple(KINDS), 1.0, 0.05)),
        ("kind detectors, all kinds, 0.25 beyond the 25th percentile", Detectors(tuple(KINDS), 0.25, 0.25)),
        ("kind detectors, the 3 kinds read backwards, 1.0 beyond the 5th percentile", Detectors(BACKWARDS, 1.0, 0.05)),
        ("kind detectors, the 3 kinds read backwards, 1.0 beyond the median", Detectors(BACKWARDS, 1.0, 0.5, 0.3)),
        ("oversharpening detector, 1.0 beyond the median", Detectors(("oversharpen",), 1.0, 0.5, 0.3)),
    ):
        rows.append(measure(data, folds, Variant(label), adjust=det.adjust(fitted)))
    return rows


def published_rows(data: Data, folds: list[Fold], log: logging.Logger, monotone: bool) -> list[dict[str, Any]]:
    """The alternatives of the previous table (README: more alternatives)."""
    log.info("fitting the hidden-layer ranking terms")
    base = data.base
    hidden = []
    for fold in folds:
        better, worse = F.ranking_pairs(data.records, fold.train, data.natural)
        hidden.append(HiddenLayerRanker(base[fold.train], better, worse))
    linear = [f.model.members[-1].predictor for f in folds]

    class Mean:
        def __init__(self, a: Any, b: Any) -> None:
            self.a, self.b = a, b

        def predict(self, x: F64) -> F64:
            return np.asarray(0.5 * (self.a.predict(x) + self.b.predict(x)), np.float64)

    mean = [Mean(a, b) for a, b in zip(linear, hidden, strict=True)]
    grouped = []  # the linear term, also fitted on within-group human orderings (each repeated GROUP_REPEAT times)
    for fold in folds:
        better, worse = F.ranking_pairs(data.records, fold.train, data.natural)
        gb, gw = group_pairs(data.records, fold.train)
        grouped.append(
            F.fit_ranker(
                base[fold.train],
                np.vstack([better, np.repeat(base[gb], GROUP_REPEAT, axis=0)]),
                np.vstack([worse, np.repeat(base[gw], GROUP_REPEAT, axis=0)]),
            )
        )
    rows = []
    for v in (
        Variant("ranking weight 0.75", weight=0.75),
        Variant("ranking weight 1.0", weight=1.0),
        Variant("ranking slope 1 point per unit below -1 (in place of the model's)", slope=1.0),
        Variant("no severity cap (the previous protocol)", cap=math.inf),
        Variant("five fold models averaged", bagged=True),
    ):
        rows.append(measure(data, folds, v))
    for w in (0.5, 0.75):
        rows.append(measure(data, folds, Variant(f"hidden-layer ranking term, weight {w}", weight=w), hidden))
    rows.append(measure(data, folds, Variant("linear and hidden-layer terms averaged"), mean))
    rows.append(
        measure(data, folds, Variant(f"ranking term also on within-group human pairs (x{GROUP_REPEAT})"), grouped)
    )
    rows += [
        part_alone(data, folds, RANKING_HEAD),
        part_alone(data, folds, RANKING_HEAD, hidden),
        part_alone(data, folds, DAMAGE_HEAD),
    ]
    if monotone:
        F.fit_trees = monotone_fit_trees(data.names)
        rows.append(measure(data, fit_folds(data, log), Variant("monotone constraints in the trees")))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
