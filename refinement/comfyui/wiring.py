"""Where generation parameters live in an API-format graph, found by node class and links (never by node id).

:func:`analyze` returns a :class:`Wiring`: the sampler nodes and, for each parameter, the ``(node_id,
input)`` *targets* that hold it. Knowledge of ComfyUI's core classes:

* samplers: ``KSampler`` (seed, steps, cfg, sampler_name, scheduler, denoise on the node),
  ``KSamplerAdvanced`` (``noise_seed``; no denoise), ``SamplerCustom`` (``noise_seed``/``cfg`` on the node,
  sampler via its ``sampler`` link → ``KSamplerSelect``, steps/scheduler/denoise via ``sigmas`` →
  ``BasicScheduler``), ``SamplerCustomAdvanced`` (seed via ``noise`` → ``RandomNoise``, cfg and conditioning
  via ``guider`` → ``CFGGuider`` / ``BasicGuider``). Other classes whose name contains "KSampler" are read
  like ``KSampler``.
* prompts: the sampler's ``positive`` / ``negative`` links are followed upstream through conditioning
  pass-through nodes (``FluxGuidance``, ``ConditioningZeroOut``, ControlNet appliers, combiners, ...) to text
  encoders (``CLIPTextEncode`` and its SDXL / SD3 / Flux variants, or any node with a literal ``text`` input).
* Flux guidance: ``FluxGuidance`` nodes on the positive path (or ``CLIPTextEncodeFlux.guidance``).
* size and batch: the primary sampler's ``latent_image`` link is followed through latent pass-throughs to an
  empty-latent node (any node with literal ``width`` and ``height``: ``EmptyLatentImage``,
  ``EmptySD3LatentImage``, video latents, ...). A ``VAEEncode`` there means img2img: the size comes from the
  image.
* LoRAs: the ``LoraLoader`` / ``LoraLoaderModelOnly`` nodes on the primary sampler's model path.

A literal can also sit one hop upstream, in a primitive node (``{"value": ...}``): such inputs are followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from refinement.comfyui.graph import as_link, class_of, input_link

Target = tuple[str, str]  # (node_id, input_name)

KSAMPLER_LIKE = ("KSampler",)
ENCODER_TEXT_INPUTS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
    "CLIPTextEncodeLumina2": ("user_prompt",),
}
LORA_CLASSES = ("LoraLoader", "LoraLoaderModelOnly")
PRIMITIVE_VALUE_INPUTS = ("value", "seed", "int", "float", "string", "number")


@dataclass
class SamplerWiring:
    node_id: str
    class_type: str
    params: dict[str, list[Target]] = field(default_factory=dict)
    """seed / steps / cfg / sampler / scheduler / denoise → where each is stored for this sampler."""
    positive: tuple[str, str] | None = None
    """(node, input) holding the positive conditioning link (the sampler or its guider)."""
    negative: tuple[str, str] | None = None
    model: tuple[str, str] | None = None
    latent: tuple[str, str] | None = None


@dataclass
class Trace:
    """Result of following a conditioning link upstream."""

    encoders: list[str] = field(default_factory=list)
    hops: dict[str, Target] = field(default_factory=dict)
    """encoder id → the (consumer, input) whose link reached it."""
    via: list[str] = field(default_factory=list)
    """pass-through nodes crossed on the way."""


@dataclass
class Wiring:
    samplers: list[SamplerWiring]
    primary: SamplerWiring | None
    positive: Trace
    negative: Trace
    latent_node: str | None
    latent_blocker: str | None
    """Why there is no latent node, e.g. "VAEEncode node 5 (img2img)"."""
    guidance: list[Target]
    lora_nodes: list[str]
    """LoRA nodes on the primary model path, nearest to the sampler first."""
    model_source: tuple[str, int] | None
    """The output that feeds the LoRA chain's upstream end (the checkpoint / UNet loader), when found."""

    @property
    def shared_prompt_nodes(self) -> list[str]:
        return [n for n in self.positive.encoders if n in self.negative.encoders]


def analyze(workflow: Mapping[str, Any]) -> Wiring:
    samplers = [_sampler_wiring(workflow, nid) for nid in _sampler_ids(workflow)]
    primary = _primary(workflow, samplers)
    positive, negative = Trace(), Trace()
    for s in samplers:
        _merge(positive, _trace_role(workflow, s.positive, "positive"))
        _merge(negative, _trace_role(workflow, s.negative, "negative"))
    latent_node, blocker = (None, "no sampler") if primary is None else _latent_node(workflow, primary)
    guidance = _guidance_targets(workflow, positive)
    lora_nodes, model_source = _model_chain(workflow, primary)
    return Wiring(
        samplers, primary, positive, negative, latent_node, blocker, guidance, lora_nodes, model_source
    )


# ---------------------------------------------------------------------------------------------- samplers
def _sampler_ids(workflow: Mapping[str, Any]) -> list[str]:
    found = []
    for node_id, node in workflow.items():
        cls = node.get("class_type", "") if isinstance(node, Mapping) else ""
        if cls in ("SamplerCustom", "SamplerCustomAdvanced") or (
            "KSampler" in cls and cls != "KSamplerSelect"
        ):
            found.append(str(node_id))
    return sorted(found, key=_id_order)


