"""The values that flow between the fake server's nodes (what ComfyUI passes as MODEL, CLIP, LATENT, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tests.fakes.comfyui_server.render import Recipe


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    loras: tuple[tuple[str, float], ...] = ()

    def with_lora(self, name: str, strength: float) -> Model:
        return replace(self, loras=(*self.loras, (name, strength)))


@dataclass(frozen=True)
class Clip:
    name: str
    loras: tuple[tuple[str, float], ...] = ()
    stop_at_layer: int = -1


@dataclass(frozen=True)
class Vae:
    name: str


@dataclass(frozen=True)
class Conditioning:
    text: str
    guidance: float | None = None
    zero: bool = False


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int
    recipe: Recipe | None = None
    source: np.ndarray | None = field(default=None, compare=False)
    """Decoded pixels an img2img latent came from, (B, H, W, 3) float32."""


@dataclass(frozen=True)
class Noise:
    seed: int | None  # None: DisableNoise


@dataclass(frozen=True)
class Guider:
    positive: Conditioning
    negative: Conditioning | None
    cfg: float
    model: Model


@dataclass(frozen=True)
class SamplerChoice:
    name: str


@dataclass(frozen=True)
class Sigmas:
    steps: int
    scheduler: str
    denoise: float


@dataclass(frozen=True)
class UpscaleModel:
    name: str
    scale: int = 4
