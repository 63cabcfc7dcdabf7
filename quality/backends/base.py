"""The backend contract.

A backend computes one or more metrics that share work (BRISQUE and NIQE share decoding and luma; the LAION
aesthetic head and the CLIP score share one ViT-L/14 image embedding). The scorer calls :meth:`Backend.load` once
per process (through :mod:`quality.models`, which caches loaded backends), then :meth:`Backend.compute` for every
image, possibly from several threads at once: ``compute`` must not mutate shared state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from quality.image_io import PreparedImage
from quality.specs import METRICS
from quality.weights import WeightsStore


@dataclass(frozen=True)
class LoadContext:
    weights: WeightsStore
    device: str = "cpu"
    """A torch device string ("cpu", "cuda", "cuda:1", "mps")."""
    options: dict[str, object] = field(default_factory=dict)


class Backend(ABC):
    """A backend does not list its metrics: the metric table (:data:`quality.specs.METRICS`) names the backend
    class of each metric, and :attr:`metrics` is derived from it, as is which metrics need a prompt
    (``MetricSpec.needs_prompt``: the scorer skips them, "not applicable", when there is none)."""

    #: registry key, e.g. "nss": by default the name of the module that defines the class (the name
    #: :attr:`quality.specs.MetricSpec.backend` derives from ``implementation``)
    name: ClassVar[str] = ""
    #: False for numpy/OpenCV backends: the scorer then loads them without resolving ``device="auto"`` (which
    #: imports torch to ask for CUDA)
    uses_torch: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__module__.rpartition(".")[2]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this backend produces: the rows of the metric table that name this backend."""
        return tuple(spec.name for spec in METRICS.values() if spec.backend == self.name)

    def __init__(self) -> None:
        #: metrics this backend cannot produce although it loaded (e.g. CLIP loaded, aesthetic head absent),
        #: metric name → reason; filled by :meth:`load`
        self.unavailable: dict[str, str] = {}

    @abstractmethod
    def load(self, ctx: LoadContext) -> None:
        """Load weights / build models. Raises :class:`quality.errors.WeightsError` when weights are absent."""

    @abstractmethod
    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        """Raw values for this backend's metrics (prompt metrics only when ``prompt`` is given)."""

    def compute_detailed(self, image: PreparedImage, prompt: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        """Raw values plus intermediate results other steps may reuse (e.g. the NSS features, which the
        calibration step reads instead of computing them again). Default: :meth:`compute` and nothing more."""
        return self.compute(image, prompt), {}

    def versions(self) -> dict[str, str]:
        """metric name → implementation and weights identity (recorded in every report)."""
        return {}

    def cache_key(self, ctx: LoadContext) -> tuple[object, ...]:
        """Two loads with the same key give the same model: the process-wide cache keys on this."""
        return (type(self).__name__, ctx.device, str(ctx.weights.dir), tuple(sorted(ctx.options.items())))
