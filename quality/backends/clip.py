"""CLIP ViT-L/14 through open_clip, loaded once: the LAION aesthetic head and the CLIP score share one image
embedding per image (pyiqa's ``laion_aes`` and ``clipscore`` would each load their own CLIP copy through the
``openai-clip`` package, which needs the removed ``pkg_resources``).

* ``laion_aesthetic``: the LAION aesthetic predictor v2 MLP (768 → 1024 → 128 → 64 → 16 → 1) applied to the
  L2-normalised image embedding; outputs a 1–10 style rating.
* ``clip_score``: cosine similarity of the L2-normalised image and prompt embeddings (the "CLIPScore" of Hessel
  et al. is ``2.5 · max(cos, 0)``; we report the cosine itself). Prompts are tokenised with CLIP's BPE and
  truncated to its 77-token context; prompt embeddings are cached (a retry loop scores one prompt many times).

Options (``LoadContext.options``): ``clip.arch`` (open_clip model name, default ``ViT-L-14``), ``clip.weights``
and ``clip.head`` (entries of :mod:`quality.weights`), ``clip.quick_gelu`` (OpenAI weights use QuickGELU).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quality.backends.base import Backend, LoadContext
from quality.backends.torch_util import DropLogMessage, load_into, read_state_dict, sha_tag
from quality.errors import WeightsError
from quality.image_io import PreparedImage

OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


class AestheticHead(nn.Module):
    """Layer layout of the LAION improved-aesthetic-predictor MLP (so its state dict loads as published)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class ClipBackend(Backend):
    TEXT_CACHE_SIZE = 256

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None
        self.preprocess: Any = None
        self.tokenizer: Any = None
        self.head: AestheticHead | None = None
        self.device = "cpu"
        self._versions: dict[str, str] = {}
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._text_lock = threading.Lock()

    def load(self, ctx: LoadContext) -> None:
        import open_clip

        arch = str(ctx.options.get("clip.arch", "ViT-L-14"))
        weights_name = str(ctx.options.get("clip.weights", "clip_vit_l14"))
        head_name = str(ctx.options.get("clip.head", "laion_aesthetic_head"))
        quick_gelu = bool(ctx.options.get("clip.quick_gelu", True))
        clip_path = ctx.weights.path(weights_name)  # WeightsError → the whole backend is unavailable
        quiet = DropLogMessage("No pretrained weights loaded")  # we load them ourselves, just below
        logging.getLogger().addFilter(quiet)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=None, force_quick_gelu=quick_gelu, device="cpu"
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        # OpenAI's TorchScript archive and open_clip's state dict / safetensors hold the same tensor names; the archive
        # adds a few scalars, and its logit_scale may differ in shape
        state = read_state_dict(clip_path)
        for key in OPENAI_EXTRA_KEYS:
            state.pop(key, None)
        if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
            state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
        load_into(model, state, source=clip_path)
        ctx.weights.confirm(weights_name)  # an unpinned file's checksum is recorded only once it has loaded
        self.device = ctx.device
        self.model = model.to(ctx.device).eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        clip_digest = ctx.weights.digest(weights_name)
        clip_tag = f"open_clip {arch} {sha_tag(clip_path, clip_digest)}"
        self._versions["clip_score"] = f"clip-cosine/1 {clip_tag}"
        try:
            head_path: Path = ctx.weights.path(head_name)
            dim = int(model.text_projection.shape[1]) if model.text_projection is not None else 768
            head = AestheticHead(dim)
            load_into(head, read_state_dict(head_path, strip_prefixes=("module.", "mlp.")), source=head_path)
            ctx.weights.confirm(head_name)
            self.head = head.to(ctx.device).eval()
            head_digest = ctx.weights.digest(head_name)
            self._versions["laion_aesthetic"] = f"laion-aesthetic-v2/1 {sha_tag(head_path, head_digest)} on {clip_tag}"
        except WeightsError as exc:
            self.unavailable["laion_aesthetic"] = str(exc)

    @torch.inference_mode()
    def _text_embedding(self, prompt: str) -> torch.Tensor:
        with self._text_lock:
            cached = self._text_cache.get(prompt)
            if cached is not None:
                self._text_cache.move_to_end(prompt)
                return cached
        tokens = self.tokenizer([prompt]).to(self.device)
        emb = self.model.encode_text(tokens).float()
        emb = torch.nn.functional.normalize(emb, dim=-1)
        with self._text_lock:
            self._text_cache[prompt] = emb
            while len(self._text_cache) > self.TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return emb

    @torch.inference_mode()
    def compute(self, image: PreparedImage, prompt: str | None) -> dict[str, float]:
        pixels = self.preprocess(image.pil()).unsqueeze(0).to(self.device)
        emb = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
        out: dict[str, float] = {}
        if self.head is not None:
            out["laion_aesthetic"] = float(self.head(emb).reshape(-1)[0])
        if prompt:
            out["clip_score"] = float((emb @ self._text_embedding(prompt).T).reshape(-1)[0])
        return out

    def versions(self) -> dict[str, str]:
        return dict(self._versions)
