"""Workflows: load (templates, files, JSON), check, describe, hash and patch API-format ComfyUI workflows.

::

    wf = load_workflow("flux-dev")                      # a shipped template (see list_templates())
    wf = load_workflow("my_workflow_api.json")          # a file exported with "Save (API Format)"
    wf = load_workflow('{"3": {"class_type": ...}}')    # JSON text, or a dict
    new = patch(wf, GenerationParams(prompt="a red fox", seed=7, steps=40, width=768, height=512))
    describe(new).params.seed == 7

:func:`patch` never mutates its input and never relies on node ids: it finds each parameter by node class
and graph wiring (:mod:`refinement.comfyui.wiring`). Where the workflow has several samplers (hires fix,
refiner), ``seed``, ``cfg``, ``sampler`` and ``scheduler`` go to every sampler, while ``steps`` and
``denoise`` go to the first-pass sampler only (second passes keep their own short schedules). A requested
change the workflow has no place for raises :class:`WorkflowPatchError` saying so (an empty
``negative_prompt`` where there is no negative conditioning is simply nothing to do).

When one text encoder feeds both the positive and the negative input (the wan22 workflows), setting
``prompt`` changes that shared node; setting a ``negative_prompt`` as well splits it: a copy of the encoder
with the negative text is added and the sampler's negative link is moved to it.

LoRAs are matched by file name: a LoRA the workflow already loads gets the requested strengths; others are
added as a chain of ``LoraLoader`` nodes right after the last LoRA on the model path (or after the model
loader), and every consumer of that point's MODEL/CLIP outputs is moved to the end of the new chain.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refinement.comfyui.graph import MODEL_INPUTS, as_link, class_of, consumers, next_node_id
from refinement.comfyui.wiring import (
    Target,
    Wiring,
    analyze,
    clip_source,
    encoder_text_inputs,
)
from refinement.errors import RefinementError
from refinement.params import GenerationParams, LoraSpec

__all__ = [
    "LoraInfo",
    "SamplerInfo",
    "WorkflowDescription",
    "WorkflowError",
    "WorkflowLoadError",
    "WorkflowPatchError",
    "describe",
    "is_output_class",
    "list_templates",
    "load_template",
    "load_workflow",
    "patch",
    "validate_workflow",
    "workflow_hash",
]

KNOWN_OUTPUT_CLASSES = frozenset(
    {"SaveImage", "PreviewImage", "SaveImageWebsocket", "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveVideo",
     "SaveWEBM", "SaveLatent", "VHS_VideoCombine", "Image Save", "SaveGLB", "PreviewAny"}
)  # fmt: skip


class WorkflowError(RefinementError, ValueError):
    """A workflow that cannot be used as asked. The message names the problem and what to do."""


class WorkflowLoadError(WorkflowError):
    """Not an API-format workflow: not JSON, UI format, broken links, no output node, unknown template."""


class WorkflowPatchError(WorkflowError):
    """A requested parameter has no place in the workflow (e.g. guidance without a FluxGuidance node)."""


# ---------------------------------------------------------------------------------------------- loading
def _templates_dir() -> Any:
    return resources.files("refinement") / "workflows"


def list_templates() -> list[str]:
    """Names of the shipped templates (``flux-dev``, ``sd15``, ``sdxl``)."""
    return sorted(p.name[:-5] for p in _templates_dir().iterdir() if p.name.endswith(".json"))


def load_template(name: str) -> dict[str, Any]:
    """A shipped template by name (a fresh copy each time)."""
    names = list_templates()
    if name not in names:
        raise WorkflowLoadError(f"no workflow template named {name!r}; the templates are: {', '.join(names)}")
    text = (_templates_dir() / f"{name}.json").read_text(encoding="utf-8")
    return _parse(text, f"template {name}")


def load_workflow(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """An API-format workflow from a template name, a file path, JSON text or a dict (always a checked copy).

    Raises :class:`WorkflowLoadError` for UI-format workflows, invalid JSON, broken links and workflows
    without an output node.
    """
    if isinstance(source, Mapping):
        workflow = copy.deepcopy(dict(source))
        where = "workflow"
    elif isinstance(source, Path):
        workflow, where = _read_file(source), str(source)
    elif isinstance(source, str):
        text = source.strip()
        if text.startswith(("{", "[")):
            workflow, where = _parse(text, "workflow JSON"), "workflow JSON"
        elif text in list_templates():
            return load_template(text)
        elif Path(text).expanduser().is_file():
            workflow, where = _read_file(Path(text).expanduser()), text
        else:
            raise WorkflowLoadError(
                f"{source!r} is neither a workflow template ({', '.join(list_templates())}), nor an existing "
                "file, nor JSON text"
            )
    else:
        raise WorkflowLoadError(f"cannot load a workflow from a {type(source).__name__}")
    workflow = _unwrap(workflow, where)
    validate_workflow(workflow, where=where)
    return _normalized(workflow)


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowLoadError(f"cannot read workflow file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WorkflowLoadError(f"workflow file {path} is not UTF-8 text (is it an image?)") from exc
    return _parse(text, str(path))


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowLoadError(
            f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc


def _unwrap(data: Any, where: str) -> Any:
    """Accept a ``POST /prompt`` body ``{"prompt": {...}}`` as well as the bare workflow."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "class_type" not in data["prompt"]:
        inner = data["prompt"]
        if inner and all(isinstance(v, dict) and "class_type" in v for v in inner.values()):
            return inner
    return data


