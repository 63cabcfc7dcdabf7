"""One exception tree per package, all rooted at ``comfy_quality.errors.ComfyQualityError``, names unique across
packages, and the root's docstring true."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_quality.boundary import ErrorTable
from comfy_quality.errors import ComfyQualityError, SettingsError

REPO = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")
ROOTS = {
    "quality": "quality.errors.QualityError",
    "storage": "storage.errors.StorageError",
    "refinement": "refinement.errors.RefinementError",
    "mcp_server": "mcp_server.errors.McpServerError",
    "dashboard": "dashboard.errors.DashboardError",
    "jobqueue": "jobqueue.errors.JobQueueError",
}
#: Exceptions that never leave their module (control flow inside one function), named with a leading underscore.
PRIVATE = re.compile(r"^_")


def _resolve(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type), dotted
    return found


def _error_modules() -> list[str]:
    """Every ``errors`` / ``*_errors`` module of every package (imported by name: no heavy model code)."""
    names = []
    for package in PACKAGES:
        path = REPO / package
        for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
            leaf = info.name.rsplit(".", 1)[-1]
            if leaf == "errors" or leaf.endswith("_errors"):
                names.append(info.name)
    return sorted(names)


def _defined_exceptions(module_names: list[str]) -> list[type[BaseException]]:
    found = []
    for name in module_names:
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def _all_project_modules() -> list[str]:
    """Every module of every package whose source defines an exception class (found by reading, imported then)."""
    pattern = re.compile(r"^class \w+\(.*(Error|Exception)\b", re.MULTILINE)
    out = []
    for package in PACKAGES:
        for file in sorted((REPO / package).rglob("*.py")):
            if pattern.search(file.read_text(encoding="utf-8")):
                parts = file.relative_to(REPO).with_suffix("").parts
                out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_package_with_errors_has_an_errors_module_rooted_at_the_project_root() -> None:
    modules = _error_modules()
    for package, dotted in ROOTS.items():
        assert f"{package}.errors" in modules, f"{package} has no errors module"
        root = _resolve(dotted)
        assert ComfyQualityError in root.__bases__, f"{dotted} must derive directly from ComfyQualityError"


def test_every_exception_class_of_the_project_derives_from_comfy_quality_error() -> None:
    classes = _defined_exceptions(sorted(set(_error_modules()) | set(_all_project_modules())))
    assert len(classes) > 40  # the walk found the trees (a broken walk would pass vacuously)
    outside = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, ComfyQualityError) and not PRIVATE.match(c.__name__)
    ]
    assert outside == [], f"exception classes outside the tree: {outside}"


def test_exception_names_are_unique_across_packages() -> None:
    classes = _defined_exceptions(sorted(set(_error_modules()) | set(_all_project_modules())))
    by_name: dict[str, set[str]] = {}
    for cls in classes:
        if not PRIVATE.match(cls.__name__):
            by_name.setdefault(cls.__name__, set()).add(f"{cls.__module__}.{cls.__qualname__}")
    clashes = {name: sorted(where) for name, where in by_name.items() if len(where) > 1}
    assert clashes == {}


def test_each_package_tree_stays_in_its_package() -> None:
    """A class of ``storage.errors`` roots at StorageError, etc. (the MCP tool table relies on it)."""
    for cls in _defined_exceptions(_error_modules()):
        package = cls.__module__.split(".")[0]
        if package == "comfy_quality":
            continue
        assert issubclass(cls, _resolve(ROOTS[package])), f"{cls.__module__}.{cls.__name__}"


def test_configuration_errors_of_every_package_are_settings_errors() -> None:
    config = [c for c in _defined_exceptions(_error_modules()) if c.__name__.endswith("ConfigError")]
    assert {c.__module__.split(".")[0] for c in config} >= {"quality", "storage", "refinement", "mcp_server",
                                                             "dashboard", "jobqueue"}  # fmt: skip
    assert all(issubclass(c, SettingsError) for c in config), config


def test_former_names_stay_importable_as_aliases() -> None:
    import dashboard
    import mcp_server
    from dashboard.errors import DashboardImageError
    from mcp_server.errors import McpServerConfigError

    assert dashboard.ImageError is DashboardImageError
    assert mcp_server.ConfigError is McpServerConfigError


def test_value_error_kept_where_pydantic_validators_and_callers_rely_on_it() -> None:
    from refinement.errors import RefinementConfigError, RequestError
    from refinement.workflows import WorkflowError
    from storage.errors import EmptyImageError

    for cls in (RequestError, WorkflowError, RefinementConfigError, EmptyImageError):
        assert issubclass(cls, ValueError) and issubclass(cls, ComfyQualityError)


def test_the_root_docstring_names_every_package_root() -> None:
    import comfy_quality.errors as root

    doc = root.__doc__ or ""
    for dotted in ROOTS.values():
        assert dotted in doc, f"comfy_quality.errors' docstring lacks {dotted}"
    named = re.findall(r"[├└]── ([\w.]+)", doc)
    for dotted in named:
        cls = _resolve(dotted) if "." in dotted else getattr(root, dotted)
        assert issubclass(cls, ComfyQualityError), dotted


def test_the_foundation_package_imports_nothing_of_ours() -> None:
    code = (
        "import sys, comfy_quality, comfy_quality.errors, comfy_quality.boundary\n"
        f"ours = {[p for p in PACKAGES if p != 'comfy_quality']!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ours))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_error_table_refuses_a_row_an_earlier_row_shadows() -> None:
    class Base(ComfyQualityError):
        pass

    class Child(Base):
        pass

    with pytest.raises(TypeError, match="Child is shadowed by Base"):
        ErrorTable("test", [(Base, 1), (Child, 2)])
    table = ErrorTable("test", [(Child, 2), (Base, 1)])
    assert table.lookup(Child("x")) == 2 and table.lookup(Base("x")) == 1 and table.lookup(ValueError()) is None
