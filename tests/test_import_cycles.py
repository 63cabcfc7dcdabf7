"""No import cycles between our modules: each layer imports the ones below it, never back.

The graph is read from the source (an AST walk, nothing imported), so a cycle fails here even when Python's import
order happens to tolerate it. Two strengths:

* module level, ``if TYPE_CHECKING:`` blocks included, across every package: a type-only import back is still a
  cycle in the design (``refinement.comfyui.run`` once imported the client for its annotations; it now names the
  narrow :class:`refinement.comfyui.run.RunServer` protocol);
* every import, deferred ones in function bodies included, across every package: the store implementations
  import :mod:`storage.store`, and only :mod:`storage.factory` imports them (``store.py`` once imported
  ``local``/``s3`` inside ``open_store``); ``quality.cli`` once imported the job queue inside ``cmd_score``
  (now the job queue plugs in through the ``comfy_quality.score_handlers`` entry-point group).

And the layering: :mod:`quality` is the bottom layer; none of its modules imports another package of ours, not
even in a function. The project root :mod:`comfy_quality` is the one exception: its modules import nothing of
ours at run time except :mod:`comfy_quality.settings`, which imports the sections by name on first use and skips
a package that is not installed (so ``comfy-quality score`` can warn of a misspelled variable of any section).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("comfy_quality", "quality", "refinement", "storage", "mcp_server", "dashboard", "serving", "jobqueue")
STRICT_PACKAGES = PACKAGES
BOTTOM_LAYER = "quality"
ROOT = "comfy_quality"
"""What the bottom layer may import of ours: the project root (errors, configuration base, boundary helpers)."""


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path], *, deferred: bool) -> set[str]:
    """The known modules ``name`` imports: at module level (TYPE_CHECKING blocks too), and in function bodies
    when ``deferred``. ``from pkg import x`` names the submodule ``pkg.x`` when there is one, else ``pkg``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if inner and not deferred:
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name in known)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - (child.level - 1)]
                    base = ".".join([*parent, *([base] if base else [])])
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in known else base)
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    found.discard(name)
    return found & set(known)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def graph_of(root: Path, packages: Iterable[str], *, deferred: bool) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imports(name, path, known, deferred=deferred) for name, path in known.items()}


def test_no_module_level_import_cycle_in_any_package() -> None:
    assert cycles(graph_of(REPO, PACKAGES, deferred=False)) == []


def test_no_import_cycle_in_any_package_even_through_deferred_imports() -> None:
    assert cycles(graph_of(REPO, STRICT_PACKAGES, deferred=True)) == []


def layer_violations(root: Path, packages: Iterable[str], bottom: str) -> dict[str, set[str]]:
    """Modules of ``bottom`` → the modules of our other packages they import (deferred imports included)."""
    graph = graph_of(root, packages, deferred=True)
    found: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if name.split(".")[0] != bottom:
            continue
        bad = {t for t in targets if t.split(".")[0] not in (bottom, ROOT)}
        if bad:
            found[name] = bad
    return found


def test_quality_imports_no_other_package_of_ours() -> None:
    assert layer_violations(REPO, PACKAGES, BOTTOM_LAYER) == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def cmd():\n    from jobqueue.settings import wants_workers\n", {"quality.cli": {"jobqueue.settings"}}),
        ("import jobqueue\n", {"quality.cli": {"jobqueue"}}),
        ("from refinement import api\nimport jobqueue.settings\n", {"quality.cli": {"jobqueue.settings"}}),
        ("from comfy_quality.errors import ComfyQualityError\nfrom quality import specs\n", {}),
    ],
)
def test_the_layer_check_finds_a_planted_import(tmp_path: Path, source: str, expected: dict[str, set[str]]) -> None:
    for package, files in {
        "quality": {"__init__.py": "", "specs.py": "", "cli.py": source},
        "jobqueue": {"__init__.py": "", "settings.py": "from quality import specs\n"},
        "comfy_quality": {"__init__.py": "", "errors.py": ""},
    }.items():
        (tmp_path / package).mkdir()
        for name, text in files.items():
            (tmp_path / package / name).write_text(text)
    assert layer_violations(tmp_path, ("quality", "jobqueue", "comfy_quality"), "quality") == expected


def test_the_store_implementations_never_import_the_factory() -> None:
    graph = graph_of(REPO, ("storage",), deferred=True)
    assert "storage.factory" not in graph["storage.store"] | graph["storage.local"] | graph["storage.s3"]
    assert {"storage.local", "storage.s3"} <= graph["storage.factory"]
    assert "refinement.comfyui.client" not in graph_of(REPO, ("refinement",), deferred=False)["refinement.comfyui.run"]


@pytest.mark.parametrize(
    ("run_source", "deferred", "expected"),
    [
        # the cycle this test guards against, as it was: a type-only import back
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.client import Client\n",
            False,
            [["pkg.client", "pkg.run"]],
        ),
        ("from . import client\n", False, [["pkg.client", "pkg.run"]]),
        ("def f():\n    from pkg.client import Client\n", True, [["pkg.client", "pkg.run"]]),
        ("def f():\n    from pkg.client import Client\n", False, []),
        ("from pkg.models import Model\n", True, []),
    ],
)
def test_the_walk_finds_a_planted_cycle(
    tmp_path: Path, run_source: str, deferred: bool, expected: list[list[str]]
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text("class Model: ...\n")
    (pkg / "client.py").write_text("from pkg.run import Session\nfrom pkg.models import Model\n")
    (pkg / "run.py").write_text(run_source + "class Session: ...\n")
    assert cycles(graph_of(tmp_path, ("pkg",), deferred=deferred)) == expected


def test_a_local_store_from_the_factory_never_loads_the_s3_client(tmp_path: Path) -> None:
    code = (
        "import sys, storage\n"
        "from storage.factory import open_store\n"
        f"store = open_store(storage.StorageSettings(backend='local', local_root={str(tmp_path)!r}))\n"
        "print(type(store).__name__, 'storage.s3' in sys.modules, 'minio' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["LocalStore", "False", "False"]