def validate_workflow(workflow: Any, *, where: str = "workflow") -> None:
    """Structural checks of an API-format workflow; raise :class:`WorkflowLoadError` on the first problem."""
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list) and "links" in workflow:
        raise WorkflowLoadError(
            f"{where} is in ComfyUI's UI format (it has 'nodes' and 'links'); export it with "
            "'Save (API Format)' (or 'Export (API)') in ComfyUI and use that file"
        )
    if not isinstance(workflow, dict) or not workflow:
        raise WorkflowLoadError(f"{where} must be a JSON object of nodes {{id: {{class_type, inputs}}}}")
    for node_id, node in workflow.items():
        if not isinstance(node, dict):
            raise WorkflowLoadError(f"{where}: node {node_id} is not an object")
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise WorkflowLoadError(f"{where}: node {node_id} has no class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise WorkflowLoadError(
                f"{where}: node {node_id} ({node['class_type']}) has inputs that are not an object"
            )
        for name, value in inputs.items():
            link = as_link(value)
            if link is None:
                if isinstance(value, list) and value and isinstance(value[0], str) and value[0] in workflow:
                    raise WorkflowLoadError(
                        f"{where}: node {node_id} input '{name}' is a malformed link {value!r}"
                    )
                continue
            if link[0] not in workflow and str(link[0]) not in workflow:
                raise WorkflowLoadError(
                    f"{where}: node {node_id} ({node['class_type']}) input '{name}' links to node {link[0]}, "
                    "which is not in the workflow"
                )
            if link[1] < 0:
                raise WorkflowLoadError(
                    f"{where}: node {node_id} input '{name}' links to a negative output slot"
                )
    outputs = [nid for nid, node in workflow.items() if is_output_class(node["class_type"])]
    if not outputs:
        classes = ", ".join(sorted({n["class_type"] for n in workflow.values()}))
        raise WorkflowLoadError(
            f"{where} has no output node (SaveImage, PreviewImage, ...), so ComfyUI would run nothing; "
            f"add a SaveImage node (classes present: {classes})"
        )


def is_output_class(class_type: str) -> bool:
    """Known output classes, and by name for custom ones (``Save*``, ``Preview*``, ``*VideoCombine``)."""
    return (
        class_type in KNOWN_OUTPUT_CLASSES
        or class_type.startswith(("Save", "Preview"))
        or class_type.endswith(("VideoCombine", "SaveImage"))
    )


