"""The metric registry: every metric is *data*, one row of :data:`METRICS`, and everything else is derived.

A :class:`MetricSpec` says which dimension a metric feeds, which way is better, its real raw range, how a raw
value becomes a 0–10 score, and which backend class computes it (``implementation``: ``"module:Class"``,
imported only when a scorer first needs it, by :func:`quality.registry.backend_class`). From this table come:
the scorer's backends and the metrics each one produces (:mod:`quality.registry`), the report's score blocks and
so the metadata JSON Schema (:mod:`quality.report`), the CLI's columns, the eval predictors and the dashboard's
raw-metric columns; :mod:`quality.normalize` uses nothing but this table, and the README's metric table is
generated from it (``python -m quality metrics``). ``tests/quality/test_registry.py`` ties them together.

Adding a metric: one :class:`MetricSpec` row here and one backend module (a :class:`quality.backends.base.Backend`
subclass returning the metric's raw value by name), plus its line in the README's metric table.

The four dimensions are defined once, in :data:`DIMENSION_SPECS` (order, labels, report texts); every other
module imports :data:`DIMENSIONS` instead of writing the tuple again.

Mapping: ``score = 10 * clamp((raw - worst) / (best - worst), 0, 1)``. ``worst``/``best`` are the raw values
that map to 0 and 10. They are taken from each metric's real distribution (for BRISQUE/NIQE: the published
reference values and the AGIQA-3K spread), never from a made-up 0–100 range: NIQE lives in about 2–20, so
``worst=12, best=2.5`` and not ``0..100``. Raw values outside ``plausible`` are kept as they are in the report
and flagged as out of range; the score is clamped.

Edge density is not monotone (too few edges = soft/blurry, too many = noise/artifacts), so it uses a
trapezoid in log space: see :func:`quality.normalize.edge_density_score`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from quality.errors import ConfigError

Dimension = Literal["technical", "aesthetic", "prompt_adherence", "detail"]


@dataclass(frozen=True)
class DimensionSpec:
    name: Dimension
    label: str
    """How people read it ("prompt adherence"); the dashboard capitalises it."""
    abbrev: str
    """A column head of at most 6 characters (the CLI's batch table)."""
    description: str
    """What its 0–10 score means (the report's ``score`` field description, and so the JSON Schema's)."""
    needs_prompt: bool = False
    """Not applicable without a prompt."""

    @property
    def block_name(self) -> str:
        """The report model of its block: ``prompt_adherence`` → ``PromptAdherenceScores``."""
        return "".join(part.title() for part in self.name.split("_")) + "Scores"


DIMENSION_SPECS: dict[Dimension, DimensionSpec] = {
    spec.name: spec
    for spec in (
        DimensionSpec("technical", "technical", "tech", "0–10; artifacts, noise, blur"),
        DimensionSpec("aesthetic", "aesthetic", "aesth", "0–10; composition, colour, appeal"),
        DimensionSpec(
            "prompt_adherence", "prompt adherence", "prompt", "0–10; how well the image matches the prompt",
            needs_prompt=True,
        ),
        DimensionSpec("detail", "detail", "detail", "0–10; fine detail and sharpness"),
    )
}
DIMENSIONS: tuple[Dimension, ...] = tuple(DIMENSION_SPECS)
"""The dimensions in report order: the one definition every module imports."""
PROMPT_DIMENSIONS: tuple[Dimension, ...] = tuple(d for d, spec in DIMENSION_SPECS.items() if spec.needs_prompt)
if get_args(Dimension) != DIMENSIONS:  # the Literal is for type checkers; the table must say the same
    raise ConfigError(f"DIMENSION_SPECS {DIMENSIONS} disagrees with the Dimension type {get_args(Dimension)}")


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
    implementation: str
    """The backend class that computes it, ``"package.module:Class"``. Several metrics naming the same class share
    one loaded instance and one forward pass; the module's last name is the backend's name (timings, options)."""
    raw_description: str = ""
    """The report's description of the raw value (the JSON Schema's too), e.g. "raw NIQE (lower is better)"."""
    weight: float = 1.0
    """Weight of this metric inside its dimension (the dimension score is the weighted mean of its metrics)."""
    needs_prompt: bool = False
    weights_files: tuple[str, ...] = field(default_factory=tuple)
    """Names of :mod:`quality.weights` entries this metric needs (empty: works with no download)."""
    reference: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"metric name {self.name!r} must be a Python identifier (it is a report field)")
        if self.dimension not in DIMENSION_SPECS:
            raise ConfigError(f"metric {self.name!r}: unknown dimension {self.dimension!r}; one of {DIMENSIONS}")
        module, sep, cls = self.implementation.partition(":")
        if not (module and sep and cls.isidentifier()):
            raise ConfigError(f"metric {self.name!r}: implementation must be 'package.module:Class'")

    @property
    def backend(self) -> str:
        """The backend's name: its module's last name (``quality.backends.nss:NSSBackend`` → ``nss``)."""
        return self.implementation.partition(":")[0].rpartition(".")[2]

    @property
    def report_description(self) -> str:
        return self.raw_description or f"raw {self.name}"


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            name="brisque",
            dimension="technical",
            description="BRISQUE: natural-scene statistics of MSCN coefficients + SVR (lower is better)",
            mapping=LinearMap(worst=80.0, best=5.0),
            plausible=(-20.0, 150.0),
            implementation="quality.backends.nss:NSSBackend",
            raw_description="raw BRISQUE (lower is better, ~0–100)",
            weights_files=("brisque_svm",),
            reference="Mittal, Moorthy, Bovik, IEEE TIP 2012",
        ),
        MetricSpec(
            name="niqe",
            dimension="technical",
            description="NIQE: distance to a pristine multivariate Gaussian of NSS features (lower is better)",
            mapping=LinearMap(worst=12.0, best=2.5),
            plausible=(0.0, 100.0),
            implementation="quality.backends.nss:NSSBackend",
            raw_description="raw NIQE (lower is better, ~2–20)",
            weights_files=("niqe_pristine",),
            reference="Mittal, Soundararajan, Bovik, IEEE SPL 2013",
        ),
        MetricSpec(
            name="laion_aesthetic",
            dimension="aesthetic",
            description="LAION aesthetic predictor v2: MLP on CLIP ViT-L/14 image embeddings (1–10)",
            mapping=LinearMap(worst=3.0, best=7.5),
            plausible=(0.0, 11.0),
            implementation="quality.backends.clip:ClipBackend",
            raw_description="raw LAION aesthetic predictor (1–10)",
            weights_files=("clip_vit_l14", "laion_aesthetic_head"),
            reference="Schuhmann, improved-aesthetic-predictor (sac+logos+ava1-l14-linearMSE)",
        ),
        MetricSpec(
            name="nima_mean",
            dimension="aesthetic",
            description="NIMA (Inception-ResNet-v2, AVA): mean of the predicted 1–10 rating distribution",
            mapping=LinearMap(worst=3.5, best=6.5),
            plausible=(1.0, 10.0),
            implementation="quality.backends.nima:NIMABackend",
            raw_description="raw NIMA mean rating (1–10)",
            weights_files=("nima_inception_resnet_v2_ava",),
            reference="Talebi, Milanfar, IEEE TIP 2018",
        ),
        MetricSpec(
            name="clip_score",
            dimension="prompt_adherence",
            description="CLIP score: cosine similarity of CLIP ViT-L/14 image and prompt embeddings",
            mapping=LinearMap(worst=0.12, best=0.34),
            plausible=(-1.0, 1.0),
            implementation="quality.backends.clip:ClipBackend",
            raw_description="raw CLIP cosine similarity of image and prompt",
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
            implementation="quality.backends.topiq:TopiqBackend",
            raw_description="raw TOPIQ-NR (0–1)",
            weights_files=("topiq_nr_koniq_res50",),
            reference="Chen et al., IEEE TIP 2024",
        ),
        MetricSpec(
            name="edge_density",
            dimension="detail",
            description="Edge density: Canny edge pixels / area at a fixed working size (too few or too many is bad)",
            mapping=BandMap(zero_low=0.003, ideal_low=0.025, ideal_high=0.12, zero_high=0.40),
            plausible=(0.0, 1.0),
            implementation="quality.backends.edges:EdgeBackend",
            raw_description="raw share of edge pixels (0–1)",
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


def metrics_by_backend(names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Backend name → its metrics (of ``names``, default all), in table order."""
    out: dict[str, list[str]] = {}
    for name in METRICS if names is None else names:
        out.setdefault(metric(name).backend, []).append(name)
    return out


def implementations() -> dict[str, str]:
    """Backend name → ``"module:Class"``; one class per backend name (checked)."""
    out: dict[str, str] = {}
    for spec in METRICS.values():
        seen = out.setdefault(spec.backend, spec.implementation)
        if seen != spec.implementation:
            raise ConfigError(f"backend {spec.backend!r} is named by both {seen} and {spec.implementation}")
    return out


#: weights entry → the backend option that may name another entry instead (see each backend's docstring); the
#: scorer resolves a metric's weights *before* importing its backend, so a metric without weights costs no import
#: of torch, open_clip, timm or pyiqa
WEIGHT_OPTIONS: Mapping[str, str] = {
    "clip_vit_l14": "clip.weights",
    "laion_aesthetic_head": "clip.head",
    "nima_inception_resnet_v2_ava": "nima.weights",
    "topiq_nr_koniq_res50": "topiq.weights",
}
