"""``python -m refinement``: generate through ComfyUI with scoring and retries, from the command line.

    python -m refinement generate --workflow flux-dev --prompt "a red fox in the snow" \\
        --quality-threshold 7.5 --max-attempts 3 --retry-strategy progressive --output fox.png
    python -m refinement generate --prompt "..." --quality-score      # one scored generation, no retries
    python -m refinement workflows                                    # shipped templates and what they expose

Progress goes to stderr; the summary (or ``--json``: the full result) to stdout. The image and its metadata are
stored in the configured store (a local folder by default, MinIO/S3 when configured) and indexed.
Exit codes: 0 success (threshold reached), 1 best effort (attempts used up, best image kept), 2 usage error,
3 failed (no image), 4 configuration error (store, ComfyUI URL), 70 internal error (a bug: its traceback is logged
on stderr). Errors are answered by one table, :data:`ERRORS`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO, Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from comfy_quality.boundary import CliErrors, ErrorTable
from comfy_quality.errors import SettingsError
from refinement.api import CALLER_SET_FIELDS, GenerationRequest, GenerationResult, LoraRequest, ProgressUpdate
from refinement.errors import RefinementConfigError, RefinementError, RequestError
from refinement.workflows import WorkflowError
from storage.errors import StorageError

EXIT_SUCCESS, EXIT_BEST_EFFORT, EXIT_USAGE, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2, 3, 4

ERRORS = CliErrors(
    ErrorTable(
        "comfy-quality-generate",
        [
            (RequestError, EXIT_USAGE),  # the request cannot be run as asked
            (WorkflowError, EXIT_USAGE),  # the --workflow given cannot be used
            (SettingsError, EXIT_CONFIG),  # settings of any package (ComfyUI URLs, the store, the scorer)
            (StorageError, EXIT_CONFIG),  # the store or the index cannot be opened
            (RefinementError, EXIT_FAILED),  # ComfyUI or the orchestrator failed: no image
        ],
    ),
    default=EXIT_FAILED,
)
"""The command line's one error table: library error → ``error: <message>`` and its exit code; anything else →
logged with its traceback, a short message and exit code 70."""


def _lora(text: str) -> LoraRequest:
    name, _, strength = text.partition(":")
    try:
        value = float(strength) if strength else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lora {text!r}: strength must be a number (name:0.8)") from None
    return LoraRequest(name=name, strength_model=value, strength_clip=value)


#: spellings of request options kept from before they were derived from :class:`GenerationRequest`
ALIASES: dict[str, tuple[str, ...]] = {"negative_prompt": ("--negative",), "best_of_n": ("--best-of",)}
#: how one item of a list field is written on the command line (the option is the field's singular, repeatable)
ITEM_PARSERS: dict[type, tuple[Any, str]] = {LoraRequest: (_lora, "name[:strength]")}


def _option_type(name: str, annotation: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """``(type, choices)`` of a scalar field's option (``X | None`` is ``X``: leaving the option out is None)."""
    union = get_origin(annotation) is not None and get_origin(annotation) is not Literal
    args = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    if len(args) == 1 and get_origin(args[0]) is Literal:
        return None, get_args(args[0])
    if len(args) == 1 and args[0] in (str, int, float):
        return args[0], None
    raise TypeError(f"GenerationRequest.{name}: no command-line option for a {annotation!r} field")


def _limits(info: FieldInfo) -> str:
    """The field's bounds as ``--help`` states them, e.g. ``1 ≤ x ≤ 10``, ``at most 8``."""
    rules = {name: getattr(rule, name) for rule in info.metadata for name in ("ge", "gt", "le", "lt", "max_length")
             if getattr(rule, name, None) is not None}  # fmt: skip
    if "max_length" in rules:
        return f"at most {rules['max_length']}"
    low = f"{rules['ge']} ≤ " if "ge" in rules else f"{rules['gt']} < " if "gt" in rules else ""
    high = f" ≤ {rules['le']}" if "le" in rules else f" < {rules['lt']}" if "lt" in rules else ""
    return f"{low}x{high}" if low or high else ""


def _add_request_option(g: argparse.ArgumentParser, name: str, info: FieldInfo) -> None:
    """One option per request field: its name, type, choices, default and description come from the model;
    a value out of bounds is refused when the request is built (exit 2). Options left out are not passed, so
    the model's defaults apply."""
    text, limits = info.description or "", _limits(info)
    if get_origin(info.annotation) is list:
        (item,) = get_args(info.annotation)
        if item not in ITEM_PARSERS:
            raise TypeError(f"GenerationRequest.{name}: no command-line parser for a {item!r} item")
        parse, form = ITEM_PARSERS[item]
        g.add_argument(f"--{name.removesuffix('s').replace('_', '-')}", *ALIASES.get(name, ()), dest=name, type=parse,
                       action="append", default=argparse.SUPPRESS, metavar=form.upper(),
                       help=f"{text}, repeatable{' (' + limits + ')' if limits else ''}")  # fmt: skip
        return
    kind, choices = _option_type(name, info.annotation)
    required = info.is_required()
    notes = [limits] if limits and kind is not str else []
    if not required and info.default is not None:
        notes.append(f"default: {info.default}")
    text += f" ({'; '.join(notes)})" if notes else ""
    g.add_argument(f"--{name.replace('_', '-')}", *ALIASES.get(name, ()), dest=name, type=kind, choices=choices,
                   required=required, default=argparse.SUPPRESS, help=text)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m refinement", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate, score, retry, store")
    for name, info in GenerationRequest.model_fields.items():
        if name not in CALLER_SET_FIELDS:
            _add_request_option(g, name, info)
    g.add_argument("--quality-score", action="store_true", help="one scored generation (same as --max-attempts 1)")
    g.add_argument("--comfyui", action="append", help="ComfyUI URL, repeatable (default COMFY_QUALITY_COMFYUI_URLS)")
    g.add_argument("-o", "--output", type=Path, help="also write the best image here")
    g.add_argument("--json", action="store_true", help="print the full result as JSON")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    sub.add_parser("workflows", help="list the shipped templates and their settable parameters")
    return p


