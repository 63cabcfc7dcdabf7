"""Every third-party package the shipped code imports is declared in pyproject.toml (OpenCV, for one, used to
arrive only through pyiqa), and the package data the code reads is part of the distribution."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("comfy_quality", "quality", "refinement", "storage", "mcp_server", "dashboard", "serving", "jobqueue")
#: modules that may import a package of an optional extra (fit-time tools, not the run-time path)
EXTRA_ONLY = {"quality/calibration/fit.py": {"sklearn"}, "quality/calibration/damage.py": {"sklearn", "skimage"}}


def requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    assert match, req
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def third_party_imports() -> dict[str, set[str]]:
    """top-level module → the files importing it (any import statement, also inside functions)."""
    found: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def test_every_imported_package_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    providers = metadata.packages_distributions()
    problems = []
    for module, files in sorted(third_party_imports().items()):
        dists = {requirement_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)}) is not installed: no distribution provides it"
        if dists & declared:
            continue
        if dists & extras and all(module in EXTRA_ONLY.get(f, set()) for f in files):
            continue
        problems.append(f"{module} (from {' or '.join(sorted(dists))}) imported by {sorted(files)}")
    assert problems == [], "undeclared dependencies:\n" + "\n".join(problems)


def test_opencv_is_declared_headless():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "opencv-python-headless" in {requirement_name(r) for r in project["dependencies"]}


def test_the_package_data_the_code_reads_is_declared():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    needed = {
        "quality": ["data/calibration.npz", "data/brisque_svm_weights.pth", "data/niqe_pris_params.npz",
                    "data/nss_ratio_tables.npz"],
        "refinement": ["workflows/sd15.json"],
        "dashboard": ["static/dashboard.js", "templates/base.html"],
        "storage": ["metadata.schema.json"],
    }  # fmt: skip
    for package, files in needed.items():
        patterns = config.get(package, [])
        for name in files:
            assert (REPO / package / name).is_file(), f"{package}/{name} is gone: update this test"
            assert any(Path(name).match(p) for p in patterns), f"{package}/{name} is not in package-data {patterns}"
