"""A baseline revision's ``quality`` package, for benchmarks that compare this tree with an earlier implementation
in the same run.

``extract(rev)`` writes ``git archive REV quality`` into a temporary folder and returns that folder (put it first on
``sys.path`` of a child process to import the baseline's ``quality``), or ``None`` with the reason printed when the
revision cannot be read (no git, a shallow clone without it).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the last revision before the shared image planes and the single-threaded small products (issue 10, item 6)
DEFAULT_BASELINE = "3d716f7"


def extract(rev: str) -> Path | None:
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "quality"],
                                 capture_output=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        print(f"baseline {rev} not available ({detail}): no comparison", file=sys.stderr)
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"baseline-{rev}-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder
