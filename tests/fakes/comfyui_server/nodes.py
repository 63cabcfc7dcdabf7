"""What each node class of the fake server does when it runs.

An implementation is ``async def impl(ctx, **inputs) -> NodeResult``: it gets the node's inputs (literals
already converted by validation, links resolved to upstream values) and returns its outputs and optional
``ui`` dict (the ``output`` of the ``executed`` message). Samplers report per-step progress through
``ctx.sampling_steps``, which also checks the interrupt flag and applies the server's misbehaviour switches.
Images are numpy arrays ``(batch, height, width, 3)`` in [0, 1], like ComfyUI's IMAGE tensors.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from scipy.ndimage import gaussian_filter

from tests.fakes.comfyui_server.render import Recipe, model_family, render, to_uint8
from tests.fakes.comfyui_server.values import (
    Clip,
    Conditioning,
    Guider,
    Latent,
    Model,
    Noise,
    SamplerChoice,
    Sigmas,
    UpscaleModel,
    Vae,
)

if TYPE_CHECKING:
    from tests.fakes.comfyui_server.executor import NodeContext


@dataclass
class NodeResult:
    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


Impl = Callable[..., Awaitable[NodeResult]]
IMPLS: dict[str, Impl] = {}
#: class -> function(inputs, ctx-free) giving a value that changes when the node must re-run (ComfyUI
# IS_CHANGED)
IS_CHANGED: dict[str, Callable[[dict[str, Any], Path], str]] = {}


def node(name: str) -> Callable[[Impl], Impl]:
    def register(fn: Impl) -> Impl:
        IMPLS[name] = fn
        return fn

    return register


def _images(batch: int, h: int, w: int, colour: int) -> np.ndarray:
    rgb = np.array([(colour >> 16) & 255, (colour >> 8) & 255, colour & 255], np.float32) / 255
    return np.broadcast_to(rgb, (batch, h, w, 3)).copy()


# --------------------------------------------------------------------------------------- recorded image nodes
@node("EmptyImage")
async def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int, color: int) -> NodeResult:
    return NodeResult((_images(batch_size, height, width, color),))


@node("ImageBlur")
async def image_blur(ctx: NodeContext, image: np.ndarray, blur_radius: int, sigma: float) -> NodeResult:
    return NodeResult((gaussian_filter(image, sigma=(0, sigma, sigma, 0), truncate=blur_radius / sigma),))


@node("ImageSharpen")
async def image_sharpen(
    ctx: NodeContext, image: np.ndarray, sharpen_radius: int, sigma: float, alpha: float
) -> NodeResult:
    soft = gaussian_filter(image, sigma=(0, sigma, sigma, 0), truncate=sharpen_radius / sigma)
    return NodeResult((np.clip(image + alpha * (image - soft), 0, 1),))


@node("ImageInvert")
async def image_invert(ctx: NodeContext, image: np.ndarray) -> NodeResult:
    return NodeResult((1.0 - image,))


def _resize(images: np.ndarray, width: int, height: int) -> np.ndarray:
    if width <= 0 or height <= 0:
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input "
            f"(H: {images.shape[1]}, W: {images.shape[2]}) output (H: {height}, W: {width})"
        )
    out = [
        np.asarray(
            Image.fromarray(to_uint8(img)).resize((width, height), Image.Resampling.BILINEAR), np.float32
        )
        / 255
        for img in images
    ]
    return np.stack(out)


@node("ImageScale")
async def image_scale(
    ctx: NodeContext, image: np.ndarray, upscale_method: str, width: int, height: int, crop: str
) -> NodeResult:
    if width == 0 and height == 0:
        return NodeResult((image,))
    h, w = image.shape[1:3]
    width = width or max(1, round(w * height / h))
    height = height or max(1, round(h * width / w))
    return NodeResult((_resize(image, width, height),))


@node("ImageScaleBy")
async def image_scale_by(
    ctx: NodeContext, image: np.ndarray, upscale_method: str, scale_by: float
) -> NodeResult:
    h, w = image.shape[1:3]
    return NodeResult((_resize(image, round(w * scale_by), round(h * scale_by)),))


@node("GetImageSize")
async def get_image_size(ctx: NodeContext, image: np.ndarray) -> NodeResult:
    b, h, w = image.shape[:3]
    await ctx.send_text(f"width: {w}, height: {h}\n batch size: {b}")
    return NodeResult((w, h, b))


def _save(
    ctx: NodeContext, images: np.ndarray, prefix: str, folder: str, compress: int
) -> list[dict[str, Any]]:
    base = ctx.dirs[folder]
    subfolder, _, name = prefix.rpartition("/")
    target = (base / subfolder).resolve()
    if not str(target).startswith(str(base.resolve())):
        raise RuntimeError(
            f"Saving image outside the output folder is not allowed.\n full_output_folder: {target}"
        )
    target.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(target, name)
    meta = PngInfo()
    meta.add_text("prompt", json.dumps(ctx.prompt))
    for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        meta.add_text(key, json.dumps(value))
    results = []
    for image in images:
        filename = f"{name}_{counter:05}_.png"
        Image.fromarray(to_uint8(image)).save(target / filename, pnginfo=meta, compress_level=compress)
        results.append({"filename": filename, "subfolder": subfolder, "type": folder})
        counter += 1
    return results


def _next_counter(folder: Path, name: str) -> int:
    best = 0
    for path in folder.glob(f"{name}_*_.png"):
        middle = path.name[len(name) + 1 : -5]
        if middle.isdigit():
            best = max(best, int(middle))
    return best + 1


@node("SaveImage")
async def save_image(ctx: NodeContext, images: np.ndarray, filename_prefix: str) -> NodeResult:
    saved = await asyncio.to_thread(_save, ctx, images, filename_prefix, "output", 4)
    return NodeResult((), {"images": saved})


@node("PreviewImage")
async def preview_image(ctx: NodeContext, images: np.ndarray) -> NodeResult:
    prefix = "ComfyUI_temp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    saved = await asyncio.to_thread(_save, ctx, images, prefix, "temp", 1)
    return NodeResult((), {"images": saved})


@node("SaveImageWebsocket")
async def save_image_websocket(ctx: NodeContext, images: np.ndarray) -> NodeResult:
    total = len(images)
    for i, image in enumerate(images):
        await ctx.progress(i, total, preview=(image, "image/png"))
    return NodeResult()


@node("LoadImage")
async def load_image(ctx: NodeContext, image: str) -> NodeResult:
    path = ctx.dirs["input"] / image
    try:
        pil = await asyncio.to_thread(Image.open, path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"[Errno 2] No such file or directory: 'ComfyUI/input/{image}'") from exc
    rgba = np.asarray(pil.convert("RGBA"), np.float32) / 255
    mask = 1.0 - rgba[None, :, :, 3]
    return NodeResult((rgba[None, :, :, :3], mask))


def _load_image_changed(inputs: dict[str, Any], input_dir: Path) -> str:
    path = input_dir / str(inputs.get("image", ""))
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_mtime_ns}-{stat.st_size}"


IS_CHANGED["LoadImage"] = _load_image_changed


# --------------------------------------------------------------------------------------- model loaders
@node("CheckpointLoaderSimple")
async def checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> NodeResult:
    await ctx.load_delay()
    return NodeResult((Model(ckpt_name, model_family(ckpt_name)), Clip(ckpt_name), Vae(ckpt_name)))


@node("UNETLoader")
async def unet_loader(ctx: NodeContext, unet_name: str, weight_dtype: str) -> NodeResult:
    await ctx.load_delay()
    return NodeResult((Model(unet_name, model_family(unet_name)),))


@node("DualCLIPLoader")
async def dual_clip_loader(
    ctx: NodeContext, clip_name1: str, clip_name2: str, type: str, device: str = "default"
) -> NodeResult:
    return NodeResult((Clip(f"{clip_name1}+{clip_name2}"),))


@node("CLIPLoader")
async def clip_loader(ctx: NodeContext, clip_name: str, type: str, device: str = "default") -> NodeResult:
    return NodeResult((Clip(clip_name),))


@node("VAELoader")
async def vae_loader(ctx: NodeContext, vae_name: str) -> NodeResult:
    return NodeResult((Vae(vae_name),))


@node("UpscaleModelLoader")
async def upscale_model_loader(ctx: NodeContext, model_name: str) -> NodeResult:
    scale = 2 if "2x" in model_name.lower() else 4
    return NodeResult((UpscaleModel(model_name, scale),))


@node("LoraLoader")
async def lora_loader(
    ctx: NodeContext, model: Model, clip: Clip, lora_name: str, strength_model: float, strength_clip: float
) -> NodeResult:
    new_clip = Clip(clip.name, (*clip.loras, (lora_name, strength_clip)), clip.stop_at_layer)
    return NodeResult((model.with_lora(lora_name, strength_model), new_clip))


@node("LoraLoaderModelOnly")
async def lora_loader_model_only(
    ctx: NodeContext, model: Model, lora_name: str, strength_model: float
) -> NodeResult:
    return NodeResult((model.with_lora(lora_name, strength_model),))


@node("CLIPSetLastLayer")
async def clip_set_last_layer(ctx: NodeContext, clip: Clip, stop_at_clip_layer: int) -> NodeResult:
    return NodeResult((Clip(clip.name, clip.loras, stop_at_clip_layer),))


# --------------------------------------------------------------------------------------- conditioning,
# latents
@node("CLIPTextEncode")
async def clip_text_encode(ctx: NodeContext, text: str, clip: Clip) -> NodeResult:
    return NodeResult((Conditioning(text),))


@node("FluxGuidance")
async def flux_guidance(ctx: NodeContext, conditioning: Conditioning, guidance: float) -> NodeResult:
    return NodeResult((Conditioning(conditioning.text, guidance, conditioning.zero),))


@node("ConditioningZeroOut")
async def conditioning_zero_out(ctx: NodeContext, conditioning: Conditioning) -> NodeResult:
    return NodeResult((Conditioning("", conditioning.guidance, True),))


@node("EmptyLatentImage")
async def empty_latent_image(ctx: NodeContext, width: int, height: int, batch_size: int) -> NodeResult:
    return NodeResult((Latent(width // 8 * 8, height // 8 * 8, batch_size),))


@node("EmptySD3LatentImage")
async def empty_sd3_latent_image(
    ctx: NodeContext, width: int, height: int, batch_size: int = 1
) -> NodeResult:
    return NodeResult((Latent(width // 8 * 8, height // 8 * 8, batch_size),))


@node("LatentUpscale")
async def latent_upscale(
    ctx: NodeContext, samples: Latent, upscale_method: str, width: int, height: int, crop: str
) -> NodeResult:
    if width == 0 and height == 0:
        return NodeResult((samples,))
    width = max(64, width or round(samples.width * height / samples.height))
    height = max(64, height or round(samples.height * width / samples.width))
    return NodeResult(
        (Latent(width // 8 * 8, height // 8 * 8, samples.batch, samples.recipe, samples.source),)
    )


@node("LatentUpscaleBy")
async def latent_upscale_by(
    ctx: NodeContext, samples: Latent, upscale_method: str, scale_by: float
) -> NodeResult:
    w, h = round(samples.width * scale_by), round(samples.height * scale_by)
    return NodeResult((Latent(w // 8 * 8, h // 8 * 8, samples.batch, samples.recipe, samples.source),))


@node("VAEEncode")
async def vae_encode(ctx: NodeContext, pixels: np.ndarray, vae: Vae) -> NodeResult:
    b, h, w = pixels.shape[:3]
    return NodeResult((Latent(w // 8 * 8, h // 8 * 8, b, None, pixels),))


@node("VAEDecode")
async def vae_decode(ctx: NodeContext, samples: Latent, vae: Vae) -> NodeResult:
    return NodeResult((await asyncio.to_thread(decode_latent, samples),))


def decode_latent(latent: Latent) -> np.ndarray:
    """Pixels for a latent: rendered from its recipe, or the source pixels of an unsampled img2img latent."""
    if latent.recipe is None:
        if latent.source is not None:
            return latent.source
        return np.zeros((latent.batch, latent.height, latent.width, 3), np.float32)
    frames = []
    for i in range(latent.batch):
        source = None if latent.source is None else latent.source[min(i, len(latent.source) - 1)]
        frames.append(render(latent.recipe, latent.width, latent.height, index=i, source=source))
    return np.stack(frames)


@node("ImageUpscaleWithModel")
async def image_upscale_with_model(
    ctx: NodeContext, upscale_model: UpscaleModel, image: np.ndarray
) -> NodeResult:
    h, w = image.shape[1:3]
    await ctx.sampling_steps(max(1, (h * w) // (256 * 256)))
    scaled = await asyncio.to_thread(_resize, image, w * upscale_model.scale, h * upscale_model.scale)
    return NodeResult((scaled,))


# --------------------------------------------------------------------------------------- samplers
def _sample(
    ctx: NodeContext,
    *,
    model: Model,
    positive: Conditioning,
    negative: Conditioning | None,
    latent: Latent,
    seed: int,
    steps: int,
    cfg: float,
    sampler: str,
    scheduler: str,
    denoise: float,
) -> Latent:
    recipe = Recipe(
        prompt=positive.text,
        negative=negative.text if negative is not None else "",
        seed=seed,
        steps=steps,
        cfg=cfg,
        guidance=positive.guidance,
        sampler=sampler,
        scheduler=scheduler,
        denoise=denoise,
        family=model.family,
        loras=model.loras,
    )
    source = latent.source
    if latent.recipe is not None:  # a second pass (hires fix): start from the first pass's pixels
        source = decode_latent(latent)
    return Latent(latent.width, latent.height, latent.batch, recipe, source)


@node("KSampler")
async def ksampler(
    ctx: NodeContext,
    model: Model,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    denoise: float = 1.0,
) -> NodeResult:
    await ctx.sampling_steps(steps)
    out = _sample(
        ctx, model=model, positive=positive, negative=negative, latent=latent_image, seed=seed, steps=steps,
        cfg=cfg, sampler=sampler_name, scheduler=scheduler, denoise=denoise,
    )  # fmt: skip
    return NodeResult((out,))


@node("KSamplerAdvanced")
async def ksampler_advanced(
    ctx: NodeContext,
    model: Model,
    add_noise: str,
    noise_seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    start_at_step: int,
    end_at_step: int,
    return_with_leftover_noise: str,
) -> NodeResult:
    last = min(steps, end_at_step)
    run = max(0, last - start_at_step)
    await ctx.sampling_steps(run)
    out = _sample(
        ctx, model=model, positive=positive, negative=negative, latent=latent_image, seed=noise_seed,
        steps=run, cfg=cfg, sampler=sampler_name, scheduler=scheduler, denoise=run / max(1, steps),
    )  # fmt: skip
    return NodeResult((out,))


@node("RandomNoise")
async def random_noise(ctx: NodeContext, noise_seed: int) -> NodeResult:
    return NodeResult((Noise(noise_seed),))


@node("KSamplerSelect")
async def ksampler_select(ctx: NodeContext, sampler_name: str) -> NodeResult:
    return NodeResult((SamplerChoice(sampler_name),))


@node("BasicScheduler")
async def basic_scheduler(
    ctx: NodeContext, model: Model, scheduler: str, steps: int, denoise: float
) -> NodeResult:
    return NodeResult((Sigmas(steps, scheduler, denoise),))


@node("CFGGuider")
async def cfg_guider(
    ctx: NodeContext, model: Model, positive: Conditioning, negative: Conditioning, cfg: float
) -> NodeResult:
    return NodeResult((Guider(positive, negative, cfg, model),))


@node("BasicGuider")
async def basic_guider(ctx: NodeContext, model: Model, conditioning: Conditioning) -> NodeResult:
    return NodeResult((Guider(conditioning, None, 1.0, model),))


@node("SamplerCustom")
async def sampler_custom(
    ctx: NodeContext,
    model: Model,
    add_noise: bool,
    noise_seed: int,
    cfg: float,
    positive: Conditioning,
    negative: Conditioning,
    sampler: SamplerChoice,
    sigmas: Sigmas,
    latent_image: Latent,
) -> NodeResult:
    await ctx.sampling_steps(sigmas.steps)
    out = _sample(
        ctx, model=model, positive=positive, negative=negative, latent=latent_image, seed=noise_seed,
        steps=sigmas.steps, cfg=cfg, sampler=sampler.name, scheduler=sigmas.scheduler, denoise=sigmas.denoise,
    )  # fmt: skip
    return NodeResult((out, out))


@node("SamplerCustomAdvanced")
async def sampler_custom_advanced(
    ctx: NodeContext,
    noise: Noise,
    guider: Guider,
    sampler: SamplerChoice,
    sigmas: Sigmas,
    latent_image: Latent,
) -> NodeResult:
    await ctx.sampling_steps(sigmas.steps)
    out = _sample(
        ctx, model=guider.model, positive=guider.positive, negative=guider.negative, latent=latent_image,
        seed=noise.seed or 0, steps=sigmas.steps, cfg=guider.cfg, sampler=sampler.name,
        scheduler=sigmas.scheduler, denoise=sigmas.denoise,
    )  # fmt: skip
    return NodeResult((out, out))
