"""The metric table: every metric is *data*, resolved by one registry.

A :class:`MetricSpec` says which dimension a metric feeds, which way is better, its real raw range, and how a
raw value becomes a 0–10 score. :mod:`quality.normalize` uses nothing but this table, and the README's metric
table is generated from it (``python -m quality metrics``).

Mapping: ``score = 10 * clamp((raw - worst) / (best - worst), 0, 1)``. ``worst``/``best`` are the raw values
that map to 0 and 10. They are taken from each metric's real distribution (for BRISQUE/NIQE: the published
reference values and the AGIQA-3K spread), never from a made-up 0–100 range: NIQE lives in about 2–20, so
``worst=12, best=2.5`` and not ``0..100``. Raw values outside ``plausible`` are kept as they are in the report
and flagged as out of range; the score is clamped.

Edge density is not monotone (too few edges = soft/blurry, too many = noise/artifacts), so it uses a
trapezoid in log space: see :func:`quality.normalize.edge_density_score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from quality.errors import ConfigError

Dimension = Literal["technical", "aesthetic", "prompt_adherence", "detail"]
DIMENSIONS: tuple[Dimension, ...] = ("technical", "aesthetic", "prompt_adherence", "detail")


@dataclass(frozen=True)
class LinearMap:
    """``worst`` maps to 0 and ``best`` to 10, linearly, clamped. ``best < worst`` means lower is better."""

    worst: float
    best: float

    def __post_init__(self) -> None:
        if self.worst == self.best:
            raise ConfigError(f"LinearMap needs worst != best (got {self.worst})")

    @property
    def lower_better(self) -> bool:
        return self.best < self.worst


@dataclass(frozen=True)
class BandMap:
    """A trapezoid in log10 space: 10 inside ``[ideal_low, ideal_high]``, falling linearly (in log10) to 0 at
    ``zero_low`` below and ``zero_high`` above. For metrics where both too little and too much is bad."""

    zero_low: float
    ideal_low: float
    ideal_high: float
    zero_high: float

    def __post_init__(self) -> None:
        if not (0 < self.zero_low < self.ideal_low <= self.ideal_high < self.zero_high):
            raise ConfigError("BandMap needs 0 < zero_low < ideal_low <= ideal_high < zero_high")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    dimension: Dimension
    description: str
    mapping: LinearMap | BandMap
    plausible: tuple[float, float]
    backend: str
    """Which backend computes it (several metrics can share one backend and one forward pass)."""
    weight: float = 1.0
    """Weight of this metric inside its dimension (the dimension score is the weighted mean of its metrics)."""
    needs_prompt: bool = False
    weights_files: tuple[str, ...] = field(default_factory=tuple)
    """Names of :mod:`quality.weights` entries this metric needs (empty: works with no download)."""
    reference: str = ""


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            name="brisque",
            dimension="technical",
            description="BRISQUE: natural-scene statistics of MSCN coefficients + SVR (lower is better)",
            mapping=LinearMap(worst=80.0, best=5.0),
            plausible=(-20.0, 150.0),
            backend="nss",
            weights_files=("brisque_svm",),
            reference="Mittal, Moorthy, Bovik, IEEE TIP 2012",
        ),
        MetricSpec(
            name="niqe",
            dimension="technical",
            description="NIQE: distance to a pristine multivariate Gaussian of NSS features (lower is better)",
            mapping=LinearMap(worst=12.0, best=2.5),
            plausible=(0.0, 100.0),
            backend="nss",
            weights_files=("niqe_pristine",),
            reference="Mittal, Soundararajan, Bovik, IEEE SPL 2013",
        ),
        MetricSpec(
            name="laion_aesthetic",
            dimension="aesthetic",
            description="LAION aesthetic predictor v2: MLP on CLIP ViT-L/14 image embeddings (1–10)",
            mapping=LinearMap(worst=3.0, best=7.5),
            plausible=(0.0, 11.0),
            backend="clip",
            weights_files=("clip_vit_l14", "laion_aesthetic_head"),
            reference="Schuhmann, improved-aesthetic-predictor (sac+logos+ava1-l14-linearMSE)",
        ),
        MetricSpec(
            name="nima_mean",
            dimension="aesthetic",
            description="NIMA (Inception-ResNet-v2, AVA): mean of the predicted 1–10 rating distribution",
            mapping=LinearMap(worst=3.5, best=6.5),
            plausible=(1.0, 10.0),
            backend="nima",
            weights_files=("nima_inception_resnet_v2_ava",),
            reference="Talebi, Milanfar, IEEE TIP 2018",
        ),
        MetricSpec(
            name="clip_score",
            dimension="prompt_adherence",
            description="CLIP score: cosine similarity of CLIP ViT-L/14 image and prompt embeddings",
            mapping=LinearMap(worst=0.12, best=0.34),
            plausible=(-1.0, 1.0),
            backend="clip",
            needs_prompt=True,
            weights_files=("clip_vit_l14",),
            reference="Hessel et al., CLIPScore, EMNLP 2021",
        ),
        MetricSpec(
            name="topiq",
            dimension="detail",
            description="TOPIQ-NR (ResNet-50, KonIQ): top-down semantic-to-distortion quality (0–1)",
            mapping=LinearMap(worst=0.15, best=0.75),
            plausible=(-0.5, 1.5),
            backend="topiq",
            weights_files=("topiq_nr_koniq_res50",),
            reference="Chen et al., IEEE TIP 2024",
        ),
        MetricSpec(
            name="edge_density",
            dimension="detail",
            description="Edge density: Canny edge pixels / area at a fixed working size (too few or too many is bad)",
            mapping=BandMap(zero_low=0.003, ideal_low=0.025, ideal_high=0.12, zero_high=0.40),
            plausible=(0.0, 1.0),
            backend="edges",
        ),
    )
}


def metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(METRICS)
        raise ConfigError(f"unknown metric {name!r}; known metrics: {known}") from None


def metrics_of(dimension: Dimension) -> list[MetricSpec]:
    return [spec for spec in METRICS.values() if spec.dimension == dimension]