def _normalized(workflow: dict[str, Any]) -> dict[str, Any]:
    """String node ids everywhere (some tools write integer ids in links)."""
    out: dict[str, Any] = {}
    for node_id, node in workflow.items():
        node = dict(node)
        inputs = {}
        for name, value in (node.get("inputs") or {}).items():
            link = as_link(value)
            inputs[name] = [link[0], link[1]] if link is not None else value
        node["inputs"] = inputs
        out[str(node_id)] = node
    return out


def workflow_hash(workflow: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys; ``_meta`` titles left out: they do not run)."""
    stripped = {
        str(k): {kk: vv for kk, vv in v.items() if kk != "_meta"} if isinstance(v, Mapping) else v
        for k, v in workflow.items()
    }
    canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- describe
class SamplerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    node_id: str
    class_type: str
    primary: bool
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None


class LoraInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    node_id: str
    name: str
    strength_model: float | None = None
    strength_clip: float | None = None


class WorkflowDescription(BaseModel):
    """What :func:`describe` found: the parameters' current values and where they live."""

    model_config = ConfigDict(frozen=True)
    params: GenerationParams
    """The workflow's values (first-pass sampler, first prompt node, latent node); unset if absent."""
    settable: list[str]
    """The :class:`GenerationParams` fields :func:`patch` can set in this workflow."""
    samplers: list[SamplerInfo] = Field(default_factory=list)
    positive_nodes: list[str] = Field(default_factory=list)
    negative_nodes: list[str] = Field(default_factory=list)
    shared_prompt_node: bool = False
    latent_node: str | None = None
    size_note: str | None = None
    guidance_nodes: list[str] = Field(default_factory=list)
    loras: list[LoraInfo] = Field(default_factory=list)
    models: dict[str, list[str]] = Field(default_factory=dict)
    """Model files by input name (``ckpt_name``, ``unet_name``, ``vae_name``, ``lora_name``, ...)."""
    output_nodes: list[str] = Field(default_factory=list)
    class_types: list[str] = Field(default_factory=list)
    hash: str


def describe(workflow: Mapping[str, Any]) -> WorkflowDescription:
    """Report the workflow's parameters (for logs, metadata and strategies)."""
    wf = dict(workflow)
    wiring = analyze(wf)
    samplers = []
    for s in wiring.samplers:
        values = {p: _read(wf, targets) for p, targets in s.params.items()}
        samplers.append(
            SamplerInfo(
                node_id=s.node_id,
                class_type=s.class_type,
                primary=wiring.primary is s,
                seed=_as(int, values.get("seed")),
                steps=_as(int, values.get("steps")),
                cfg=_as(float, values.get("cfg")),
                sampler=_as(str, values.get("sampler")),
                scheduler=_as(str, values.get("scheduler")),
                denoise=_as(float, values.get("denoise")),
            )
        )
    primary = next((s for s in samplers if s.primary), None)
    latent = (wf.get(wiring.latent_node) or {}).get("inputs", {}) if wiring.latent_node else {}
    loras = [
        LoraInfo(
            node_id=n,
            name=str(wf[n]["inputs"].get("lora_name")),
            strength_model=_as(float, wf[n]["inputs"].get("strength_model")),
            strength_clip=_as(float, wf[n]["inputs"].get("strength_clip")),
        )
        for n in reversed(wiring.lora_nodes)
    ]
    fields: dict[str, Any] = {
        "prompt": _encoder_text(wf, wiring.positive.encoders),
        "negative_prompt": _encoder_text(wf, wiring.negative.encoders),
        "guidance": _as(float, _read(wf, wiring.guidance)),
        "width": _as(int, _literal(wf, latent.get("width"))),
        "height": _as(int, _literal(wf, latent.get("height"))),
        "batch_size": _as(int, _literal(wf, latent.get("batch_size"))),
        "loras": [LoraSpec(name=x.name, strength_model=x.strength_model or 0.0,
                           strength_clip=x.strength_clip if x.strength_clip is not None else 0.0)
                  for x in loras] or None,
    }  # fmt: skip
    if primary is not None:
        fields.update(
            seed=primary.seed, steps=primary.steps, cfg=primary.cfg, sampler=primary.sampler,
            scheduler=primary.scheduler, denoise=primary.denoise,
        )  # fmt: skip
    models: dict[str, list[str]] = {}
    for node in wf.values():
        for name, value in (node.get("inputs") or {}).items():
            if name in MODEL_INPUTS and isinstance(value, str) and value not in models.setdefault(name, []):
                models[name].append(value)
    return WorkflowDescription(
        params=_lenient_params(fields),
        settable=_settable(wf, wiring),
        samplers=samplers,
        positive_nodes=list(wiring.positive.encoders),
        negative_nodes=list(wiring.negative.encoders),
        shared_prompt_node=bool(wiring.shared_prompt_nodes),
        latent_node=wiring.latent_node,
        size_note=wiring.latent_blocker,
        guidance_nodes=sorted({t[0] for t in wiring.guidance}),
        loras=loras,
        models=models,
        output_nodes=[n for n, node in wf.items() if is_output_class(node.get("class_type", ""))],
        class_types=sorted({node.get("class_type", "") for node in wf.values()}),
        hash=workflow_hash(wf),
    )


