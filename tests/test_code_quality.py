"""The project's own checks run with the tests, so a red lint or type error cannot land."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_is_clean():
    proc = subprocess.run([tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_is_clean():
    proc = subprocess.run([tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]


#: Folders read only as callers of the packages (their own unused code is not reported).
CALLERS = ("tests", "bench", "examples")
#: Names called by Python, pydantic or pickle, never by our code.
IGNORED_NAMES = ("__getattr__", "__dir__", "model_post_init", "model_config", "find_class", "persistent_load")
#: Functions registered by a decorator are called by their framework (validators, routes, tools, tasks, fixtures).
IGNORED_DECORATORS = (
    "@field_validator", "@model_validator", "@field_serializer", "@model_serializer", "@computed_field",
    "@*.validator", "@*.tool", "@*.resource", "@*.prompt", "@*.route", "@*.get", "@*.post", "@*.task", "@*.actor",
    "@*.command", "@*.callback", "@pytest.fixture", "@*.fixture",
)  # fmt: skip
#: What fails the check: unused functions, classes, methods and properties (vulture's 60% level) and unreachable
#: code. Unused variables and attributes (pydantic fields, protocol members) are left to review.
DEAD = re.compile(r"^(?P<path>[^:]+):\d+: (unused (function|class|method|property)|unreachable code) ")


def registry_whitelist() -> str:
    """The backend classes the metric registry names by ``"module:Class"`` strings (quality/specs.py), which the
    scorer imports by name: vulture cannot see them used, so their whitelist is derived from the registry (a new
    metric's backend needs no entry in tests/vulture_whitelist.py)."""
    from quality.specs import implementations

    targets = sorted({target.partition(":")[::2] for target in implementations().values()})
    return "".join(f"from {module} import {cls}\n\n{cls}\n" for module, cls in targets)


def dead_code(root: Path = REPO) -> list[str]:
    """vulture's findings in the packages under ``root``, those it fails on only (see :data:`DEAD`)."""
    packages = packages_of(root)
    callers = [c for c in CALLERS if (root / c).is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        derived = Path(tmp) / "registry_whitelist.py"
        derived.write_text(registry_whitelist() if root == REPO else "")
        proc = subprocess.run(
            [sys.executable, "-m", "vulture", *packages, *callers, str(derived), "--min-confidence", "60",
             "--ignore-names", ",".join(IGNORED_NAMES), "--ignore-decorators", ",".join(IGNORED_DECORATORS)],
            cwd=root, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert proc.returncode in (0, 3), proc.stderr[-4000:]  # 3: vulture found something (filtered below)
    found = [m.string for line in proc.stdout.splitlines() if (m := DEAD.match(line))]
    return [line for line in found if line.split("/", 1)[0] in packages]


def packages_of(root: Path) -> list[str]:
    """The project's packages: every top-level folder with an ``__init__.py`` (a new package is checked too)."""
    return sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file() and p.name not in CALLERS)


def test_no_dead_code():
    """Nothing in the packages is left uncalled (vulture). A name only reached by a string, another library's
    protocol or a framework goes in tests/vulture_whitelist.py with the reason; anything else is deleted."""
    assert {"quality", "refinement", "storage", "mcp_server", "dashboard", "serving"} <= set(packages_of(REPO))
    dead = dead_code()
    assert dead == [], "dead code (delete it, or whitelist it in tests/vulture_whitelist.py):\n" + "\n".join(dead)


def test_the_dead_code_check_finds_an_unused_function(tmp_path):
    """The check can fail: an uncalled function or class in a package is reported, a called one is not."""
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "__init__.py").write_text("")
    (tmp_path / "serving" / "probe.py").write_text(
        "def never_called() -> int:\n    return 1\n\n\ndef called() -> int:\n    return 2\n\n\n"
        "class Orphan:\n    pass\n\n\nVALUE = called()\n"
    )
    dead = dead_code(tmp_path)
    assert [line.split(": ", 1)[1].split(" (")[0] for line in dead] == [
        "unused function 'never_called'", "unused class 'Orphan'"
    ], dead
