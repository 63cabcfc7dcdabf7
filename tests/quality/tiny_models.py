"""Tiny checkpoints for the deep metrics, made by the tests from the *upstream* classes (never from this project's
own modules), random weights, written in the published files' formats and key layouts, registered in a WeightsStore
with their SHA-256, so the whole path from a weights file to a score runs with no network, and a drift between
our loaders and the published layouts fails a test:

* CLIP: OpenAI's own model class (``clip.model.CLIP`` from the ``openai-clip`` package, a pyiqa dependency), with
  fp16 weights and the three scalar tensors of OpenAI's archive, *traced* to a TorchScript archive as OpenAI
  publishes ``ViT-L-14.pt``; or the same weights converted by open_clip's own converter and saved as safetensors,
  as open_clip publishes them on the Hugging Face hub (``open_clip_model.safetensors``).
* LAION head: the published improved-aesthetic-predictor MLP (pyiqa's copy of it, ``layers.{0,2,4,6,7}``).
* NIMA: pyiqa's ``NIMA`` architecture (``pretrained=False``), saved as ``{"params": state_dict}`` like pyiqa's files.
* TOPIQ-NR: pyiqa's ``CFANet`` (``pretrained=False, backbone_pretrain=False``), saved the same way.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from quality.weights import WEIGHT_FILES, FileSpec, WeightFile, WeightsStore, sha256_file

TINY_CLIP = "tiny-clip-test"
#: OpenAI CLIP hyper-parameters of the tiny model (``clip.model.CLIP`` positional order)
TINY_OPENAI = {
    "embed_dim": 32,
    "image_resolution": 64,
    "vision_layers": 2,
    "vision_width": 128,
    "vision_patch_size": 16,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 2,
}
#: the same architecture as an open_clip config (OpenAI's rule: 64-wide attention heads in both towers)
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}
#: the published LAION improved-aesthetic-predictor head: Linear layers at these indices of ``layers``
LAION_HEAD_LAYOUT = {
    "layers.0.weight": (1024, 768),
    "layers.0.bias": (1024,),
    "layers.2.weight": (128, 1024),
    "layers.2.bias": (128,),
    "layers.4.weight": (64, 128),
    "layers.4.bias": (64,),
    "layers.6.weight": (16, 64),
    "layers.6.bias": (16,),
    "layers.7.weight": (1, 16),
    "layers.7.bias": (1,),
}

#: Scorer options that select the tiny architectures
TINY_OPTIONS: dict[str, object] = {
    "clip.arch": TINY_CLIP,
    "clip.quick_gelu": True,
    "nima.arch": "resnet18",
    "topiq.backbone": "resnet18",
}


def register_tiny_clip(folder: Path) -> None:
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"{TINY_CLIP}.json"
    cfg.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(cfg)


def openai_clip(seed: int = 0, **dims: int) -> Any:
    """OpenAI's CLIP class with random weights, made the way OpenAI ships it: fp16 weights (``convert_weights``)
    and ``input_resolution`` / ``context_length`` / ``vocab_size`` as tensors of the model."""
    from clip import model as openai_model

    cfg = {**TINY_OPENAI, **dims}
    torch.manual_seed(seed)
    model = openai_model.CLIP(*cfg.values()).eval()
    for key in ("input_resolution", "context_length", "vocab_size"):
        model.__dict__.pop(key, None)
        value = cfg["image_resolution" if key == "input_resolution" else key]
        model.register_buffer(key, torch.tensor(value))
    openai_model.convert_weights(model)
    return model


def save_openai_torchscript(model: Any, path: Path) -> None:
    """Trace OpenAI's model and save the TorchScript archive (what ``ViT-L-14.pt`` is)."""
    size = int(model.input_resolution)
    image = torch.zeros(1, 3, size, size, dtype=torch.float16)
    text = torch.zeros(1, int(model.context_length), dtype=torch.long)
    text[0, :2] = torch.tensor([49406, 49407])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, (image, text), check_trace=False).save(str(path))


def save_open_clip_safetensors(model: Any, path: Path) -> None:
    """OpenAI weights converted by open_clip's own converter, float32, as open_clip publishes them on the hub."""
    from open_clip.model import build_model_from_openai_state_dict
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in model.state_dict().items()}
    converted = build_model_from_openai_state_dict(state, quick_gelu=True, cast_dtype=None).float()
    save_file({k: v.contiguous() for k, v in converted.state_dict().items()}, str(path))