def _lenient_params(fields: dict[str, Any]) -> GenerationParams:
    """GenerationParams from what a workflow holds; values our validation would refuse are left out."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        try:
            GenerationParams.model_validate({key: value})
        except ValueError:
            continue
        clean[key] = value
    return GenerationParams.model_validate(clean)


def _settable(wf: dict[str, Any], wiring: Wiring) -> list[str]:
    settable = []
    probe = {
        "prompt": "x", "negative_prompt": "x", "seed": 1, "steps": 1, "cfg": 1.0, "guidance": 1.0,
        "sampler": "euler", "scheduler": "normal", "width": 512, "height": 512, "batch_size": 1,
        "denoise": 1.0,
        "loras": [LoraSpec(name="probe.safetensors")],
    }  # fmt: skip
    for name, value in probe.items():
        try:
            _apply(copy.deepcopy(wf), analyze(wf), GenerationParams.model_validate({name: value}))
        except WorkflowPatchError:
            continue
        settable.append(name)
    return settable


def _literal(wf: Mapping[str, Any], value: Any) -> Any:
    link = as_link(value)
    if link is None:
        return value
    inputs = (wf.get(link[0]) or {}).get("inputs") or {}
    return inputs.get("value")


def _read(wf: Mapping[str, Any], targets: list[Target]) -> Any:
    for node_id, name in targets:
        value = (wf.get(node_id) or {}).get("inputs", {}).get(name)
        if value is not None and as_link(value) is None:
            return value
    return None


def _encoder_text(wf: Mapping[str, Any], encoders: list[str]) -> str | None:
    for enc in encoders:
        names = encoder_text_inputs(wf[enc])
        if names:
            return str(wf[enc]["inputs"][names[-1]])
    return None


def _as(kind: type, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- patch
def patch(workflow: Mapping[str, Any], params: GenerationParams) -> dict[str, Any]:
    """A copy of ``workflow`` with every set field of ``params`` written where it belongs.

    Raises :class:`WorkflowPatchError` when a requested change has no place in the workflow.
    """
    wf = copy.deepcopy(dict(workflow))
    return _apply(wf, analyze(wf), params)


def _apply(wf: dict[str, Any], wiring: Wiring, params: GenerationParams) -> dict[str, Any]:
    if not wiring.samplers and _needs_sampler(params):
        raise WorkflowPatchError(
            "workflow has no sampler node (KSampler, SamplerCustom, ...): "
            f"{', '.join(_needs_sampler(params))} cannot be set"
        )
    primary = wiring.primary
    for field_name in ("seed", "cfg", "sampler", "scheduler"):
        value = getattr(params, field_name)
        if value is not None:
            _set_sampler_param(wf, wiring.samplers, field_name, value)
    for field_name in ("steps", "denoise"):
        value = getattr(params, field_name)
        if value is not None and primary is not None:
            group = [primary]
            if field_name == "steps" and primary.class_type == "KSamplerAdvanced":
                group = [s for s in wiring.samplers if s.class_type == "KSamplerAdvanced"]
            _set_sampler_param(wf, group, field_name, value)
    if params.prompt is not None:
        _set_prompt(wf, wiring, params.prompt)
    if params.negative_prompt is not None:
        _set_negative(wf, wiring, params.negative_prompt)
    if params.guidance is not None:
        if not wiring.guidance:
            raise WorkflowPatchError(
                "workflow has no FluxGuidance node: guidance cannot be set (use cfg instead)"
            )
        for node_id, name in wiring.guidance:
            wf[node_id]["inputs"][name] = params.guidance
    for field_name in ("width", "height", "batch_size"):
        value = getattr(params, field_name)
        if value is not None:
            _set_latent(wf, wiring, field_name, value)
    if params.loras:
        _set_loras(wf, wiring, params.loras)
    return wf


def _needs_sampler(params: GenerationParams) -> list[str]:
    fields = ("prompt", "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "width", "height",
              "batch_size", "loras")  # fmt: skip
    wanted = [f for f in fields if getattr(params, f)]
    if params.negative_prompt:
        wanted.append("negative_prompt")
    return wanted


_INPUT_NAMES = {"seed": "seed", "steps": "steps", "cfg": "cfg", "sampler": "sampler_name",
                "scheduler": "scheduler", "denoise": "denoise"}  # fmt: skip


def _set_sampler_param(wf: dict[str, Any], samplers: list[Any], field_name: str, value: Any) -> None:
    done = False
    for s in samplers:
        for node_id, name in s.params.get(field_name, []):
            wf[node_id]["inputs"][name] = value
            done = True
    if not done:
        where = "; ".join(
            f"{s.class_type} node {s.node_id} has no {_expected(s.class_type, field_name)}" for s in samplers
        )
        hint = {
            "denoise": " (KSamplerAdvanced uses start_at_step instead)",
            "cfg": " (a BasicGuider has no cfg: Flux-style workflows use guidance)",
        }.get(field_name, "")
        raise WorkflowPatchError(f"{where}: {field_name} cannot be set{hint}")


def _expected(class_type: str, field_name: str) -> str:
    """Where ComfyUI core keeps ``field_name`` for a sampler class (for error messages)."""
    sigmas = "BasicScheduler on its 'sigmas' input"
    custom = {
        "seed": "'noise_seed' input",
        "cfg": "'cfg' input",
        "sampler": "KSamplerSelect on its 'sampler' input",
        "steps": sigmas,
        "scheduler": sigmas,
        "denoise": sigmas,
    }
    if class_type == "SamplerCustom":
        return custom[field_name]
    if class_type == "SamplerCustomAdvanced":
        return {
            **custom,
            "seed": "RandomNoise on its 'noise' input",
            "cfg": "CFGGuider on its 'guider' input",
        }[field_name]
    if class_type == "KSamplerAdvanced" and field_name == "seed":
        return "'noise_seed' input"
    return f"'{_INPUT_NAMES[field_name]}' input"


def _set_prompt(wf: dict[str, Any], wiring: Wiring, text: str) -> None:
    if not wiring.positive.encoders:
        raise WorkflowPatchError(
            "workflow has no text encoder on the sampler's positive input: prompt cannot be set"
        )
    for enc in wiring.positive.encoders:
        for name in encoder_text_inputs(wf[enc]):
            wf[enc]["inputs"][name] = text


def _set_negative(wf: dict[str, Any], wiring: Wiring, text: str) -> None:
    encoders = wiring.negative.encoders
    if not encoders:
        if text == "":
            return
        raise WorkflowPatchError(
            "workflow has no negative conditioning (e.g. a BasicGuider / Flux workflow): "
            "negative_prompt cannot be set"
        )
    shared = set(wiring.shared_prompt_nodes)
    for enc in encoders:
        if enc not in shared:
            for name in encoder_text_inputs(wf[enc]):
                wf[enc]["inputs"][name] = text
            continue
        consumer, input_name = wiring.negative.hops[enc]
        if (consumer, input_name) in wiring.positive.hops.values():
            raise WorkflowPatchError(
                f"node {enc} feeds both the positive and the negative conditioning through node {consumer}: "
                "a separate negative prompt cannot be set"
            )
        clone_id = next_node_id(wf)
        clone = copy.deepcopy(wf[enc])
        clone.setdefault("_meta", {})["title"] = "Negative Prompt (split from a shared node)"
        for name in encoder_text_inputs(clone):
            clone["inputs"][name] = text
        wf[clone_id] = clone
        slot = as_link(wf[consumer]["inputs"][input_name])
        wf[consumer]["inputs"][input_name] = [clone_id, slot[1] if slot else 0]


def _set_latent(wf: dict[str, Any], wiring: Wiring, field_name: str, value: int) -> None:
    node_id = wiring.latent_node
    if node_id is None:
        where = wiring.latent_blocker or "no latent"
        raise WorkflowPatchError(f"workflow has no empty-latent node: {field_name} cannot be set ({where})")
    inputs = wf[node_id]["inputs"]
    if field_name not in inputs:
        raise WorkflowPatchError(
            f"{wf[node_id]['class_type']} node {node_id} has no '{field_name}': {field_name} cannot be set"
        )
    link = as_link(inputs[field_name])
    if link is not None:
        src_inputs = wf[link[0]]["inputs"]
        if "value" not in src_inputs:
            raise WorkflowPatchError(
                f"{field_name} of node {node_id} comes from node {link[0]}: cannot be set"
            )
        src_inputs["value"] = value
    else:
        inputs[field_name] = value


def _set_loras(wf: dict[str, Any], wiring: Wiring, loras: list[LoraSpec]) -> None:
    if wiring.primary is None or (wiring.model_source is None and not wiring.lora_nodes):
        raise WorkflowPatchError(
            "workflow has no model path from a loader to a sampler: LoRAs cannot be added"
        )
    existing = {wf[n]["inputs"].get("lora_name"): n for n in wiring.lora_nodes}
    new = []
    for spec in loras:
        node_id = existing.get(spec.name)
        if node_id is None:
            new.append(spec)
            continue
        wf[node_id]["inputs"]["strength_model"] = spec.strength_model
        if "strength_clip" in wf[node_id]["inputs"]:
            wf[node_id]["inputs"]["strength_clip"] = spec.strength_clip
    if not new:
        return
    model_out: tuple[str, int] | None = (
        (wiring.lora_nodes[0], 0) if wiring.lora_nodes else wiring.model_source
    )
    if model_out is None:
        raise WorkflowPatchError("cannot find where the model is loaded: LoRAs cannot be added")
    if wiring.lora_nodes and class_of(wf, wiring.lora_nodes[0]) == "LoraLoaderModelOnly":
        clip_out = None
    else:
        clip_out = clip_source(wf, wiring)
    model_users = consumers(wf, model_out)
    clip_users = consumers(wf, clip_out) if clip_out is not None else []
    prev_model: list[Any] = [model_out[0], model_out[1]]
    prev_clip: list[Any] | None = [clip_out[0], clip_out[1]] if clip_out is not None else None
    for spec in new:
        node_id = next_node_id(wf)
        if prev_clip is not None:
            wf[node_id] = {
                "class_type": "LoraLoader",
                "inputs": {
                    "model": prev_model, "clip": prev_clip, "lora_name": spec.name,
                    "strength_model": spec.strength_model, "strength_clip": spec.strength_clip,
                },
                "_meta": {"title": f"LoRA {spec.name}"},
            }  # fmt: skip
            prev_clip = [node_id, 1]
        else:
            wf[node_id] = {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {
                    "model": prev_model,
                    "lora_name": spec.name,
                    "strength_model": spec.strength_model,
                },
                "_meta": {"title": f"LoRA {spec.name}"},
            }
        prev_model = [node_id, 0]
    for user, name in model_users:
        wf[user]["inputs"][name] = list(prev_model)
    if prev_clip is not None:
        for user, name in clip_users:
            wf[user]["inputs"][name] = list(prev_clip)
