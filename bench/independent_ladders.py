"""Damage ladders with damage code of their own (PIL/numpy, not ``quality.distortions``), scored by the full scorer.

    python bench/independent_ladders.py [--model MODEL.npz] [--compare OTHER.npz] [--no-calibration]

Not a timing benchmark: the acceptance check of README's agreement section ("independent ladders"), with
damage the calibration never saw made by code it does not share. On scikit-image's sample photos:

* issue 10's set: Gaussian blur σ 1/2/4, RGB noise σ 10/25/50, PIL JPEG quality 30/10/3 on astronaut, coffee,
  chelsea, rocket and immunohistochemistry (15 ladders);
* an extended set: 12 kinds at 3 levels on all ten photos (120 ladders, levels in :data:`EXTENDED`);
* issue 10's heavy copies (blur σ 4 and 6 at 512 px, noise σ 50, JPEG 5 and 3, 4× bicubic resolution loss) of the
  five photos: how many drop 5 points or more in technical score, how many keep a composite of 5.0.

Printed per set: ladders whose technical score (composite) falls at every step, the share of falling steps, and
each ladder that does not fall. Offline, no deep-model weights: BRISQUE, NIQE, edge density (+ calibration).
``--compare`` scores everything with a second model file too, in the same run.
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from quality.calibration.model import CalibrationModel
    from quality.scorer import Scorer

Damage = Callable[[Image.Image, float], Image.Image]
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "immunohistochemistry", "moon",
          "retina", "rocket")  # fmt: skip
ISSUE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _codec(im: Image.Image, fmt: str, quality: float) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, quality=int(quality))
    return Image.open(buf).convert("RGB")


def _noise(im: Image.Image, sigma: float) -> Image.Image:
    a = np.asarray(im, np.float32)
    noisy = a + np.random.default_rng(1).normal(0.0, sigma, a.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _chroma_noise(im: Image.Image, sigma: float) -> Image.Image:
    ycc = np.asarray(im.convert("YCbCr"), np.float32).copy()
    ycc[..., 1:] += np.random.default_rng(2).normal(0.0, sigma, ycc[..., 1:].shape)
    return Image.fromarray(np.clip(ycc, 0, 255).astype(np.uint8), "YCbCr").convert("RGB")


def _down_up(im: Image.Image, factor: float) -> Image.Image:
    w, h = im.size
    small = im.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def _unsharp(im: Image.Image, percent: float) -> Image.Image:
    return im.filter(ImageFilter.UnsharpMask(radius=3, percent=int(percent), threshold=0))


ISSUE: dict[str, tuple[Damage, tuple[float, ...]]] = {
    "blur": (lambda im, v: im.filter(ImageFilter.GaussianBlur(v)), (1, 2, 4)),
    "noise": (_noise, (10, 25, 50)),
    "jpeg": (lambda im, v: _codec(im, "JPEG", v), (30, 10, 3)),
}
EXTENDED: dict[str, tuple[Damage, tuple[float, ...]]] = {
    "gaussian_blur": (lambda im, v: im.filter(ImageFilter.GaussianBlur(v)), (1.5, 3, 6)),
    "box_blur": (lambda im, v: im.filter(ImageFilter.BoxBlur(v)), (1, 3, 6)),
    "rgb_noise": (_noise, (8, 20, 45)),
    "chroma_noise": (_chroma_noise, (10, 25, 50)),
    "jpeg": (lambda im, v: _codec(im, "JPEG", v), (40, 15, 4)),
    "webp": (lambda im, v: _codec(im, "WEBP", v), (40, 10, 1)),
    "down_up": (_down_up, (1.5, 2.5, 4)),
    "posterize": (lambda im, v: ImageOps.posterize(im, int(v)), (5, 3, 2)),
    "unsharp_mask": (_unsharp, (100, 250, 500)),
    "contrast": (lambda im, v: ImageEnhance.Contrast(im).enhance(v), (0.7, 0.45, 0.25)),
    "brighten": (lambda im, v: ImageEnhance.Brightness(im).enhance(v), (1.3, 1.7, 2.3)),
    "darken": (lambda im, v: ImageEnhance.Brightness(im).enhance(v), (0.7, 0.45, 0.25)),
}


def heavy_copies(im: Image.Image) -> dict[str, Image.Image]:
    k = max(im.size) / 512
    return {
        "blur σ 4": im.filter(ImageFilter.GaussianBlur(4 * k)),
        "blur σ 6": im.filter(ImageFilter.GaussianBlur(6 * k)),
        "noise σ 50": _noise(im, 50),
        "JPEG 5": _codec(im, "JPEG", 5),
        "JPEG 3": _codec(im, "JPEG", 3),
        "4x resolution loss": _down_up(im, 4),
    }


def photo(name: str) -> Image.Image:
    import skimage.data

    a = np.asarray(getattr(skimage.data, name)())
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(a[..., :3]).astype(np.uint8))


def scorer_for(model: Path | CalibrationModel | None, calibration: bool, weights: Path) -> Scorer:
    """A scorer with the model file (or loaded model) ``model`` (``None``: the shipped model, which the scorer
    loads itself)."""
    from quality.calibration.model import from_bytes
    from quality.scorer import Scorer
    from quality.settings import QualitySettings

    settings = QualitySettings(offline=True, weights_dir=weights, device="cpu", calibration=calibration)
    loaded = from_bytes(model.read_bytes(), str(model)) if isinstance(model, Path) else model
    return Scorer(settings, calibration_model=loaded)


def run_set(score: Callable[[Image.Image], tuple[float, float]], title: str,
            sets: dict[str, tuple[Damage, tuple[float, ...]]], photos: tuple[str, ...]) -> None:  # fmt: skip
    ladders = strict_t = strict_c = steps = falls_t = falls_c = 0
    failures = []
    for name in photos:
        im = photo(name)
        clean = score(im)
        for kind, (damage, levels) in sets.items():
            values = [clean] + [score(damage(im, v)) for v in levels]
            t = [v[0] for v in values]
            c = [v[1] for v in values]
            ft = sum(b < a for a, b in itertools.pairwise(t))
            fc = sum(b < a for a, b in itertools.pairwise(c))
            ladders += 1
            steps += len(levels)
            falls_t += ft
            falls_c += fc
            strict_t += ft == len(levels)
            strict_c += fc == len(levels)
            if ft < len(levels) or fc < len(levels):
                failures.append(f"    {name} + {kind}: technical " + " → ".join(f"{x:.2f}" for x in t)
                                + "; composite " + " → ".join(f"{x:.2f}" for x in c))  # fmt: skip
    print(f"  {title}: strictly falling ladders technical {strict_t}/{ladders}, composite {strict_c}/{ladders}; "
          f"falling steps {100 * falls_t / steps:.1f} % / {100 * falls_c / steps:.1f} %")  # fmt: skip
    print("\n".join(failures) if failures else "    every ladder falls strictly")


def run_heavy(score: Callable[[Image.Image], tuple[float, float]]) -> None:
    drops = high = n = 0
    rows = []
    for name in ISSUE_PHOTOS:
        im = photo(name)
        t0 = score(im)[0]
        row = []
        for label, copy in heavy_copies(im).items():
            t, c = score(copy)
            n += 1
            drops += t0 - t >= 5.0
            high += c >= 5.0
            row.append(f"{label} {t:.2f}")
        rows.append(f"    {name}: clean {t0:.2f}; " + ", ".join(row))
    print(f"  issue 10's heavy copies: technical drop >= 5 in {drops}/{n}; composite >= 5.0 in {high}/{n}")
    print("\n".join(rows))


def run_all(scorer: Scorer) -> None:
    """Every set of this script (issue 10's, the extended one, the heavy copies), scored by ``scorer``."""

    def score(im: Image.Image) -> tuple[float, float]:
        report = scorer.score(im)
        technical = report.dimension_score("technical")
        if technical is None:  # every sample photo is large enough for BRISQUE and NIQE
            raise RuntimeError(f"technical not scored: {report.grade_reasons}")
        return technical, float(report.composite_score)

    run_set(score, "issue 10's set", ISSUE, ISSUE_PHOTOS)
    run_set(score, "extended set", EXTENDED, PHOTOS)
    run_heavy(score)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="calibration model file (default: the shipped one)")
    ap.add_argument("--compare", type=Path, help="a second model file, scored in the same run")
    ap.add_argument("--no-calibration", action="store_true", help="the spec-table mapping only")
    ap.add_argument("--weights", type=Path, default=REPO / ".no-weights", help="weights folder (offline)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    runs = [("shipped model" if args.model is None else str(args.model), args.model)]
    if args.compare is not None:
        runs.append((str(args.compare), args.compare))
    for title, model in runs:
        print(f"{title}{' (calibration off)' if args.no_calibration else ''}:")
        run_all(scorer_for(model, not args.no_calibration, args.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
