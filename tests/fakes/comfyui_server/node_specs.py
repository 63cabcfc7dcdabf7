"""``/object_info`` for the fake server's node classes.

Classes the recordings cover (``data/object_info_recorded.json``, recorded from ComfyUI 0.3.64) are served
as recorded. The others are synthesized here in the same shape: the input names, types, defaults and ranges
of ComfyUI 0.3.64's core nodes (read from its source; no tooltips). "V3" nodes (schema-defined, e.g.
FluxGuidance, EmptySD3LatentImage) carry ``deprecated`` / ``experimental`` / ``api_node`` and ``{}`` options
like the recorded ImageBlur. Combo lists of model files are filled in per request from the server's
installed files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

_RECORDED_PATH = Path(__file__).parent / "data" / "object_info_recorded.json"
MAX_RESOLUTION = 16384
SEED_MAX = 0xFFFFFFFFFFFFFFFF

#: (class, input) -> model folder whose file list is the combo's choices
FILE_COMBOS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LoadImage", "image"): "input",
}


def _load_recorded() -> dict[str, dict[str, Any]]:
    data = json.loads(_RECORDED_PATH.read_text())
    classes: dict[str, dict[str, Any]] = data["classes"]
    return classes


RECORDED = _load_recorded()
SAMPLER_NAMES: list[str] = list(RECORDED["KSampler"]["input"]["required"]["sampler_name"][0])
SCHEDULER_NAMES: list[str] = list(RECORDED["KSampler"]["input"]["required"]["scheduler"][0])
CLIP_TYPES = [
    "stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
    "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image",
]  # fmt: skip


def _inp(type_: Any, **options: Any) -> list[Any]:
    return [type_, options] if options else [type_]


def _classic(
    name: str,
    required: dict[str, list[Any]],
    output: list[str],
    *,
    category: str,
    display_name: str | None = None,
    optional: dict[str, list[Any]] | None = None,
    output_name: list[str] | None = None,
    module: str = "nodes",
    output_node: bool = False,
    description: str = "",
) -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    return {
        "input": inputs,
        "input_order": order,
        "output": output,
        "output_is_list": [False] * len(output),
        "output_name": output_name or list(output),
        "name": name,
        "display_name": display_name or name,
        "description": description,
        "python_module": module,
        "category": category,
        "output_node": output_node,
    }


def _v3(
    name: str, required: dict[str, list[Any]], output: list[str], *, category: str, module: str
) -> dict[str, Any]:
    info = _classic(name, required, output, category=category, module=module)
    info["output_tooltips"] = [None] * len(output)
    info["display_name"] = None
    info.update({"deprecated": False, "experimental": False, "api_node": False})
    return info


def _synthesized() -> dict[str, dict[str, Any]]:
    files: list[str] = []  # placeholder, replaced per request
    specs = [
        _classic(
            "UNETLoader",
            {
                "unet_name": _inp(files),
                "weight_dtype": _inp(["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]),
            },
            ["MODEL"],
            category="advanced/loaders",
            display_name="Load Diffusion Model",
        ),
        _classic(
            "DualCLIPLoader",
            {
                "clip_name1": _inp(files),
                "clip_name2": _inp(files),
                "type": _inp(["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]),
            },
            ["CLIP"],
            optional={"device": _inp(["default", "cpu"], advanced=True)},
            category="advanced/loaders",
        ),
        _classic(
            "CLIPLoader",
            {
                "clip_name": _inp(files),
                "type": _inp(CLIP_TYPES),
            },
            ["CLIP"],
            optional={"device": _inp(["default", "cpu"], advanced=True)},
            category="advanced/loaders",
            display_name="Load CLIP",
        ),
        _classic(
            "VAELoader", {"vae_name": _inp(files)}, ["VAE"], category="loaders", display_name="Load VAE"
        ),
        _classic(
            "CLIPSetLastLayer",
            {"clip": _inp("CLIP"), "stop_at_clip_layer": _inp("INT", default=-1, min=-24, max=-1, step=1)},
            ["CLIP"],
            category="conditioning",
            display_name="CLIP Set Last Layer",
        ),
        _classic(
            "LoraLoaderModelOnly",
            {
                "model": _inp("MODEL"),
                "lora_name": _inp(files),
                "strength_model": _inp("FLOAT", default=1.0, min=-100.0, max=100.0, step=0.01),
            },
            ["MODEL"],
            category="loaders",
            display_name="LoraLoaderModelOnly",
        ),
        _classic(
            "ConditioningZeroOut",
            {"conditioning": _inp("CONDITIONING")},
            ["CONDITIONING"],
            category="advanced/conditioning",
        ),
        _classic(
            "LatentUpscale",
            {
                "samples": _inp("LATENT"),
                "upscale_method": _inp(["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]),
                "width": _inp("INT", default=512, min=0, max=MAX_RESOLUTION, step=8),
                "height": _inp("INT", default=512, min=0, max=MAX_RESOLUTION, step=8),
                "crop": _inp(["disabled", "center"]),
            },
            ["LATENT"],
            category="latent",
            display_name="Upscale Latent",
        ),
        _classic(
            "LatentUpscaleBy",
            {
                "samples": _inp("LATENT"),
                "upscale_method": _inp(["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]),
                "scale_by": _inp("FLOAT", default=1.5, min=0.01, max=8.0, step=0.01),
            },
            ["LATENT"],
            category="latent",
            display_name="Upscale Latent By",
        ),
        _classic(
            "SamplerCustom",
            {
                "model": _inp("MODEL"),
                "add_noise": _inp("BOOLEAN", default=True),
                "noise_seed": _inp("INT", default=0, min=0, max=SEED_MAX, control_after_generate=True),
                "cfg": _inp("FLOAT", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
                "positive": _inp("CONDITIONING"),
                "negative": _inp("CONDITIONING"),
                "sampler": _inp("SAMPLER"),
                "sigmas": _inp("SIGMAS"),
                "latent_image": _inp("LATENT"),
            },
            ["LATENT", "LATENT"],
            output_name=["output", "denoised_output"],
            category="sampling/custom_sampling",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "SamplerCustomAdvanced",
            {
                "noise": _inp("NOISE"),
                "guider": _inp("GUIDER"),
                "sampler": _inp("SAMPLER"),
                "sigmas": _inp("SIGMAS"),
                "latent_image": _inp("LATENT"),
            },
            ["LATENT", "LATENT"],
            output_name=["output", "denoised_output"],
            category="sampling/custom_sampling",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "RandomNoise",
            {"noise_seed": _inp("INT", default=0, min=0, max=SEED_MAX, control_after_generate=True)},
            ["NOISE"],
            category="sampling/custom_sampling/noise",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "KSamplerSelect",
            {"sampler_name": _inp(list(SAMPLER_NAMES))},
            ["SAMPLER"],
            category="sampling/custom_sampling/samplers",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "BasicScheduler",
            {
                "model": _inp("MODEL"),
                "scheduler": _inp(list(SCHEDULER_NAMES)),
                "steps": _inp("INT", default=20, min=1, max=10000),
                "denoise": _inp("FLOAT", default=1.0, min=0.0, max=1.0, step=0.01),
            },
            ["SIGMAS"],
            category="sampling/custom_sampling/schedulers",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "CFGGuider",
            {
                "model": _inp("MODEL"),
                "positive": _inp("CONDITIONING"),
                "negative": _inp("CONDITIONING"),
                "cfg": _inp("FLOAT", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
            },
            ["GUIDER"],
            category="sampling/custom_sampling/guiders",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "BasicGuider",
            {"model": _inp("MODEL"), "conditioning": _inp("CONDITIONING")},
            ["GUIDER"],
            category="sampling/custom_sampling/guiders",
            module="comfy_extras.nodes_custom_sampler",
        ),
        _classic(
            "UpscaleModelLoader",
            {"model_name": _inp(files)},
            ["UPSCALE_MODEL"],
            category="loaders",
            display_name="Load Upscale Model",
            module="comfy_extras.nodes_upscale_model",
        ),
        _classic(
            "ImageUpscaleWithModel",
            {"upscale_model": _inp("UPSCALE_MODEL"), "image": _inp("IMAGE")},
            ["IMAGE"],
            category="image/upscaling",
            display_name="Upscale Image (using Model)",
            module="comfy_extras.nodes_upscale_model",
        ),
        _v3(
            "FluxGuidance",
            {
                "conditioning": ["CONDITIONING", {}],
                "guidance": ["FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1}],
            },
            ["CONDITIONING"],
            category="advanced/conditioning/flux",
            module="comfy_extras.nodes_flux",
        ),
        _v3(
            "EmptySD3LatentImage",
            {
                "width": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 16}],
                "height": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 16}],
                "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
            },
            ["LATENT"],
            category="latent/sd3",
            module="comfy_extras.nodes_sd3",
        ),
    ]
    return {s["name"]: s for s in specs}


SYNTHESIZED = _synthesized()
ALL_SPECS: dict[str, dict[str, Any]] = {**RECORDED, **SYNTHESIZED}


def object_info(class_type: str, files: dict[str, list[str]]) -> dict[str, Any]:
    """The ``/object_info`` entry of one class with its file combos filled from ``files`` (folder ->
    names)."""
    info = copy.deepcopy(ALL_SPECS[class_type])
    for (cls, name), folder in FILE_COMBOS.items():
        if cls != class_type:
            continue
        for section in ("required", "optional"):
            spec = info["input"].get(section, {}).get(name)
            if spec is not None:
                spec[0] = sorted(files.get(folder, []))
    return info


def input_spec(class_type: str, files: dict[str, list[str]]) -> dict[str, Any]:
    return object_info(class_type, files)["input"]