def _id_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


def _literal_target(workflow: Mapping[str, Any], node_id: str, name: str) -> list[Target]:
    """``[(node, input)]`` holding a literal; follows one link into a primitive node; [] if absent."""
    node = workflow.get(node_id)
    if not isinstance(node, Mapping):
        return []
    inputs = node.get("inputs") or {}
    if name not in inputs:
        return []
    link = as_link(inputs[name])
    if link is None:
        return [(node_id, name)]
    source = workflow.get(link[0])
    if isinstance(source, Mapping):
        src_inputs = source.get("inputs") or {}
        literals = [k for k, v in src_inputs.items() if as_link(v) is None]
        for key in PRIMITIVE_VALUE_INPUTS:
            if key in literals:
                return [(link[0], key)]
        if len(literals) == 1 and not source.get("class_type", "").startswith(("Load", "Empty")):
            return [(link[0], literals[0])]
    return []


def _via(
    workflow: Mapping[str, Any], node_id: str, link_input: str, name: str, cls: str | None = None
) -> list[Target]:
    link = input_link(workflow, node_id, link_input)
    if link is None or (cls is not None and class_of(workflow, link[0]) != cls):
        return []
    return _literal_target(workflow, link[0], name)


def _sampler_wiring(workflow: Mapping[str, Any], node_id: str) -> SamplerWiring:
    cls = class_of(workflow, node_id) or ""
    w = SamplerWiring(node_id, cls, latent=(node_id, "latent_image"))
    lit = lambda name: _literal_target(workflow, node_id, name)  # noqa: E731
    if cls == "SamplerCustom":
        w.params = {
            "seed": lit("noise_seed"),
            "cfg": lit("cfg"),
            "sampler": _via(workflow, node_id, "sampler", "sampler_name"),
            "steps": _via(workflow, node_id, "sigmas", "steps"),
            "scheduler": _via(workflow, node_id, "sigmas", "scheduler"),
            "denoise": _via(workflow, node_id, "sigmas", "denoise"),
        }
        w.positive, w.negative, w.model = (node_id, "positive"), (node_id, "negative"), (node_id, "model")
    elif cls == "SamplerCustomAdvanced":
        guider = input_link(workflow, node_id, "guider")
        gid = guider[0] if guider else None
        w.params = {
            "seed": _via(workflow, node_id, "noise", "noise_seed"),
            "cfg": _literal_target(workflow, gid, "cfg") if gid else [],
            "sampler": _via(workflow, node_id, "sampler", "sampler_name"),
            "steps": _via(workflow, node_id, "sigmas", "steps"),
            "scheduler": _via(workflow, node_id, "sigmas", "scheduler"),
            "denoise": _via(workflow, node_id, "sigmas", "denoise"),
        }
        if gid is not None:
            guider_inputs = (workflow.get(gid) or {}).get("inputs") or {}
            if "conditioning" in guider_inputs:
                w.positive = (gid, "conditioning")
            elif "positive" in guider_inputs:
                w.positive = (gid, "positive")
            if "negative" in guider_inputs:
                w.negative = (gid, "negative")
            w.model = (gid, "model")
    else:  # KSampler, KSamplerAdvanced and KSampler-like custom nodes
        seed = lit("seed") or lit("noise_seed")
        w.params = {
            "seed": seed,
            "steps": lit("steps"),
            "cfg": lit("cfg"),
            "sampler": lit("sampler_name"),
            "scheduler": lit("scheduler"),
            "denoise": lit("denoise"),
        }
        w.positive, w.negative, w.model = (node_id, "positive"), (node_id, "negative"), (node_id, "model")
    return w


def _primary(workflow: Mapping[str, Any], samplers: list[SamplerWiring]) -> SamplerWiring | None:
    """The first-pass sampler: one whose latent does not come from another sampler."""
    ids = {s.node_id for s in samplers}
    for s in samplers:
        if not (_latent_upstream(workflow, s) & ids):
            return s
    return samplers[0] if samplers else None


def _latent_upstream(workflow: Mapping[str, Any], sampler: SamplerWiring) -> set[str]:
    seen: set[str] = set()
    link = input_link(workflow, *sampler.latent) if sampler.latent else None
    while link is not None and link[0] not in seen:
        seen.add(link[0])
        node = workflow.get(link[0]) or {}
        inputs = node.get("inputs") or {}
        nxt = None
        for name in ("samples", "latent_image", "latent", "pixels", "image", "images"):
            nxt = as_link(inputs.get(name))
            if nxt is not None:
                break
        link = nxt
    return seen


# ---------------------------------------------------------------------------------------------- conditioning
def is_encoder(node: Mapping[str, Any]) -> bool:
    return bool(encoder_text_inputs(node))


