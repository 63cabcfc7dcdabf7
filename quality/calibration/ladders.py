"""Damage ladders for the calibration fit: features of distorted copies of fit images, cached on disk.

For an image and every kind of :mod:`quality.distortions`, :data:`STEPS` copies at increasing severities: step
``k`` (1-based) draws its severity from ``((k - 1 + 0.2) / STEPS, k / STEPS]`` (a fixed random draw per image, kind
and step), so the model sees severities between the ladder check's levels rather than only those levels. The
fit turns each copy into a row whose target lies below its original's (:func:`damage_targets`).

Beside them the fit gets one more ladder per image, :data:`WHOLE_FACTOR_KIND`: resolution loss at the whole (and
half-whole) downscale factors :data:`WHOLE_FACTORS`, always at those severities. A copy downscaled by a whole
factor repeats one interpolation pattern (a 512-px image at 4× is exactly 128 px), which the random severities
never meet and which the features read differently from a copy 1 % less reduced: without this ladder the model
read the ladder check's 4× copy as less damaged than a 3.95× one on every held-out image.

Features are the expensive part (≈ 0.08 s per copy per core): :class:`LadderCache` keeps one ``.npz`` per image
(its features matrix, severities and the spec they were made with) in a folder outside the repository, keyed by
the features version and the image's bytes, so a refit never recomputes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from quality.calibration.features import FEATURES_VERSION, extract
from quality.distortions import KINDS, apply, resolution_loss_severity
from quality.errors import QualityError

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]
STEPS = 4
LADDER_VERSION = "ladders/2"
#: the fit's extra ladder (not a kind of the ladder check): ``resolution_loss`` at :data:`WHOLE_FACTORS`
WHOLE_FACTOR_KIND = "resolution_loss_whole"
WHOLE_FACTORS = (1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class FixedLadder:
    """A fit ladder beyond the ladder check's kinds: a :mod:`quality.distortions` kind at fixed severities."""

    distortion: str
    severities: tuple[float, ...]


#: the fit's ladders beyond the check's kinds, by name
FIXED_LADDERS = {
    WHOLE_FACTOR_KIND: FixedLadder("resolution_loss", tuple(resolution_loss_severity(f) for f in WHOLE_FACTORS)),
}
#: what every fit image's ladders cover (the fixed ones last, so the check's kinds draw what they drew without them)
FIT_KINDS = (*KINDS, *FIXED_LADDERS)


def distortion_of(kind: str) -> str:
    """The :mod:`quality.distortions` kind that makes a ladder of ``kind``."""
    return FIXED_LADDERS[kind].distortion if kind in FIXED_LADDERS else kind


def severities(name: str, kinds: Sequence[str], steps: int = STEPS, seed: int = 0) -> F64:
    """``(kinds, steps)`` strictly increasing severities for one image (reproducible from its name; those of
    :data:`FIXED_LADDERS` are theirs, and a kind's draw depends only on its position in ``kinds``)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    u = rng.uniform(0.2, 1.0, (len(kinds), steps))
    out = np.asarray((np.arange(steps)[None, :] + u) / steps, np.float64)
    for i, kind in enumerate(kinds):
        if kind in FIXED_LADDERS:
            fixed = FIXED_LADDERS[kind].severities
            if steps != len(fixed):
                raise ValueError(f"{kind} has {len(fixed)} steps, not {steps}")
            out[i] = fixed
    return out


@dataclass
class Ladders:
    """Damaged copies of one image: ``features[i, k]`` of kind ``kinds[i]`` at ``severity[i, k]`` (NaN rows where
    the features are undefined)."""

    name: str
    kinds: list[str]
    severity: F64
    features: F64
    """(kinds, steps, n_features)"""

    def only(self, kinds: Collection[str]) -> Ladders:
        """The ladders of ``kinds`` alone (in this object's order)."""
        keep = [i for i, k in enumerate(self.kinds) if k in kinds]
        return Ladders(self.name, [self.kinds[i] for i in keep], self.severity[keep], self.features[keep])


def image_seed(name: str) -> int:
    """The seed of an image's random distortions (noise, dither), reproducible from its name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def compute(name: str, rgb: NDArray[np.uint8], feature_names: Sequence[str], kinds: Sequence[str] | None = None,
            steps: int = STEPS, seed: int = 0) -> Ladders:  # fmt: skip
    kinds = list(kinds or FIT_KINDS)
    sev = severities(name, kinds, steps, seed)
    feats = np.full((len(kinds), steps, len(feature_names)), np.nan)
    seed_ = image_seed(name)
    for i, kind in enumerate(kinds):
        for k in range(steps):
            damaged = apply(distortion_of(kind), rgb, float(sev[i, k]), seed_)
            try:
                f = extract(damaged)
            except (QualityError, ValueError):
                continue
            feats[i, k] = [f[n] for n in feature_names]
    return Ladders(name, kinds, sev, feats)


class LadderCache:
    """One ``<folder>/<image name>.<key>.npz`` per image; ``key`` covers the features version, the ladder spec and
    the image's bytes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, image_sha256: str, feature_names: Sequence[str], kinds: Sequence[str], steps: int, seed: int) -> str:
        spec = json.dumps([FEATURES_VERSION, LADDER_VERSION, image_sha256, list(feature_names), list(kinds), steps,
                           seed])  # fmt: skip
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    def path(self, name: str, key: str) -> Path:
        return self.folder / f"{name}.{key}.npz"

    def load(self, name: str, key: str) -> Ladders | None:
        p = self.path(name, key)
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            return Ladders(name, [str(k) for k in z["kinds"]], np.asarray(z["severity"]), np.asarray(z["features"]))

    def save(self, ladders: Ladders, key: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        p = self.path(ladders.name, key)
        tmp = p.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, kinds=np.array(ladders.kinds), severity=ladders.severity, features=ladders.features)
        tmp.replace(p)


def _order(names: Sequence[str], salt: str) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(f"{salt}:{n}".encode()).hexdigest())


def balanced(names: Sequence[str], groups: Sequence[str], n: int, salt: str) -> list[str]:
    """``n`` names taken round-robin over the groups, each group in a reproducible pseudo-random order."""
    by_group: dict[str, list[str]] = {}
    for name, g in zip(names, groups, strict=True):
        by_group.setdefault(g, []).append(name)
    queues = [_order(v, salt) for _, v in sorted(by_group.items())]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out