def request_of(args: argparse.Namespace) -> GenerationRequest:
    """The request of ``generate``'s options (raises pydantic's ``ValidationError``, a ``ValueError``)."""
    fields = {name: getattr(args, name) for name in GenerationRequest.model_fields if hasattr(args, name)}
    if args.quality_score:
        fields["max_attempts"] = 1
    return GenerationRequest.model_validate({**fields, "source": "cli"})


def render(result: GenerationResult) -> str:
    lines = [f"generation {result.generation_id}: {result.status}"]
    if result.composite_score is not None and result.grade is None:
        lines.append(f"best: attempt {result.best_attempt}, NOT GRADED ({'; '.join(result.grade_reasons)}); "
                     f"composite {result.composite_score:.2f} is not a grade")  # fmt: skip
    elif result.composite_score is not None:
        partial = " (partial)" if result.partial else ""
        lines.append(f"best: attempt {result.best_attempt}, composite {result.composite_score:.2f}, "
                     f"grade {result.grade}{partial}")  # fmt: skip
    if result.selection:
        lines.append(f"selection: {result.selection}")
    for a in result.attempts:
        p = a.parameters
        if a.composite_score is None:
            score = "no score"
        else:
            score = f"{a.composite_score:.2f} {a.grade if a.grade is not None else 'not graded'}"
        why = a.error or a.rejected_reason or ("accepted" if a.accepted else "kept (best)")
        lines.append(f"  #{a.attempt}  seed {p.get('seed')}  steps {p.get('steps')}  cfg {p.get('cfg')}  → {score}"
                     f"  ({why})")  # fmt: skip
    if result.image_url:
        lines.append(f"image: {result.image_url}")
    if result.metadata_url:
        lines.append(f"metadata: {result.metadata_url}")
    if result.error:
        lines.append(f"error: {result.error}")
    return "\n".join(lines)


async def run_generate(args: argparse.Namespace, out: IO[str]) -> int:
    from comfy_quality.settings import Settings
    from refinement.factory import open_orchestrator

    try:
        request = request_of(args)
    except ValueError as exc:  # pydantic refused an option
        raise RequestError(str(exc)) from exc

    def progress(update: ProgressUpdate) -> None:
        if not args.quiet:
            print(f"[{update.progress:4.0%}] {update.message}", file=sys.stderr, flush=True)

    async with AsyncExitStack() as stack:
        try:
            tree = Settings(refinement={"comfyui_urls": args.comfyui} if args.comfyui else {})
            parts = await stack.enter_async_context(open_orchestrator(tree))
        except (ValueError, StorageError, OSError) as exc:
            raise RefinementConfigError(f"configuration: {exc}") from exc
        result = await parts.orchestrator.generate(request, on_progress=progress)
        if args.output and result.image_url and result.best_attempt is not None:
            md = await parts.store.get_metadata(result.generation_id)
            if md.storage and md.storage.key:
                args.output.write_bytes(await parts.store.get_image(md.storage.key))
    out.write((result.model_dump_json(indent=2) if args.json else render(result)) + "\n")
    if args.output and result.best_attempt is not None:
        print(f"wrote {args.output}", file=sys.stderr)
    return {"success": EXIT_SUCCESS, "best_effort": EXIT_BEST_EFFORT}.get(result.status, EXIT_FAILED)


def list_workflows(out: IO[str]) -> int:
    from refinement.workflows import describe, list_templates, load_template

    for name in list_templates():
        d = describe(load_template(name))
        p = d.params
        out.write(f"{name:<10} steps {p.steps}  cfg {p.cfg}  size {p.width}x{p.height}"
                  f"{'  guidance ' + str(p.guidance) if p.guidance is not None else ''}\n"
                  f"           settable: {', '.join(d.settable)}\n")  # fmt: skip
    return EXIT_SUCCESS


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_SUCCESS if exc.code in (0, None) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("quality").setLevel(logging.ERROR)
    from comfy_quality.settings import report_unknown_variables

    report_unknown_variables()
    try:
        if args.command == "workflows":
            return list_workflows(out)
        return asyncio.run(run_generate(args, out))
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except Exception as exc:
        return ERRORS.answer(exc)