def encoder_text_inputs(node: Mapping[str, Any]) -> tuple[str, ...]:
    cls = node.get("class_type")
    inputs = node.get("inputs") or {}
    if cls in ENCODER_TEXT_INPUTS:
        return tuple(n for n in ENCODER_TEXT_INPUTS[cls] if n in inputs and as_link(inputs[n]) is None)
    for name in ("text", "prompt"):
        if isinstance(inputs.get(name), str):
            return (name,)
    return ()


def _trace_role(workflow: Mapping[str, Any], start: tuple[str, str] | None, role: str) -> Trace:
    trace = Trace()
    if start is None:
        return trace
    stack: list[tuple[Target, tuple[str, int]]] = []
    link = input_link(workflow, *start)
    if link is not None:
        stack.append((start, link))
    seen: set[tuple[str, int]] = set()
    while stack:
        hop, (src, slot) = stack.pop()
        if (src, slot) in seen:
            continue
        seen.add((src, slot))
        node = workflow.get(src)
        if not isinstance(node, Mapping):
            continue
        if is_encoder(node):
            if src not in trace.encoders:
                trace.encoders.append(src)
                trace.hops[src] = hop
            continue
        inputs = node.get("inputs") or {}
        nexts: list[str]
        if as_link(inputs.get("positive")) is not None and as_link(inputs.get("negative")) is not None:
            nexts = ["positive" if slot == 0 else "negative"]
        elif as_link(inputs.get("conditioning")) is not None:
            nexts = ["conditioning"]
        else:
            nexts = [n for n, v in inputs.items() if as_link(v) is not None and "cond" in n.lower()]
        if nexts:
            trace.via.append(src)
        for name in reversed(nexts):
            nxt = as_link(inputs[name])
            if nxt is not None:
                stack.append(((src, name), nxt))
    return trace


def _merge(into: Trace, other: Trace) -> None:
    for enc in other.encoders:
        if enc not in into.encoders:
            into.encoders.append(enc)
            into.hops[enc] = other.hops[enc]
    into.via.extend(v for v in other.via if v not in into.via)


def _guidance_targets(workflow: Mapping[str, Any], positive: Trace) -> list[Target]:
    targets: list[Target] = [(n, "guidance") for n in positive.via if class_of(workflow, n) == "FluxGuidance"]
    for enc in positive.encoders:
        if class_of(workflow, enc) == "CLIPTextEncodeFlux":
            targets.append((enc, "guidance"))
    targets = [t for tgt in targets for t in _literal_target(workflow, *tgt)]
    if not targets:  # a FluxGuidance node off the traced path (unusual wiring) still counts
        for node_id, node in workflow.items():
            if isinstance(node, Mapping) and node.get("class_type") == "FluxGuidance":
                targets.extend(_literal_target(workflow, str(node_id), "guidance"))
    return targets


# ---------------------------------------------------------------------------------------------- latent, model
def _latent_node(workflow: Mapping[str, Any], sampler: SamplerWiring) -> tuple[str | None, str | None]:
    link = input_link(workflow, *sampler.latent) if sampler.latent else None
    seen: set[str] = set()
    while link is not None and link[0] not in seen:
        seen.add(link[0])
        node = workflow.get(link[0]) or {}
        cls = node.get("class_type", "?")
        inputs = node.get("inputs") or {}
        sized = "width" in inputs and "height" in inputs and as_link(inputs.get("samples")) is None
        if sized and (as_link(inputs["width"]) is None or _literal_target(workflow, link[0], "width")):
            return link[0], None
        if cls.startswith("VAEEncode") or "pixels" in inputs:
            return None, f"{cls} node {link[0]} (img2img: the size comes from the input image)"
        nxt = as_link(inputs.get("samples")) or as_link(inputs.get("latent"))
        if nxt is None:
            return None, f"{cls} node {link[0]}"
        link = nxt
    return None, "no latent input"


def _model_chain(
    workflow: Mapping[str, Any], primary: SamplerWiring | None
) -> tuple[list[str], tuple[str, int] | None]:
    if primary is None or primary.model is None:
        return [], None
    loras: list[str] = []
    link = input_link(workflow, *primary.model)
    seen: set[str] = set()
    while link is not None and link[0] not in seen:
        seen.add(link[0])
        node = workflow.get(link[0]) or {}
        inputs = node.get("inputs") or {}
        nxt = as_link(inputs.get("model"))
        if node.get("class_type") in LORA_CLASSES:
            loras.append(link[0])
        elif nxt is None:
            return loras, link
        link = nxt
    return loras, link


def clip_source(workflow: Mapping[str, Any], wiring: Wiring) -> tuple[str, int] | None:
    """The CLIP output a new LoRA chain should take: after the nearest LoraLoader, the checkpoint's
    CLIP, or the
    CLIP the positive prompt's encoder uses."""
    for lora in wiring.lora_nodes:
        if class_of(workflow, lora) == "LoraLoader":
            return (lora, 1)
    source = wiring.model_source
    if source is not None and "Checkpoint" in (class_of(workflow, source[0]) or ""):
        return (source[0], 1)
    for enc in wiring.positive.encoders:
        link = input_link(workflow, enc, "clip")
        if link is not None:
            return link
    return None
