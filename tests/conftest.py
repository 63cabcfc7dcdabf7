"""Fixtures for every test: the developer's environment and ``.env`` file never change a result.

Tests see no ``COMFY_QUALITY_*`` variable (nor the others the settings read: ``HF_HUB_OFFLINE``, the ``AWS_*``
credentials, ``XDG_DATA_HOME``) unless they set it themselves, and no settings class reads a ``.env`` file from
the working directory (a test that checks ``.env`` handling passes ``_env_file`` explicitly).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[1]
#: Environment variables the settings classes read besides their ``COMFY_QUALITY_*`` ones.
OTHER_VARIABLES = ("HF_HUB_OFFLINE", "XDG_DATA_HOME")
PREFIXES = ("COMFY_QUALITY_", "AWS_")
#: Every package's ``settings`` module (``quality.settings``, ``storage.settings``…; a new package's too).
SETTINGS_MODULES = sorted(
    f"{p.name}.settings" for p in REPO.iterdir() if (p / "__init__.py").is_file() and (p / "settings.py").is_file()
)


def _settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the project, imported now (one a test would import lazily is patched too)."""
    for name in SETTINGS_MODULES:
        importlib.import_module(name)
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear the variables the settings read and stop every settings class reading ``.env``."""
    for name in list(os.environ):
        if name.startswith(PREFIXES) or name in OTHER_VARIABLES:
            monkeypatch.delenv(name)
    for cls in _settings_classes():
        if cls.model_config.get("env_file") is not None:
            monkeypatch.setitem(cls.model_config, "env_file", None)
    yield
