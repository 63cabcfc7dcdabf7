"""Reading checkpoints safely and loading them into modules, with errors that name the file."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quality.errors import WeightsError

WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model", "net")


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript archive (``torch.jit.save``; how OpenAI publishes CLIP): a zip whose top folder holds
    ``constants.pkl`` or ``code/``. ``torch.save`` zips hold only ``data.pkl``, ``data/`` and version records.

    Decided from the file itself, before ``torch.load``: with ``weights_only=True`` torch ≥ 2.6 refuses such an
    archive with an error, while torch 2.3–2.5 quietly return a ``ScriptModule`` (no state dict)."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                parts = member.split("/")
                if len(parts) >= 2 and (parts[1] == "constants.pkl" or parts[1] == "code"):
                    return True
    except (OSError, zipfile.BadZipFile):
        return False
    return False


def read_state_dict(path: Path, *, strip_prefixes: Iterable[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: safetensors, a plain/wrapped ``torch.save`` state dict (loaded with
    ``weights_only=True``: no pickled code runs) or a TorchScript archive (as OpenAI publishes CLIP; recognised by
    its content, see :func:`is_torchscript_archive`)."""
    try:
        obj: Any
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        elif is_torchscript_archive(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "torch.jit.load is deprecated": still how OpenAI ships CLIP
                obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(
            f"cannot read weights file {path}: {type(exc).__name__}: {exc}. Delete it and fetch it again "
            "(`python -m quality weights prefetch`).",
            file=path.name,
        ) from exc
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors", file=path.name)
    state = dict(obj)
    for prefix in strip_prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: Path, strict: bool = True) -> None:
    """``module.load_state_dict`` with a readable error (first mismatches listed) instead of a wall of keys."""
    try:
        result = module.load_state_dict(dict(state), strict=strict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:4]
        raise WeightsError(
            f"weights file {source} does not fit the {type(module).__name__} model: {' '.join(first)[:400]}",
            file=source.name,
        ) from exc
    if not strict and result.missing_keys:
        raise WeightsError(
            f"weights file {source} lacks {len(result.missing_keys)} tensors of {type(module).__name__} "
            f"(e.g. {result.missing_keys[:3]})",
            file=source.name,
        )


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float (1, 3, H, W) in [0, 1] (a copy: decoded arrays are read-only)."""
    return torch.from_numpy(np.array(rgb, dtype=np.float32, copy=True)).permute(2, 0, 1).unsqueeze(0).div_(255.0)


class DropLogMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def sha_tag(path: Path, digest: str | None) -> str:
    return f"{path.name} sha256:{(digest or 'unknown')[:12]}"
