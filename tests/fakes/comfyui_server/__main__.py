"""Run the fake ComfyUI server as a process: ``python -m tests.fakes.comfyui_server --port 8188``.

Prints ``fake ComfyUI listening on http://127.0.0.1:PORT`` on stdout once it accepts connections (``--port
0`` picks a free port), then serves until SIGINT/SIGTERM. Misbehaviour is set over HTTP (``POST
/_fake/misbehave``) or with the flags below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from tests.fakes.comfyui_server.misbehaviour import Misbehaviour
from tests.fakes.comfyui_server.server import DEFAULT_MODELS, FakeComfyUI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fake ComfyUI 0.3.64 server for tests")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--root", default=None, help="folder for input/output/temp (default: a temp folder)")
    parser.add_argument("--models", default=None, help='JSON {"checkpoints": [...], ...} (default: built-in)')
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds per sampler step")
    parser.add_argument("--misbehave", default=None, help="JSON of Misbehaviour fields")
    args = parser.parse_args(argv)
    models = json.loads(args.models) if args.models else DEFAULT_MODELS
    misbehaviour = Misbehaviour.model_validate(json.loads(args.misbehave) if args.misbehave else {})
    misbehaviour.step_delay = args.step_delay or misbehaviour.step_delay
    asyncio.run(_serve(args.port, args.root, models, misbehaviour))
    return 0


async def _serve(
    port: int, root: str | None, models: dict[str, list[str]], misbehaviour: Misbehaviour
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeComfyUI(port=port, root=root, models=models, misbehaviour=misbehaviour) as server:
        print(f"fake ComfyUI listening on {server.url}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
