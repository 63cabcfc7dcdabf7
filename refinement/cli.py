"""``python -m refinement``: generate through ComfyUI with scoring and retries, from the command line.

    python -m refinement generate --workflow flux-dev --prompt "a red fox in the snow" \\
        --quality-threshold 7.5 --max-attempts 3 --retry-strategy progressive --output fox.png
    python -m refinement generate --prompt "..." --quality-score      # one scored generation, no retries
    python -m refinement workflows                                    # shipped templates and what they expose

Progress goes to stderr; the summary (or ``--json``: the full result) to stdout. The image and its metadata are
stored in the configured store (a local folder by default, MinIO/S3 when configured) and indexed.
Exit codes: 0 success (threshold reached), 1 best effort (attempts used up, best image kept), 2 usage error,
3 failed (no image), 4 configuration error (store, ComfyUI URL).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO

from refinement.api import STRATEGIES, GenerationRequest, GenerationResult, LoraRequest, ProgressUpdate

EXIT_SUCCESS, EXIT_BEST_EFFORT, EXIT_USAGE, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2, 3, 4


def _lora(text: str) -> LoraRequest:
    name, _, strength = text.partition(":")
    try:
        value = float(strength) if strength else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lora {text!r}: strength must be a number (name:0.8)") from None
    return LoraRequest(name=name, strength_model=value, strength_clip=value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m refinement", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate, score, retry, store")
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", "--negative")
    g.add_argument("--workflow", help="template (flux-dev, sdxl, sd15), API-format workflow file, or JSON")
    g.add_argument("--quality-threshold", type=float, default=7.0)
    g.add_argument("--max-attempts", type=int, default=3)
    g.add_argument("--retry-strategy", choices=STRATEGIES, default="progressive")
    g.add_argument("--quality-score", action="store_true", help="one scored generation (same as --max-attempts 1)")
    g.add_argument("--best-of", type=int, default=4, help="images per batch for --retry-strategy best_of_n")
    for name, kind in (("seed", int), ("steps", int), ("cfg", float), ("guidance", float), ("width", int),
                       ("height", int)):  # fmt: skip
        g.add_argument(f"--{name}", type=kind)
    g.add_argument("--sampler")
    g.add_argument("--scheduler")
    g.add_argument("--lora", type=_lora, action="append", default=[], help="name[:strength], repeatable")
    g.add_argument("--comfyui", action="append", help="ComfyUI URL, repeatable (default COMFY_QUALITY_COMFYUI_URLS)")
    g.add_argument("-o", "--output", type=Path, help="also write the best image here")
    g.add_argument("--json", action="store_true", help="print the full result as JSON")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    sub.add_parser("workflows", help="list the shipped templates and their settable parameters")
    return p


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
    from refinement.factory import open_orchestrator
    from refinement.settings import RefinementSettings
    from storage import StorageError

    try:
        request = GenerationRequest(
            prompt=args.prompt, negative_prompt=args.negative_prompt, workflow=args.workflow,
            quality_threshold=args.quality_threshold, max_attempts=1 if args.quality_score else args.max_attempts,
            retry_strategy=args.retry_strategy, seed=args.seed, steps=args.steps, cfg=args.cfg,
            guidance=args.guidance, sampler=args.sampler, scheduler=args.scheduler, width=args.width,
            height=args.height, loras=args.lora, best_of_n=args.best_of, source="cli",
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(update: ProgressUpdate) -> None:
        if not args.quiet:
            print(f"[{update.progress:4.0%}] {update.message}", file=sys.stderr, flush=True)

    async with AsyncExitStack() as stack:
        try:
            settings = RefinementSettings(**({"comfyui_urls": args.comfyui} if args.comfyui else {}))
            parts = await stack.enter_async_context(open_orchestrator(settings))
        except (ValueError, StorageError, OSError) as exc:
            print(f"error: configuration: {exc}", file=sys.stderr)
            return EXIT_CONFIG
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
    if args.command == "workflows":
        return list_workflows(out)
    from comfy_quality.settings import report_unknown_variables

    report_unknown_variables()
    try:
        return asyncio.run(run_generate(args, out))
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


