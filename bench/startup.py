"""Cold start: whole-process time to a first score, against a plain pyiqa one-shot script run in the same bench.

    .venv/bin/python bench/startup.py [--runs 5] [--image examples/sample.jpg] [--before PATH] [--only cli,mcp]

Every case is a fresh process (nothing warm but the OS file cache), run ``--runs`` times in alternation so the
noise of a shared machine spreads over all of them; the table shows the median and the spread (min–max). The
deep-model weights folder is an empty temporary folder and downloads are off, so the scored path is the one a
new user gets before ``weights prefetch``: BRISQUE, NIQE, edge density and the calibration model.

Wall time is what a user waits; on a busy machine it inflates with the load, so the table also shows each
process's CPU time (user + system, from ``getrusage``), which does not, and both as ratios to the pyiqa script.

Cases:

* ``floor``    ``python -c "import numpy, cv2, PIL.Image"``: the interpreter plus the libraries any scorer of
               these metrics must load (what "near the physical limit" is measured against);
* ``pyiqa``    the baseline: ``import pyiqa``, create BRISQUE and NIQE (weights from ``quality/data``), score the
               same image, print both values;
* ``cli``      ``python -m quality IMAGE PROMPT --offline`` (the one-image CLI, table output);
* ``cli-json`` the same with ``--json``;
* ``mcp``      ``python -m mcp_server`` over stdio: process start → ``initialize`` answered → ``tools/list``
               answered → first ``score_image`` result (three columns: the time of each answer since start).

After the table: which heavy packages each case's process imported (``-X importtime``, one extra run of each,
not timed), so a regression in laziness is visible next to the figure it costs.

``--before PATH`` also runs the project's cases against another checkout (e.g. ``git worktree add /tmp/before
main``), interleaved with this one's, to compare before/after in one table: its packages shadow this one's
(``PYTHONPATH`` and the working directory point at it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "open_clip", "pyiqa", "transformers", "matplotlib", "sklearn", "minio",
         "scipy.stats", "scipy.optimize", "httpx", "websockets", "uvicorn", "starlette", "sympy")  # fmt: skip
PROMPT = "statue of a man"

PYIQA_SCRIPT = """
import contextlib, io, sys
import pyiqa
with contextlib.redirect_stdout(io.StringIO()):  # pyiqa prints while loading
    brisque = pyiqa.create_metric("brisque", device="cpu", pretrained_model_path=sys.argv[2])
    niqe = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=sys.argv[3])
print(float(brisque(sys.argv[1]).item()), float(niqe(sys.argv[1]).item()))
"""

FLOOR_SCRIPT = "import numpy, cv2, PIL.Image"

INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}
TARGETS = {"cli": 1.0, "cli-json": 1.0, "mcp": 2.0}


def base_env(tmp: Path, tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_QUALITY_")}
    env.update(
        {
            "COMFY_QUALITY_OFFLINE": "1",
            "COMFY_QUALITY_WEIGHTS_DIR": str(tmp / "no-weights"),
            "COMFY_QUALITY_STORAGE_LOCAL_ROOT": str(tmp / "store"),
            "COMFY_QUALITY_STORAGE_INDEX_PATH": str(tmp / "index.sqlite3"),
            "COMFY_QUALITY_STORAGE_SPOOL_DIR": str(tmp / "spool"),
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE")
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def children_cpu() -> float:
    """CPU seconds (user + system) of the bench's finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_plain(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return {"total": wall, "cpu": children_cpu() - c0}


