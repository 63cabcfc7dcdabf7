"""The composed settings tree: every package's section, loaded once by an entry point.

    settings = load_settings()          # logs unknown COMFY_QUALITY_* variables once (with the closest name)
    settings.quality.device             # COMFY_QUALITY_DEVICE
    settings.storage.backend            # COMFY_QUALITY_STORAGE_BACKEND
    settings.mcp.transport              # COMFY_QUALITY_MCP_TRANSPORT

* ``quality``: ``quality.settings.QualitySettings`` (``COMFY_QUALITY_*``)
* ``refinement``: ``refinement.settings.RefinementSettings`` (``COMFY_QUALITY_*``)
* ``storage``: ``storage.settings.StorageSettings`` (``COMFY_QUALITY_STORAGE_*``)
* ``mcp``: ``mcp_server.settings.McpSettings`` (``COMFY_QUALITY_MCP_*``)
* ``dashboard``: ``dashboard.settings.DashboardSettings`` (``COMFY_QUALITY_DASHBOARD_*``; its ``storage`` is the
  tree's)
* ``jobs``: ``jobqueue.settings.JobsSettings`` (``COMFY_QUALITY_JOBS_*``)

Sections are built on first access (a scorer-only process never imports the MCP server's), and each package's
section stays usable alone (``QualitySettings()`` needs nothing else: quality depends on nothing of ours). This
is the one module of :mod:`comfy_quality` that names the packages, by module path and lazily, because it is the
composition root; nothing here is imported at module load.

Adding a setting: one field on the section class (with its description) and a line in the README's
configuration table; its variable name follows from the section's prefix and the field name.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfy_quality.config import ENV_PREFIX, SectionSettings, UnknownVariable, dotenv_names, unknown_variables

if TYPE_CHECKING:
    from dashboard.settings import DashboardSettings
    from jobqueue.settings import JobsSettings
    from mcp_server.settings import McpSettings
    from quality.settings import QualitySettings
    from refinement.settings import RefinementSettings
    from storage.settings import StorageSettings

log = logging.getLogger("comfy_quality.settings")

#: section name → "module:class" (imported on first use).
SECTIONS: dict[str, str] = {
    "quality": "quality.settings:QualitySettings",
    "refinement": "refinement.settings:RefinementSettings",
    "storage": "storage.settings:StorageSettings",
    "mcp": "mcp_server.settings:McpSettings",
    "dashboard": "dashboard.settings:DashboardSettings",
    "jobs": "jobqueue.settings:JobsSettings",
}

#: Variables with our prefix that are not settings (never reported as unknown): the ``./run`` script's virtual
#: environment, and the folders the test suite reads.
NOT_SETTINGS = frozenset(
    {"COMFY_QUALITY_VENV", "COMFY_QUALITY_SHARED", "COMFY_QUALITY_TEST_STORE", "COMFY_QUALITY_INSPECTOR_DIR"}
)

_UNSET: Any = object()


def section_class(name: str) -> type[SectionSettings]:
    """The class of section ``name`` (imports its module)."""
    module, _, attr = SECTIONS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, SectionSettings)):  # a section left off the shared base
        raise TypeError(f"{SECTIONS[name]} is not a SectionSettings")
    return cls


def section_classes(names: Iterable[str] | None = None) -> dict[str, type[SectionSettings]]:
    """The class of every section (or of those ``names``), by section name (imports their modules; skips one not
    installed)."""
    found: dict[str, type[SectionSettings]] = {}
    for name in SECTIONS if names is None else names:
        try:
            found[name] = section_class(name)
        except ImportError:  # a package left out of this installation: its variables are not ours to check
            log.debug("settings section %s not importable", name)
    return found


def known_variables(names: Iterable[str] | None = None) -> dict[str, tuple[type[SectionSettings], str]]:
    """Every ``COMFY_QUALITY_*`` variable some section (of ``names``; default all) reads → (section class, field)."""
    known: dict[str, tuple[type[SectionSettings], str]] = {}
    for cls in section_classes(names).values():
        for variable, field in cls.env_names().items():
            known.setdefault(variable, (cls, field))
    return known


def find_unknown_variables(
    environ: Mapping[str, str] | None = None, env_file: Path | Any | None = _UNSET
) -> list[UnknownVariable]:
    """``COMFY_QUALITY_*`` variables (environment and ``.env``) that no section reads, with the closest names."""
    path = SectionSettings.env_file() if env_file is _UNSET else env_file
    environ = os.environ if environ is None else environ
    # The fast path: which names with our prefix are set at all, and are they all read by a section whose module
    # this process has already loaded (or quality's, which imports nothing of ours)? Only a name left over makes
    # every section module load (storage, refinement, the job queue: about 60 ms on every CLI start otherwise).
    candidates = {n.upper() for n in [*environ, *dotenv_names(path)] if n.upper().startswith(ENV_PREFIX)}
    candidates -= NOT_SETTINGS
    loaded = [n for n, target in SECTIONS.items() if n == "quality" or target.partition(":")[0] in sys.modules]
    if candidates <= set(known_variables(loaded)):
        return []
    return unknown_variables([*known_variables(), *NOT_SETTINGS], environ=environ, env_file=path)


class Settings:
    """The composed tree. ``overrides`` give a section's arguments (``Settings(mcp={"port": 0})``) or the section
    itself, already built (``Settings(storage=StorageSettings(root=...))``: used as is, everywhere the process
    reads that section); ``env_file`` replaces the ``.env`` file for every section built here (None: read none).

    An entry point builds one tree and passes it (or its sections) down; nothing below it builds a section of its
    own (see :func:`tree_of`)."""

    def __init__(
        self, *, env_file: Path | str | Any | None = _UNSET, **overrides: dict[str, Any] | SectionSettings
    ) -> None:
        unknown = set(overrides) - set(SECTIONS)
        if unknown:
            raise TypeError(f"unknown settings section(s): {', '.join(sorted(unknown))}")
        self._env_file = env_file
        self._overrides: dict[str, dict[str, Any]] = {}
        for name, value in overrides.items():
            if isinstance(value, SectionSettings):
                self.__dict__[name] = value  # the cached_property's slot: this section is not built again
            else:
                self._overrides[name] = value

    def _build(self, name: str, **extra: Any) -> Any:
        cls = section_class(name)
        kwargs: dict[str, Any] = {**extra, **self._overrides.get(name, {})}
        if self._env_file is not _UNSET:
            kwargs["_env_file"] = self._env_file
        return cls(**kwargs)

    @cached_property
    def quality(self) -> QualitySettings:
        return self._build("quality")

    @cached_property
    def refinement(self) -> RefinementSettings:
        return self._build("refinement")

    @cached_property
    def storage(self) -> StorageSettings:
        return self._build("storage")

    @cached_property
    def mcp(self) -> McpSettings:
        return self._build("mcp")

    @cached_property
    def dashboard(self) -> DashboardSettings:
        given = self._overrides.get("dashboard", {})
        extra = {} if "storage" in given else {"storage": self.storage}
        return self._build("dashboard", **extra)

    @cached_property
    def jobs(self) -> JobsSettings:
        return self._build("jobs")

    def env_file(self) -> Path | None:
        if self._env_file is _UNSET:
            return SectionSettings.env_file()
        return Path(self._env_file) if self._env_file is not None else None

    def unknown_variables(self, environ: Mapping[str, str] | None = None) -> list[UnknownVariable]:
        return find_unknown_variables(environ, self.env_file())


_reported: set[str] = set()
_report_lock = threading.Lock()


def report_unknown_variables(
    settings: Settings | None = None, *, logger: logging.Logger | None = None
) -> list[UnknownVariable]:
    """Log a warning for each unknown ``COMFY_QUALITY_*`` variable (each name once per process); returns them."""
    found = (settings or Settings()).unknown_variables()
    with _report_lock:
        for item in found:
            if item.name not in _reported:
                _reported.add(item.name)
                (logger or log).warning("%s", item.message())
    return found


def tree_of(settings: Settings | SectionSettings | None, section: str) -> Settings:
    """The tree an API that takes "a tree or one section" works on: ``settings`` itself when it is a tree, a new
    tree holding it as section ``section`` when it is a section, a new tree when None."""
    if settings is None:
        return Settings()
    if isinstance(settings, Settings):
        return settings
    if not isinstance(settings, SectionSettings):
        raise TypeError(f"expected a Settings tree or a {section} settings section, got {type(settings).__name__}")
    return Settings(**{section: settings})


def load_settings(*, env_file: Path | str | Any | None = _UNSET, **overrides: dict[str, Any]) -> Settings:
    """What an entry point calls once: the composed tree, with unknown variables reported."""
    settings = Settings(env_file=env_file, **overrides)
    report_unknown_variables(settings)
    return settings