def make_tiny_clip(path: Path, *, fmt: str = "torchscript", seed: int = 0) -> Any:
    """A tiny OpenAI CLIP written as ``fmt`` (``torchscript`` or ``safetensors``); returns the OpenAI model."""
    model = openai_clip(seed)
    if fmt == "torchscript":
        save_openai_torchscript(model, path)
    elif fmt == "safetensors":
        save_open_clip_safetensors(model, path)
    else:
        raise ValueError(fmt)
    return model


def make_tiny_head(path: Path, dim: int = 32, seed: int = 1, bias: float = 5.0) -> None:
    """The LAION head as published (pyiqa's copy of the improved-aesthetic-predictor MLP), for ``dim``-wide
    embeddings."""
    from pyiqa.archs.laion_aes_arch import MLP

    torch.manual_seed(seed)
    head = MLP(dim)
    with torch.no_grad():
        head.layers[-1].bias.fill_(bias)  # centre the random head's output near a plausible rating
    torch.save(head.state_dict(), path)


@contextmanager
def _no_backbone_download() -> Iterator[None]:
    """pyiqa's NIMA asks timm for ImageNet backbone weights even with ``pretrained=False`` (that flag covers only
    its own checkpoint): build the backbone without them (the checkpoint holds every tensor anyway)."""
    import timm

    real = timm.create_model

    def create_model(*args: Any, **kwargs: Any) -> Any:
        kwargs["pretrained"] = False
        return real(*args, **kwargs)

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = real


def make_nima(path: Path, arch: str = "resnet18", seed: int = 2) -> None:
    from pyiqa.archs.nima_arch import NIMA

    torch.manual_seed(seed)
    with _no_backbone_download():
        net = NIMA(base_model_name=arch, pretrained=False)
    torch.save({"params": net.state_dict()}, path)


def make_topiq(path: Path, backbone: str = "resnet18", seed: int = 3) -> None:
    from pyiqa.archs.topiq_arch import CFANet

    torch.manual_seed(seed)
    net = CFANet(semantic_model_name=backbone, use_ref=False, backbone_pretrain=False, pretrained=False)
    torch.save({"params": net.state_dict()}, path)


def pinned(entry: WeightFile, path: Path, spec: FileSpec | None = None) -> WeightFile:
    """``entry`` with no download URL and the file at ``path`` pinned (its SHA-256 and size) as its own file, or
    as the alternate ``spec``."""
    digest, size = sha256_file(path), path.stat().st_size
    alternates = tuple(replace(a, urls=()) for a in entry.alternates)
    if spec is None:
        return replace(entry, sha256=digest, urls=(), size=size, alternates=alternates)
    alternates = tuple(replace(a, sha256=digest, size=size) if a.filename == spec.filename else a for a in alternates)
    return replace(entry, urls=(), alternates=alternates)


def tiny_weights_store(folder: Path, *, clip_format: str = "torchscript", skip: tuple[str, ...] = ()) -> WeightsStore:
    """A weights folder holding tiny checkpoints under the real file names, pinned by their SHA-256. The CLIP file
    is OpenAI's TorchScript archive (``ViT-L-14.pt``), or with ``clip_format="safetensors"`` the open_clip
    alternate only."""
    folder.mkdir(parents=True, exist_ok=True)
    register_tiny_clip(folder / "configs")
    registry: dict[str, WeightFile] = dict(WEIGHT_FILES)
    clip_entry = WEIGHT_FILES["clip_vit_l14"]
    clip_spec = None if clip_format == "torchscript" else clip_entry.alternates[0]
    makers = {
        "clip_vit_l14": lambda p: make_tiny_clip(p, fmt=clip_format),
        "laion_aesthetic_head": make_tiny_head,
        "nima_inception_resnet_v2_ava": make_nima,
        "topiq_nr_koniq_res50": make_topiq,
    }
    for name, make in makers.items():
        entry = WEIGHT_FILES[name]
        if name in skip:
            registry[name] = replace(entry, urls=(), alternates=())
            continue
        spec = clip_spec if name == "clip_vit_l14" else None
        path = folder / (spec.filename if spec else entry.filename)
        if not path.exists():
            make(path)
        registry[name] = pinned(entry, path, spec)
    return WeightsStore(folder, offline=True, registry=registry)