class StdioClient:
    """Just enough JSON-RPC over a child's stdin/stdout to time the first answers (no SDK in the driver)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.answers: dict[int, tuple[float, dict[str, Any]]] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr: list[str] = []
        self.drainer = threading.Thread(target=self._drain, args=(proc.stderr,), daemon=True)
        self.drainer.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "id" in msg and ("result" in msg or "error" in msg):
                with self.cond:
                    self.answers[int(msg["id"])] = (time.perf_counter(), msg)
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _drain(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.stderr.append(line)

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def wait(self, msg_id: int, timeout: float = 120.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while msg_id not in self.answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"no answer to request {msg_id}:\n{''.join(self.stderr[-30:])}")
                self.cond.wait(min(left, 0.5))
            return self.answers[msg_id]


def run_mcp(python: str, env: dict[str, str], cwd: Path, image: Path, log: list[str] | None = None) -> dict[str, float]:
    """Times of the answers to initialize, tools/list and the first score_image, since process start (the
    process's stderr is appended to ``log``)."""
    env = dict(env, COMFY_QUALITY_MCP_ROOTS=str(image.parent), PYTHONUNBUFFERED="1")
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.Popen([python, "-m", "mcp_server"], env=env, cwd=cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    client = StdioClient(proc)
    try:
        client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        t_init, _ = client.wait(1)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        t_list, _ = client.wait(2)
        call = {"name": "score_image", "arguments": {"image": str(image), "prompt": PROMPT}}
        client.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
        t_score, answer = client.wait(3)
        result = answer.get("result", {})
        if "error" in answer or result.get("isError"):
            raise RuntimeError(f"score_image failed: {json.dumps(answer)[:800]}")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        client.drainer.join(timeout=10)
        if log is not None:
            log.extend(client.stderr)
    # cpu: the whole server process, start to exit (its shutdown after the answer is short)
    return {"initialize": t_init - t0, "tools/list": t_list - t0, "total": t_score - t0, "cpu": children_cpu() - c0}


def heavy_imports(stderr: str) -> list[str]:
    """Heavy packages a process imported, from its ``-X importtime`` listing."""
    found = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name in HEAVY:
                found.add(name)
    return sorted(found)


PROJECT_CASES = ("cli", "cli-json", "mcp")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", type=Path, default=REPO / "examples" / "sample.jpg")
    parser.add_argument("--before", type=Path, help="also run the project's cases against this checkout (interleaved)")
    parser.add_argument("--only", default="floor,pyiqa,cli,cli-json,mcp", help="comma-separated cases")
    parser.add_argument("--no-imports", action="store_true", help="skip the import listing")
    args = parser.parse_args()
    python = sys.executable
    image = args.image.resolve()
    data = REPO / "quality" / "data"
    wanted = [c.strip() for c in args.only.split(",") if c.strip()]
    trees: dict[str, Path | None] = {"": None}
    if args.before:
        trees[" (before)"] = args.before.resolve()

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pyiqa_weights = [str(data / "brisque_svm_weights.pth"), str(data / "niqe_modelparameters.mat")]
        plain: dict[str, list[str]] = {
            "floor": [python, "-c", FLOOR_SCRIPT],
            "pyiqa": [python, "-c", PYIQA_SCRIPT, str(image), *pyiqa_weights],
            "cli": [python, "-m", "quality", str(image), PROMPT, "--offline"],
            "cli-json": [python, "-m", "quality", str(image), PROMPT, "--offline", "--json"],
        }
        # case label → (kind, env, cwd)
        cases: dict[str, tuple[str, dict[str, str], Path]] = {}
        for kind in wanted:
            for suffix, tree in trees.items():
                if suffix and kind not in PROJECT_CASES:
                    continue
                cases[kind + suffix] = (kind, base_env(tmp, tree), tree or REPO)

        def once(label: str, env: dict[str, str] | None = None, log: list[str] | None = None) -> dict[str, float]:
            kind, case_env, cwd = cases[label]
            if kind == "mcp":
                return run_mcp(python, env or case_env, cwd, image, log)
            return run_plain(plain[kind], env or case_env, cwd)

        for label in cases:  # warm the OS file cache and byte-compile once, untimed
            once(label)
        samples: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
        for _ in range(args.runs):
            for label in cases:
                samples[label].append(once(label))

        print(f"cold start, median of {args.runs} whole-process runs ({image.name}, no deep-model weights; "
              f"load average at the end {os.getloadavg()[0]:.2f})\n")  # fmt: skip
        base = statistics.median(s["total"] for s in samples["pyiqa"]) if "pyiqa" in samples else None
        cpu_base = statistics.median(s["cpu"] for s in samples["pyiqa"]) if "pyiqa" in samples else None
        print(f"{'case':<19} {'median s':>9} {'min–max s':>13} {'vs pyiqa':>9} {'target':>7} {'cpu s':>6} "
              f"{'vs pyiqa':>9}  details")  # fmt: skip
        for label, (kind, _, _) in cases.items():
            totals = [s["total"] for s in samples[label]]
            med = statistics.median(totals)
            ratio = f"{med / base:.2f}×" if base else "-"
            target = f"≤{TARGETS[kind]:.1f}" if kind in TARGETS else ""
            extra = ""
            if kind == "mcp":
                keys = ("initialize", "tools/list")
                firsts = [f"{k} {statistics.median(s[k] for s in samples[label]):.2f} s" for k in keys]
                extra = ", ".join(firsts) + " (total: first score_image result)"
            cpu = statistics.median(s["cpu"] for s in samples[label])
            cpu_ratio = f"{cpu / cpu_base:.2f}×" if cpu_base else "-"
            print(f"{label:<19} {med:9.2f} {min(totals):6.2f}–{max(totals):<6.2f} {ratio:>9} {target:>7} {cpu:6.2f} "
                  f"{cpu_ratio:>9}  {extra}")  # fmt: skip

        if not args.no_imports:
            print("\nheavy packages imported by each case's process (one -X importtime run):")
            for label, (kind, env, cwd) in cases.items():
                traced = dict(env, PYTHONPROFILEIMPORTTIME="1")
                if kind == "mcp":
                    lines: list[str] = []
                    once(label, traced, lines)
                    stderr = "".join(lines)
                else:
                    stderr = subprocess.run(plain[kind], env=traced, cwd=cwd, capture_output=True, text=True,
                                            timeout=300).stderr  # fmt: skip
                print(f"  {label:<19} {', '.join(heavy_imports(stderr)) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
