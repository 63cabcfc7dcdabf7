"""``generate_quality``'s arguments, checked at the call: a bad argument is a tool error, never a failed job.

**The workflow policy.** ``workflow`` is one of:

* a template name (``flux-dev``, ``sd15``, ``sdxl``): passed on as is;
* an API-format workflow as a JSON object (over MCP a JSON-looking string argument arrives already parsed, so
  both a dict and JSON text are accepted): checked here (structure, links, an output node), at most
  ``workflow_max_bytes``, and passed on as canonical JSON text;
* a file name or path under the configured workflow folders (``COMFY_QUALITY_MCP_WORKFLOW_ROOTS``), confined
  like image paths (:mod:`mcp_server.paths`): read with the size cap in a worker thread, checked, and passed on
  as JSON text. Without workflow folders no file is ever read, and the answer for a name that is no template
  is the same whether or not such a file exists.

So the orchestrator only ever receives a template name or JSON text from the MCP server: a server-side path
chosen by an agent never reaches it. Errors name the problem and quote the argument only as a short excerpt.

**Parameters** that used to fail inside the job (``LoRA`` names, sampler / scheduler names, width or height
that are not multiples of 8, more than 64 megapixels per batch) are checked here with the refinement
package's own rules (:class:`refinement.params.GenerationParams`, :class:`refinement.params.LoraSpec`).

**One source.** The tool's generation parameters are not declared in the tool: :func:`takes_request_fields`
gives it one keyword parameter per :class:`refinement.api.GenerationRequest` field (its type, bounds, default and
description), from which the MCP SDK builds the input schema and the argument validation. The only differences
are the MCP boundary's own: ``workflow`` also takes a JSON object or a server-side file name (resolved here
before the request is built), and a field with a factory default (``loras``) also takes ``null`` for it.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo

from mcp_server.errors import InvalidInputError
from mcp_server.excerpt import excerpt
from mcp_server.netguard import human_bytes
from mcp_server.paths import confine, read_confined
from refinement.api import CALLER_SET_FIELDS, GenerationRequest
from refinement.params import GenerationParams, LoraSpec
from refinement.workflows import WorkflowError, list_templates, load_workflow

#: what a sampler or scheduler name may contain (ComfyUI's names are identifiers; custom packs add more)
NAME = re.compile(r"^[A-Za-z0-9_.+\-]{1,100}$")
MAX_DEPTH = 64


class WorkflowArgumentError(InvalidInputError):
    """The ``workflow`` argument cannot be used."""


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value, iteratively (a hostile document cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _short(message: str, limit: int = 400) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


@dataclass
class WorkflowResolver:
    roots: list[Path] = field(default_factory=list)
    max_bytes: int = 4 * 1024 * 1024
    allow_hardlinks: bool = False

    async def resolve(self, value: str | dict[str, Any] | None) -> str | None:
        """None (the server's default), a template name, or checked workflow JSON text."""
        if value is None:
            return None
        if isinstance(value, dict):
            return await anyio.to_thread.run_sync(self._checked_object, value, "workflow JSON")
        if not isinstance(value, str):
            raise WorkflowArgumentError(f"workflow must be a template name, a JSON object or a file name, not "
                                        f"{excerpt(value)}")  # fmt: skip
        text = value.strip()
        if not text:
            raise WorkflowArgumentError("workflow is empty: leave it out for the server's default template")
        if len(text) > self.max_bytes:
            raise WorkflowArgumentError(
                f"workflow is {human_bytes(len(text))}, above the {human_bytes(self.max_bytes)} limit "
                "(COMFY_QUALITY_MCP_WORKFLOW_MAX_BYTES)"
            )
        if text.startswith(("{", "[")):
            return await anyio.to_thread.run_sync(self._checked_text, text, "workflow JSON")
        templates = list_templates()
        if text in templates:
            return text
        if not self.roots:
            raise WorkflowArgumentError(
                f"workflow {excerpt(text)} is not a template ({', '.join(templates)}) nor API-format workflow JSON; "
                "this server reads no workflow files (its operator can allow folders with "
                "COMFY_QUALITY_MCP_WORKFLOW_ROOTS)"
            )
        path = confine(
            text, self.roots, what="workflow", roots_setting="COMFY_QUALITY_MCP_WORKFLOW_ROOTS",
            error=WorkflowArgumentError, refused=WorkflowArgumentError,
        )  # fmt: skip
        data = await anyio.to_thread.run_sync(self._read, path)
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowArgumentError(f"workflow file {path.name} is not UTF-8 text") from exc
        return await anyio.to_thread.run_sync(self._checked_text, decoded, f"workflow file {path.name}")

    def _read(self, path: Path) -> bytes:
        return read_confined(
            path, max_bytes=self.max_bytes, allow_hardlinks=self.allow_hardlinks, roots=self.roots, what="workflow",
            limit_setting="COMFY_QUALITY_MCP_WORKFLOW_MAX_BYTES", error=WorkflowArgumentError,
            refused=WorkflowArgumentError,
        )  # fmt: skip

    def _checked_text(self, text: str, where: str) -> str:
        try:
            parsed = json.loads(text)
        except RecursionError as exc:
            raise WorkflowArgumentError(f"{where} is nested too deeply") from exc
        except ValueError as exc:
            raise WorkflowArgumentError(f"{where} is not valid JSON ({_short(str(exc), 120)})") from exc
        if not isinstance(parsed, dict):
            raise WorkflowArgumentError(f"{where} must be a JSON object of nodes {{id: {{class_type, inputs}}}}")
        return self._checked_object(parsed, where)

    def _checked_object(self, value: dict[str, Any], where: str) -> str:
        if _depth(value) > MAX_DEPTH:
            raise WorkflowArgumentError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise WorkflowArgumentError(f"{where} cannot be serialised as JSON ({_short(str(exc), 120)})") from exc
        if len(text) > self.max_bytes:
            raise WorkflowArgumentError(
                f"{where} is {human_bytes(len(text))}, above the {human_bytes(self.max_bytes)} limit "
                "(COMFY_QUALITY_MCP_WORKFLOW_MAX_BYTES)"
            )
        try:
            load_workflow(value)
        except WorkflowError as exc:
            raise WorkflowArgumentError(_short(f"{where}: {exc}")) from exc
        return text


def _problems(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{prefix}{loc}: {_short(message, 200)}" if loc or prefix else _short(message, 200))
    return "; ".join(parts)


def check_request(request: GenerationRequest) -> None:
    """Raise :class:`InvalidInputError` for parameters the orchestrator would refuse inside the job."""
    for i, lora in enumerate(request.loras):
        try:
            LoraSpec(**lora.model_dump())
        except ValidationError as exc:
            raise InvalidInputError(f"invalid LoRA: {_problems(exc, f'loras[{i}].')}") from exc
    for name in ("sampler", "scheduler"):
        value = getattr(request, name)
        if value is not None and not NAME.match(value):
            raise InvalidInputError(
                f"{name} {excerpt(value)} is not a ComfyUI {name} name (letters, digits, '_', '.', '+', '-'; "
                "e.g. euler, dpmpp_2m, karras)"
            )
    batch = request.best_of_n if request.retry_strategy == "best_of_n" else None
    try:
        GenerationParams(
            sampler=request.sampler, scheduler=request.scheduler, width=request.width, height=request.height,
            batch_size=batch, steps=request.steps, cfg=request.cfg, guidance=request.guidance, seed=request.seed,
        )  # fmt: skip
    except ValidationError as exc:
        message = _problems(exc)
        if "megapixels" in message and batch:
            message += f" (best_of_n renders {batch} images per attempt)"
        raise InvalidInputError(f"invalid generation parameters: {message}") from exc


# -- the tool's parameters, derived from GenerationRequest ----------------------------------------------------
F = TypeVar("F", bound=Callable[..., Any])


def _factory_default(info: FieldInfo) -> bool:
    """A field whose default is made by a factory (``loras``: a new empty list): at the MCP boundary its default
    is ``null`` (what many clients send for "not given"), which the request turns into the factory's value."""
    return info.default_factory is not None


def _parameter(name: str, info: FieldInfo) -> inspect.Parameter:
    """The keyword parameter of one request field: its type with the field's bounds and description."""
    described = Field(description=info.description, examples=info.examples, json_schema_extra=info.json_schema_extra)
    annotation: Any = info.annotation
    default: Any = inspect.Parameter.empty if info.is_required() else info.default
    if _factory_default(info):
        annotation, default = annotation | None, None
    typed = Annotated[(annotation, *info.metadata, described)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=typed)


def takes_request_fields(*, overrides: Mapping[str, tuple[Any, Any]] | None = None) -> Callable[[F], F]:
    """Give a tool function that takes ``**request_fields`` one keyword parameter per
    :class:`GenerationRequest` field (but :data:`~refinement.api.CALLER_SET_FIELDS`), ahead of its own, so the
    SDK publishes and validates them. ``overrides`` maps a field to the ``(annotation, default)`` the tool takes
    instead (a different type at the boundary, resolved by the tool before the request is built)."""
    overrides = dict(overrides or {})

    def decorate(fn: F) -> F:
        own = inspect.signature(fn, eval_str=True)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.parameters.values()):
            raise TypeError(f"{fn.__name__} must take **request_fields: the request's fields arrive there")
        unknown = set(overrides) - set(GenerationRequest.model_fields)
        if unknown:
            raise TypeError(f"{fn.__name__}: overrides name no GenerationRequest field: {sorted(unknown)}")
        fields = []
        for name, info in GenerationRequest.model_fields.items():
            if name in CALLER_SET_FIELDS:
                continue
            if name in overrides:
                annotation, default = overrides[name]
                fields.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=annotation))  # fmt: skip
            else:
                fields.append(_parameter(name, info))
        clash = {p.name for p in fields} & set(own.parameters)
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {sorted(clash)} are GenerationRequest fields already")
        kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values()
                if p.kind is not inspect.Parameter.VAR_KEYWORD]  # fmt: skip
        # inspect.signature() (the SDK's source of the input schema and the argument model) honours __signature__
        fn.__dict__["__signature__"] = own.replace(parameters=[*fields, *kept])
        return fn

    return decorate


def build_request(fields: Mapping[str, Any], **caller_set: Any) -> GenerationRequest:
    """The request of a tool call's validated ``fields`` plus what the entry point sets (``source``,
    the resolved ``workflow``). ``None`` for a field with a factory default means that default; a field the request
    still refuses is an :class:`InvalidInputError` naming the field and the rule, never the value."""
    given = {name: value for name, value in fields.items() if name in GenerationRequest.model_fields}
    for name, info in GenerationRequest.model_fields.items():
        if _factory_default(info) and given.get(name, ...) is None:
            del given[name]
    try:
        return GenerationRequest.model_validate({**given, **caller_set})
    except ValidationError as exc:
        raise InvalidInputError(f"invalid generation request: {_problems(exc)}") from exc
