"""The damage-integrity head's training data: damage ladders of natural photographs, beside the AGIQA ones.

The calibration's technical and detail scores have two parts (:mod:`.fit`): a *human-aligned* part (members that
predict the human opinion score) and a *damage-integrity* part: members that predict how damaged an image is,
a severity from 0 (as made) to 1 (:mod:`quality.distortions`' heaviest level), learned only from orderings known
for free. Their training rows are the fit images' damage ladders (:mod:`.ladders`: AI images, all JPEG files)
and the ladders of the natural photographs below, so that the head also sees lossless sources (light JPEG or
WebP on a PNG photo), greyscale, dark and soft images.

The sources come with packages a development install has (scikit-image's sample data, scikit-learn's two
sample photos, matplotlib's sample photo): none of them is one of the photos the ladder check and the README
figures use (astronaut, camera, chelsea, coffee, coins, hubble_deep_field, immunohistochemistry, moon, retina,
rocket). Each source gives six variants (whole, two crops, dark, soft, greyscale) with a fixed random draw per
name, and every variant one ladder at random severities (:func:`.ladders.severities`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from quality.calibration.ladders import STEPS, LadderCache, Ladders
from quality.calibration.ladders import compute as compute_ladders
from quality.calibration.parallel import parallel_map

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
F64 = NDArray[np.float64]

#: scikit-image sample images used as sources (none is a ladder-check photo)
SKIMAGE_SOURCES = ("motorcycle_left.png", "brick.png", "grass.png", "gravel.png", "cell.png", "color.png", "page.png")
#: the photos the ladder check and README figures use: never a training source
TEST_PHOTOS = frozenset({"astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field",
                         "immunohistochemistry", "ihc", "moon", "retina", "rocket"})  # fmt: skip


def natural_sources() -> dict[str, U8]:
    """``name → RGB`` of the natural-photo sources that the installed packages provide (missing ones skipped)."""
    out: dict[str, U8] = {}
    try:
        import skimage

        folder = Path(skimage.__file__).parent / "data"
        for name in SKIMAGE_SOURCES:
            img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            if img is not None:
                out[name.split(".")[0]] = np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.uint8)
    except ImportError:
        log.warning("scikit-image is not installed: its sample images are not damage-ladder sources")
    try:
        from sklearn.datasets import load_sample_images

        for name, img in zip(("china", "flower"), load_sample_images().images, strict=True):
            out[name] = np.asarray(img, np.uint8)
    except ImportError:  # pragma: no cover - scikit-learn is required for fitting anyway
        pass
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None:
            out["grace_hopper"] = np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.uint8)
    except ImportError:
        log.warning("matplotlib is not installed: its sample photo is not a damage-ladder source")
    if TEST_PHOTOS & set(out):  # pragma: no cover - a guard against editing the lists above
        raise RuntimeError("a ladder-check photo is among the damage-ladder sources")
    return out


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


def variants(name: str, rgb: U8) -> Iterator[tuple[str, U8]]:
    """The source, two crops (50–75 % of each side), a dark copy (linear gain 0.05–0.2), a soft one (σ 1 blur,
    half contrast) and a greyscale one."""
    rng = _rng(name)
    h, w = rgb.shape[:2]
    yield name, rgb
    for i in range(2):
        f = rng.uniform(0.5, 0.75)
        ch, cw = int(h * f), int(w * f)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        yield f"{name}:crop{i}", np.ascontiguousarray(rgb[y0 : y0 + ch, x0 : x0 + cw])
    lin = (rgb.astype(np.float32) / 255.0) ** 2.2
    dark = 255.0 * (lin * rng.uniform(0.05, 0.2)) ** (1 / 2.2)
    yield f"{name}:dark", np.asarray(np.clip(np.rint(dark), 0, 255), np.uint8)
    f32 = rgb.astype(np.float32)
    soft = cv2.GaussianBlur(f32, (0, 0), 1.0)
    yield f"{name}:soft", np.asarray(np.clip(np.rint(f32.mean() + 0.5 * (soft - f32.mean())), 0, 255), np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    yield f"{name}:gray", np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def working(rgb: U8, side: int) -> U8:
    """Reduced like the scorer does (:meth:`quality.image_io.PreparedImage.fit`: PIL bicubic)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    return np.ascontiguousarray(np.asarray(small, np.uint8))


def _one(args: tuple[str, U8, list[str], str | None, int]) -> tuple[F64, Ladders] | None:
    from quality.calibration.features import extract
    from quality.errors import QualityError

    name, rgb, names, cache, side = args
    rgb = working(rgb, side)
    store = None if cache is None else LadderCache(Path(cache) / "natural")
    key = "" if store is None else store.key(hashlib.sha256(rgb.tobytes()).hexdigest(), names, [], STEPS, 0)
    try:
        f = extract(rgb)
    except (QualityError, ValueError):
        return None
    clean = np.array([f[n] for n in names], np.float64)
    if store is not None:
        hit = store.load(name.replace(":", "_"), key)
        if hit is not None:
            return clean, hit
    done = compute_ladders(f"{name}#0", rgb, names)  # "#0": the first (only) severity draw of this variant
    if store is not None:
        done.name = name.replace(":", "_")
        store.save(done, key)
    return clean, done


def natural_ladders(names: Sequence[str], side: int, *, jobs: int = 1, cache: Path | None = None,
                    ) -> list[tuple[F64, Ladders]]:  # fmt: skip
    """``(clean features, ladders)`` of every variant of every :func:`natural_sources` image (≈ 4 s each and
    core; ``cache/natural`` keeps them between fits)."""
    work = [(vn, v, list(names), None if cache is None else str(cache), side)
            for n, rgb in natural_sources().items() for vn, v in variants(n, rgb)]  # fmt: skip
    return [r for r in parallel_map(_one, work, jobs) if r is not None]


def ordered_pairs(pairs: Sequence[tuple[F64, Ladders]]) -> tuple[F64, F64]:
    """``(better, worse)`` feature rows of every ordering a ladder gives for free: within one kind of damage of
    one source, the source ranks above each copy and each copy above every more damaged one (rows whose features
    are undefined are skipped)."""
    better: list[F64] = []
    worse: list[F64] = []
    for clean, lad in pairs:
        for k in range(len(lad.kinds)):
            seq = [clean, *lad.features[k]]
            seq = [v for v in seq if np.isfinite(v).all()]
            for i, j in itertools.combinations(range(len(seq)), 2):
                better.append(seq[i])
                worse.append(seq[j])
    if not better:
        return np.empty((0, 0)), np.empty((0, 0))
    return np.stack(better), np.stack(worse)


def integrity_rows(pairs: Sequence[tuple[F64, Ladders]]) -> tuple[F64, F64]:
    """Rows and severity targets of clean sources (0) and their damaged copies (their severities)."""
    xs: list[F64] = []
    ts: list[F64] = []
    for clean, lad in pairs:
        feats = lad.features.reshape(-1, lad.features.shape[-1])
        sev = lad.severity.reshape(-1)
        ok = np.isfinite(feats).all(axis=1)
        if np.isfinite(clean).all():
            xs.append(clean[None, :])
            ts.append(np.zeros(1))
        xs.append(feats[ok])
        ts.append(sev[ok])
    if not xs:
        return np.empty((0, 0)), np.empty(0)
    return np.concatenate(xs), np.concatenate(ts)
