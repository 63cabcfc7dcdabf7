"""The one factory from the metric table to backend classes.

Every :class:`~quality.specs.MetricSpec` names its implementation as ``"package.module:Class"``;
:func:`backend_class` imports it on first use (so a family whose weights are absent, or that is disabled, costs
no import of torch, open_clip, timm or pyiqa) and checks that it is a :class:`~quality.backends.base.Backend`.
Backend modules never import this module back (the open_clip ``factory.py`` rule): they learn their metric list
from :mod:`quality.specs` through :attr:`Backend.metrics <quality.backends.base.Backend.metrics>`.
"""

from __future__ import annotations

import importlib

from quality.backends.base import Backend
from quality.errors import ConfigError
from quality.specs import implementations

BackendTarget = str | type[Backend]
"""What a backend name resolves to: a ``"module:Class"`` string (imported lazily) or the class itself (tests)."""


def default_backends() -> dict[str, BackendTarget]:
    """Backend name → ``"module:Class"``, from the metric table (what a scorer uses unless told otherwise)."""
    return dict(implementations())


def backend_class(target: BackendTarget) -> type[Backend]:
    """The class ``target`` names, imported now. Raises :class:`ImportError` when its module (or a package it
    needs) cannot be imported, :class:`~quality.errors.ConfigError` when the name is not a backend class."""
    if not isinstance(target, str):
        return target
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"{target} is not a quality.backends.base.Backend subclass")
    return cls

