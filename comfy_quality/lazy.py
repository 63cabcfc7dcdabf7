"""Public names of a package loaded on first use (PEP 562), so that importing one of its submodules, or the
package for its light names, does not pull in the heavy ones (the scorer, the S3 client, the MCP SDK and its web
stack)::

    __getattr__, __dir__ = lazy_exports(__name__, {"Scorer": "quality.scorer"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, targets: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: ``targets`` maps each lazy name to the module
    that defines it; the first access imports that module and keeps the value in the package."""

    def __getattr__(name: str) -> Any:
        module = targets.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *targets})

    return __getattr__, __dir__
