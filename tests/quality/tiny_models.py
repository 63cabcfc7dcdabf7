"""Tiny checkpoints for the deep metrics, made by the tests: real architectures (or a tiny config of the real
one), random weights, saved to files, registered in a WeightsStore with their SHA-256, so the whole path from a
weights file to a score runs with no network."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from quality.weights import WEIGHT_FILES, WeightFile, WeightsStore, sha256_file

TINY_CLIP = "tiny-clip-test"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

#: Scorer options that select the tiny architectures
TINY_OPTIONS: dict[str, object] = {
    "clip.arch": TINY_CLIP,
    "clip.quick_gelu": False,
    "nima.arch": "resnet18",
    "topiq.backbone": "resnet18",
}


def register_tiny_clip(folder: Path) -> None:
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"{TINY_CLIP}.json"
    cfg.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(cfg)


def make_tiny_clip(path: Path, *, jit: bool = False, seed: int = 0) -> torch.nn.Module:
    """A tiny open_clip CLIP with random weights, saved as a state dict (or as a TorchScript archive holding the
    same tensors, the way OpenAI publishes CLIP)."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP, pretrained=None).eval()
    if jit:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.script(_Renamed(model.state_dict())).save(str(path))
    else:
        torch.save(model.state_dict(), path)
    return model


class _Renamed(torch.nn.Module):
    """A module tree whose state-dict keys equal the given ones (so a TorchScript archive of it has exactly the
    CLIP tensor names)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, tensor in state.items():
            parts = name.split(".")
            mod: torch.nn.Module = self
            for part in parts[:-1]:
                if not hasattr(mod, part):
                    mod.add_module(part, torch.nn.Module())
                mod = getattr(mod, part)
            mod.register_buffer(parts[-1], tensor.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_tiny_head(path: Path, dim: int = 32, seed: int = 1, bias: float = 5.0) -> None:
    from quality.backends.clip import AestheticHead

    torch.manual_seed(seed)
    head = AestheticHead(dim)
    with torch.no_grad():
        head.layers[-1].bias.fill_(bias)  # centre the random head's output near a plausible rating
    torch.save(head.state_dict(), path)


def make_nima(path: Path, arch: str = "resnet18", seed: int = 2) -> None:
    from quality.backends.nima import NIMANet

    torch.manual_seed(seed)
    torch.save({"params": NIMANet(arch).state_dict()}, path)


def make_topiq(path: Path, backbone: str = "resnet18", seed: int = 3) -> None:
    from quality.backends.topiq import build_cfanet

    torch.manual_seed(seed)
    torch.save({"params": build_cfanet(backbone).state_dict()}, path)


def tiny_weights_store(folder: Path, *, jit_clip: bool = False, skip: tuple[str, ...] = ()) -> WeightsStore:
    """A weights folder holding tiny checkpoints under the real file names, pinned by their SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    register_tiny_clip(folder / "configs")
    makers = {
        "clip_vit_l14": lambda p: make_tiny_clip(p, jit=jit_clip),
        "laion_aesthetic_head": make_tiny_head,
        "nima_inception_resnet_v2_ava": make_nima,
        "topiq_nr_koniq_res50": make_topiq,
    }
    registry: dict[str, WeightFile] = dict(WEIGHT_FILES)
    for name, make in makers.items():
        entry = WEIGHT_FILES[name]
        if name in skip:
            registry[name] = replace(entry, urls=())
            continue
        path = folder / entry.filename
        if not path.exists():
            make(path)
        registry[name] = replace(entry, sha256=sha256_file(path), urls=(), size=path.stat().st_size)
    return WeightsStore(folder, offline=True, registry=registry)
