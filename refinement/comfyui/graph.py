"""Small helpers over API-format workflows: ``{node_id: {"class_type", "inputs": {name: value |
[src_id, slot]}}}``.

An input is a *link* when it is a two-element list ``[source_node_id (str), output_slot (int)]``; anything
else is a literal (widget) value. These helpers never mutate their arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Workflow = dict[str, dict[str, Any]]
Link = tuple[str, int]

# Inputs that name model files, by the folder ComfyUI lists them from (used to explain missing models).
MODEL_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "unet_name": "diffusion_models",
    "lora_name": "loras",
    "vae_name": "vae",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "clip_name4": "text_encoders",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "upscale_model_name": "upscale_models",
    "model_name": "upscale_models",
}
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


def is_link(value: Any) -> bool:
    """True for ``[node_id, slot]`` (ids are strings in API format; an int id is tolerated here)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def as_link(value: Any) -> Link | None:
    if is_link(value):
        return (str(value[0]), int(value[1]))
    return None


def node_links(node: Mapping[str, Any]) -> Iterator[tuple[str, Link]]:
    """``(input_name, (source_id, slot))`` for every linked input of a node."""
    inputs = node.get("inputs")
    if not isinstance(inputs, Mapping):
        return
    for name, value in inputs.items():
        link = as_link(value)
        if link is not None:
            yield name, link


def input_link(workflow: Mapping[str, Any], node_id: str, input_name: str) -> Link | None:
    node = workflow.get(node_id)
    if not isinstance(node, Mapping):
        return None
    inputs = node.get("inputs")
    if not isinstance(inputs, Mapping):
        return None
    return as_link(inputs.get(input_name))


def class_of(workflow: Mapping[str, Any], node_id: str) -> str | None:
    node = workflow.get(node_id)
    if isinstance(node, Mapping):
        cls = node.get("class_type")
        return cls if isinstance(cls, str) else None
    return None


def consumers(workflow: Mapping[str, Any], source: Link) -> list[tuple[str, str]]:
    """Every ``(node_id, input_name)`` whose input links to ``source`` (a node output)."""
    found: list[tuple[str, str]] = []
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        for name, link in node_links(node):
            if link == source:
                found.append((node_id, name))
    return found


def next_node_id(workflow: Mapping[str, Any]) -> str:
    """A fresh node id: one more than the largest numeric id (ComfyUI's UI uses numeric ids too)."""
    numeric = [int(k) for k in workflow if str(k).isdigit()]
    candidate = (max(numeric) + 1) if numeric else 1
    while str(candidate) in workflow:
        candidate += 1
    return str(candidate)


def looks_like_model_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_FILE_SUFFIXES)
