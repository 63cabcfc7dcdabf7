"""Procedural "diffusion": deterministic scenes whose quality truly depends on the sampling parameters.

A :class:`Recipe` (what a sampler node was asked to do) becomes an RGB image in two stages:

1. **scene** — a landscape composed from the prompt's words and the seed: sky gradient with clouds, sun or
   moon, ridge lines of mountains with rock texture, water / grass / sand / snow ground, trees, buildings, a
   subject blob. Textures are multi-octave value noise, so there is real detail at every scale.
2. **sampling defects** — what an under-converged or badly guided sampler leaves behind:

   * steps: per-pixel grain ``0.012 + 0.16·e^(-steps/25)``, low-frequency latent blotches
     ``0.25·e^(-steps/12)``, blur ``0.4 + 2·e^(-steps/20)`` px (at 512 px) and texture detail ``1 -
     0.8·e^(-steps/25)``: 30 → 50 → 80 steps keep getting visibly cleaner and sharper;
   * guidance (cfg, or Flux guidance): under-guided images are hazy and flat, over-guided ones oversaturated,
     contrast-blown, clipped and posterized (optimum cfg 7, Flux guidance 3.5 with cfg 1);
   * seed: about one seed in five is plainly worse (flat, hazy, low contrast), a few are a little better;
   * quality words in the prompt ("highly detailed", "sharp focus", ...) and defect words in the negative
     prompt ("blurry", "noise", ...) help a little; LoRAs tint the image; ancestral/SDE samplers are
     grainier and karras schedules a bit cleaner; ``denoise < 1`` blends with the source image (img2img).

Everything is seeded from the recipe, so the same recipe always gives the same pixels.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

FloatImage = np.ndarray  # (H, W, 3) float32 in [0, 1]
TEXTURE = 0.05

_BOOSTERS = (
    "masterpiece",
    "best quality",
    "highly detailed",
    "high detail",
    "sharp focus",
    "intricate",
    "8k",
    "4k",
    "ultra detailed",
    "hdr",
    "professional",
    "award winning",
    "high quality",
    "detailed",
)
_NEGATIVE_FIXES = (
    "blurry",
    "blur",
    "low quality",
    "worst quality",
    "bad quality",
    "noise",
    "noisy",
    "jpeg",
    "artifacts",
    "low resolution",
    "lowres",
)


@dataclass(frozen=True)
class Recipe:
    prompt: str = ""
    negative: str = ""
    seed: int = 0
    steps: int = 20
    cfg: float = 7.0
    guidance: float | None = None
    sampler: str = "euler"
    scheduler: str = "normal"
    denoise: float = 1.0
    family: str = "sd15"
    loras: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def model_family(name: str) -> str:
    lowered = name.lower()
    if "flux" in lowered:
        return "flux"
    if "wan" in lowered or "video" in lowered or "hunyuan" in lowered:
        return "video"
    if "xl" in lowered or "pony" in lowered or "illustrious" in lowered:
        return "sdxl"
    return "sd15"


def _hash_int(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def seed_luck(seed: int, prompt: str) -> float:
    """A per (seed, prompt) number in [0, 1): below 0.2 the seed is a bad one."""
    return (_hash_int("luck", seed, prompt) % 10_000) / 10_000


# ---------------------------------------------------------------------------------------------- noise fields
def _fbm(
    rng: np.random.Generator, h: int, w: int, *, base: int = 4, octaves: int = 6, gain: float = 0.55
) -> np.ndarray:
    """Multi-octave value noise in about [-1, 1], shape (h, w)."""
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    cells = base
    for _ in range(octaves):
        gh, gw = max(2, cells * h // max(h, w) + 1), max(2, cells * w // max(h, w) + 1)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        layer = np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC))
        total += amp * layer
        norm += amp
        amp *= gain
        cells *= 2
        if cells > max(h, w):
            break
    return np.clip(total / (norm * 0.9), -1.5, 1.5)


def _fbm1d(rng: np.random.Generator, n: int, *, base: int = 3, octaves: int = 7) -> np.ndarray:
    total = np.zeros(n, np.float32)
    amp, norm, cells = 1.0, 0.0, base
    for _ in range(octaves):
        pts = rng.standard_normal(cells + 2).astype(np.float32)
        total += amp * np.interp(np.linspace(0, cells + 1, n), np.arange(cells + 2), pts).astype(np.float32)
        norm += amp
        amp *= 0.5
        cells *= 2
    return total / norm


# ---------------------------------------------------------------------------------------------- scene
_PALETTES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "day": ((0.22, 0.45, 0.85), (0.70, 0.84, 0.97)),
    "sunset": ((0.30, 0.18, 0.45), (0.98, 0.55, 0.25)),
    "night": ((0.02, 0.03, 0.12), (0.10, 0.14, 0.32)),
    "fog": ((0.62, 0.66, 0.70), (0.85, 0.86, 0.88)),
}


def _words(prompt: str) -> set[str]:
    return {w.strip(".,;:!?()[]{}\"'").lower() for w in prompt.replace("_", " ").split()}


def _sky_kind(words: set[str], rng: np.random.Generator) -> str:
    if words & {"sunset", "sunrise", "dusk", "dawn", "golden", "evening"}:
        return "sunset"
    if words & {"night", "stars", "moon", "starry", "midnight"}:
        return "night"
    if words & {"fog", "foggy", "mist", "misty", "overcast"}:
        return "fog"
    return str(rng.choice(["day", "day", "sunset"]))


def _ground_kind(words: set[str], rng: np.random.Generator) -> str:
    for kind, keys in (
        ("water", {"ocean", "sea", "lake", "river", "beach", "water", "waves"}),
        ("snow", {"snow", "winter", "snowy", "ice", "arctic"}),
        ("sand", {"desert", "sand", "dunes", "beach"}),
        ("grass", {"meadow", "grass", "field", "park", "garden", "forest", "autumn", "leaves"}),
    ):
        if words & keys:
            return kind
    return str(rng.choice(["grass", "water", "grass", "sand"]))


def _box(h: int, w: int, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
    """Pixel slices of a box given in [0, 1] coordinates (None if empty)."""
    r0, r1 = max(0, int(y0 * h)), min(h, int(np.ceil(y1 * h)))
    c0, c1 = max(0, int(x0 * w)), min(w, int(np.ceil(x1 * w)))
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1 - t[..., None]) + b * t[..., None]


def _scene(prompt: str, seed: int, h: int, w: int) -> FloatImage:
    words = _words(prompt)
    rng = np.random.default_rng(_hash_int("scene", prompt, seed))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    xx = np.ones((h, 1), np.float32) * np.linspace(0, 1, w, dtype=np.float32)[None, :]
    sky_kind = _sky_kind(words, rng)
    top, horizon_c = (np.array(c, np.float32) for c in _PALETTES[sky_kind])
    horizon = float(rng.uniform(0.42, 0.62))

    # sky with clouds
    t = np.clip(yy / horizon, 0, 1) ** 0.8
    img = _mix(np.broadcast_to(top, (h, w, 3)), np.broadcast_to(horizon_c, (h, w, 3)), t)
    clouds = np.clip(_fbm(rng, h, w, base=3, octaves=7) * 0.9 + rng.uniform(-0.3, 0.2), 0, 1)
    cloud_c = np.array([0.95, 0.93, 0.92] if sky_kind != "night" else [0.2, 0.2, 0.3], np.float32)
    img = _mix(img, np.broadcast_to(cloud_c, (h, w, 3)), clouds * 0.55 * (yy < horizon))
    if sky_kind == "night":
        stars = (rng.random((h, w)) > 0.9985).astype(np.float32)
        img += gaussian_filter(stars, 0.7)[..., None] * 2.5 * (yy < horizon)[..., None]

    # sun / moon with glow
    sx, sy = rng.uniform(0.15, 0.85), rng.uniform(0.08, horizon * 0.75)
    d = np.sqrt(((xx - sx) * w / h) ** 2 + (yy - sy) ** 2)
    radius = rng.uniform(0.035, 0.07)
    sun_c = np.array({"night": [0.9, 0.9, 0.85], "sunset": [1.0, 0.75, 0.4]}.get(sky_kind, [1.0, 0.97, 0.85]))
    glow = np.exp(-((d / (radius * 4)) ** 2)) * 0.35 + (d < radius)
    img = _mix(img, np.broadcast_to(sun_c.astype(np.float32), (h, w, 3)), np.clip(glow, 0, 1))

    # mountains: ridge layers, far ones paler
    n_ridges = (
        3
        if words & {"mountain", "mountains", "alps", "peaks", "valley", "landscape"}
        else int(rng.integers(1, 3))
    )
    rock_field = _fbm(rng, h, w, base=8, octaves=6)
    for k in range(n_ridges):
        depth = (k + 1) / (n_ridges + 1)
        ridge = horizon - (0.28 - 0.08 * k) * (0.6 + 0.4 * _fbm1d(rng, w)) - 0.02
        mask = yy > ridge[None, :]
        rock = np.roll(rock_field, shift=(k * h // 7, k * w // 5), axis=(0, 1))
        base_c = (
            np.array([0.30, 0.28, 0.32], np.float32) * (0.6 + 0.4 * depth) + (1 - depth) * horizon_c * 0.5
        )
        layer = base_c[None, None, :] * (0.8 + 0.25 * rock[..., None])
        snow_line = ridge[None, :] + 0.05
        layer = np.where(((yy < snow_line) & (rock > -0.2))[..., None], layer * 0.4 + 0.6, layer)
        img = np.where(mask[..., None], layer, img)

    # ground
    ground = _ground_kind(words, rng)
    gmask = yy > horizon
    tex = 0.6 * _fbm(rng, h, w, base=12, octaves=6) + 0.4 * _fbm(rng, h, w, base=48, octaves=4)
    fine = rng.standard_normal((h, w)).astype(np.float32)
    gy = np.clip((yy - horizon) / max(1e-3, 1 - horizon), 0, 1)
    if ground == "water":
        ripples = np.sin(np.abs(gy * 40 + tex * 1.5) ** 1.2 * 6.0) * 0.5 + 0.5
        refl = img[np.clip((2 * horizon - yy) * (h - 1), 0, h - 1).astype(int), np.arange(w)[None, :]]
        water = _mix(
            refl * 0.7 + 0.05, np.broadcast_to(np.array([0.05, 0.2, 0.35], np.float32), (h, w, 3)), gy
        )
        ground_layer = water * (0.85 + 0.3 * ripples[..., None])
    else:
        colours = {"grass": [0.22, 0.45, 0.15], "snow": [0.88, 0.9, 0.95], "sand": [0.85, 0.72, 0.45]}
        if words & {"autumn", "fall", "leaves"}:
            colours["grass"] = [0.65, 0.38, 0.12]
        base_g = np.array(colours[ground], np.float32)
        ground_layer = base_g * (0.75 + 0.3 * tex[..., None] + 0.06 * fine[..., None])
        ground_layer = ground_layer * (0.7 + 0.5 * gy)[..., None]
    img = np.where(gmask[..., None], ground_layer, img)

    # trees
    n_trees = (
        int(rng.integers(6, 18))
        if words & {"forest", "trees", "tree", "woods", "park", "jungle"}
        else int(rng.integers(0, 5))
    )
    foliage = 0.7 + 0.4 * _fbm(rng, h, w, base=24, octaves=4)
    leaf = np.array([0.08, 0.3, 0.1] if "autumn" not in words else [0.7, 0.3, 0.05], np.float32)
    for _ in range(n_trees):
        tx, ty = rng.uniform(0, 1), horizon + rng.uniform(0.0, 0.25)
        th, tw = rng.uniform(0.12, 0.3) * (0.5 + ty), rng.uniform(0.03, 0.07) * (0.5 + ty)
        box = _box(h, w, ty - th, min(ty, 1.0), tx - tw * w / h, tx + tw * w / h)
        if box is None:
            continue
        ys, xs = box
        inside = (np.abs(xx[ys, xs] - tx) * w / h < tw * (1 - (ty - yy[ys, xs]) / th)) & (yy[ys, xs] < ty)
        img[ys, xs] = np.where(inside[..., None], leaf * foliage[ys, xs][..., None], img[ys, xs])

    # buildings
    if words & {"city", "skyline", "buildings", "street", "town", "cyberpunk", "urban"}:
        windows = ((np.sin(xx * w / 6) > 0.3) & (np.sin(yy * h / 7) > 0.2)).astype(np.float32)[..., None]
        lit = np.array([1.0, 0.85, 0.5] if sky_kind == "night" else [0.55, 0.65, 0.75], np.float32)
        x = 0.0
        while x < 1.0:
            bw, bh = rng.uniform(0.04, 0.11), rng.uniform(0.1, 0.45)
            wall = np.array(rng.uniform(0.15, 0.45, 3), np.float32)
            box = _box(h, w, horizon - bh, horizon + 0.02, x, x + bw)
            if box is not None:
                ys, xs = box
                img[ys, xs] = wall * (1 - windows[ys, xs]) + lit * windows[ys, xs]
            x += bw + rng.uniform(0.0, 0.02)

    # subject: a shaded figure in the foreground
    subject_words = {
        "woman",
        "man",
        "person",
        "girl",
        "boy",
        "portrait",
        "cat",
        "dog",
        "puppy",
        "animal",
        "robot",
        "car",
        "astronaut",
        "knight",
        "warrior",
        "character",
        "retriever",
    }
    if words & subject_words or rng.random() < 0.3:
        cx, cy = rng.uniform(0.3, 0.7), rng.uniform(horizon + 0.05, 0.85)
        rx, ry = rng.uniform(0.08, 0.16), rng.uniform(0.12, 0.22)
        e = ((xx - cx) * w / h / rx) ** 2 + ((yy - cy) / ry) ** 2
        head = ((xx - cx) * w / h / (rx * 0.5)) ** 2 + ((yy - (cy - ry * 1.25)) / (ry * 0.45)) ** 2
        body_c = np.array(rng.uniform(0.2, 0.9, 3), np.float32)
        shade = np.clip(1.1 - 0.6 * (xx - cx + 0.3 * (yy - cy)) / rx, 0.4, 1.3)
        fur = 0.85 + 0.25 * _fbm(rng, h, w, base=40, octaves=3)
        inside = (e < 1) | (head < 1)
        img = np.where(inside[..., None], body_c[None, None, :] * (shade * fur)[..., None], img)
        rim = np.exp(-((np.minimum(e, head) - 1) ** 2) / 0.01) * 0.15
        img = img * (1 - rim[..., None])
    return np.clip(img, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------- defects
def _guidance_error(recipe: Recipe) -> float:
    """log2 of (effective guidance / optimum): < 0 under-guided, > 0 over-guided."""
    if recipe.family == "flux":
        g = recipe.guidance if recipe.guidance is not None else 3.5
        return math.log2(max(g, 0.25) / 3.5) + math.log2(max(recipe.cfg, 1.0))
    if recipe.family == "video":
        return math.log2(max(recipe.cfg, 0.25) / 1.0) * 0.5
    return math.log2(max(recipe.cfg, 0.25) / 7.0)


def _saturate(img: np.ndarray, factor: float) -> np.ndarray:
    grey = img.mean(axis=2, keepdims=True)
    return grey + (img - grey) * factor


def _contrast(img: np.ndarray, factor: float) -> np.ndarray:
    mean = float(img.mean())
    return mean + (img - mean) * factor


def _hue_shift(img: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    cos_a, sin_a = math.cos(a), math.sin(a)
    k = 1 / 3
    sq = math.sqrt(k)
    m = np.array(
        [
            [cos_a + (1 - cos_a) * k, k * (1 - cos_a) - sq * sin_a, k * (1 - cos_a) + sq * sin_a],
            [k * (1 - cos_a) + sq * sin_a, cos_a + k * (1 - cos_a), k * (1 - cos_a) - sq * sin_a],
            [k * (1 - cos_a) - sq * sin_a, k * (1 - cos_a) + sq * sin_a, cos_a + k * (1 - cos_a)],
        ],
        np.float32,
    )
    return img @ m.T


def render(
    recipe: Recipe, width: int, height: int, *, index: int = 0, source: FloatImage | None = None
) -> FloatImage:
    """One image of a batch (``index`` shifts the seed, as a batch's latents differ)."""
    seed = recipe.seed + index
    h, w = int(height), int(width)
    scale = max(h, w) / 512
    clean = _scene(recipe.prompt, seed, h, w)
    prompt_l, negative_l = recipe.prompt.lower(), recipe.negative.lower()
    boost = min(3, sum(b in prompt_l for b in _BOOSTERS))
    fixes = min(3, sum(f in negative_l for f in _NEGATIVE_FIXES))
    sampler_l = recipe.sampler.lower()
    grain_k = (
        1.15 if ("ancestral" in sampler_l or "sde" in sampler_l) else (0.92 if "2m" in sampler_l else 1.0)
    )
    grain_k *= 0.9 if recipe.scheduler in ("karras", "exponential", "beta") else 1.0
    grain_k *= {"flux": 0.8, "sdxl": 0.9}.get(recipe.family, 1.0)
    steps = max(1, recipe.steps)
    grain = (0.012 + 0.16 * math.exp(-steps / 25)) * grain_k * (1 - 0.07 * fixes)
    blotch = 0.25 * math.exp(-steps / 12)
    blur = (0.4 + 2.0 * math.exp(-steps / 20)) * scale * (1 - 0.06 * fixes - 0.05 * boost)
    detail = (1 - 0.8 * math.exp(-steps / 25)) * (1 + 0.05 * boost)
    for name, strength in recipe.loras:
        if "detail" in name.lower():
            detail *= 1 + 0.1 * strength
    luck = seed_luck(seed, recipe.prompt)
    if luck < 0.2:  # a bad seed: mushy, flat composition (more blur, less detail; contrast below)
        blur *= 1.6
        detail *= 0.5

    rng = np.random.default_rng(_hash_int("sampling", recipe.prompt, seed, recipe.sampler))
    # texture detail: fine structure appears as the sampler converges
    micro = _fbm(rng, h, w, base=int(64 * scale) or 64, octaves=3)
    # pixel-scale texture of the content itself (fixed per seed): it sharpens as the sampler converges
    texture = gaussian_filter(np.random.default_rng(_hash_int("texture", seed)).standard_normal((h, w)), 0.6)
    img = clean * (1 + 0.12 * (detail - 0.5) * micro[..., None]) + TEXTURE * detail * texture[..., None]
    # img2img: the source keeps (1 - denoise) of its say
    if source is not None and recipe.denoise < 1.0:
        src = np.asarray(
            Image.fromarray((np.clip(source, 0, 1) * 255).astype(np.uint8)).resize((w, h)), np.float32
        )
        img = src / 255 * (1 - recipe.denoise) + img * recipe.denoise
        grain *= recipe.denoise
        blotch *= recipe.denoise

    # guidance: haze when under-guided, burn when over-guided
    err = _guidance_error(recipe)
    if err < 0:
        img = _contrast(_saturate(img, 1 + 0.45 * err), 1 + 0.35 * err)
        img = img * (1 + 0.25 * err) + (-0.25 * err) * 0.6
    elif err > 0:
        img = _contrast(_saturate(img, 1 + 0.7 * err), 1 + 0.55 * err) + 0.04 * err
        if err > 0.3:  # "burnt" high-cfg look: halos from oversharpening, posterized clipped colour
            halo = img - gaussian_filter(img, sigma=(2 * scale, 2 * scale, 0))
            img = img + 1.6 * (err - 0.3) * halo
            levels = max(3, int(24 / err))
            img = np.round(np.clip(img, 0, 1) * levels) / levels
        grain *= 1 + 1.2 * err

    # seed luck: some seeds give flat, hazy, low-contrast images
    if luck < 0.2:
        img = _contrast(img, 0.5) * 0.8 + 0.15
    elif luck < 0.35:
        img = _contrast(img, 0.8)
    elif luck > 0.85:
        img = _contrast(img, 1.08)

    for name, strength in recipe.loras:
        img = _hue_shift(img, ((_hash_int("lora", name) % 61) - 30) * 0.4 * strength)

    # sampling defects
    if blur > 0.05:
        img = gaussian_filter(img, sigma=(blur, blur, 0))
    if blotch > 1e-3:
        lowres = _fbm(rng, h, w, base=6, octaves=3)
        chroma = np.stack([_fbm(rng, h, w, base=6, octaves=2) for _ in range(3)], axis=2)
        img = img + blotch * (0.6 * lowres[..., None] + 0.8 * chroma)
    noise = rng.standard_normal((h, w, 3)).astype(np.float32)
    noise = 0.7 * noise + 0.3 * noise.mean(axis=2, keepdims=True)
    img = img + grain * noise
    return np.clip(img, 0, 1).astype(np.float32)


def to_uint8(img: FloatImage) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
