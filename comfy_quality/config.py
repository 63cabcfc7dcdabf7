"""The rules every settings section of comfy-quality shares (one place; the sections live in their packages).

Every package keeps its own section class (``quality.settings.QualitySettings``,
``storage.settings.StorageSettings``, …), all derived from :class:`SectionSettings`, so they read settings the
same way:

* **Sources**, highest first: arguments, environment variables, the ``.env`` file of the working directory,
  the defaults. Every section reads ``.env`` (not only some of them).
* **Names**: ``COMFY_QUALITY_`` followed by the section's prefix (``STORAGE_``, ``MCP_``, ``DASHBOARD_``,
  ``JOBS_``; none for the scorer and refinement sections) and the field name in capitals. The names are the
  public interface: never rename one (add an alias that keeps the old one working instead).
* **Booleans** (:data:`Flag`): ``1/true/yes/on`` and ``0/false/no/off``, any case (:func:`parse_bool`, the set
  huggingface_hub uses for ``HF_HUB_OFFLINE``); anything else is refused with the value named.
* **Lists** (:data:`StrList`, :data:`PathList`): comma-separated items or a JSON list (:func:`parse_list`).
* **Sizes** (:data:`ByteCount`): bytes, as a plain number or with a unit: ``64MiB``, ``1.5GB``
  (:func:`parse_bytes`). Every size setting is in bytes.
* **Unknown variables**: a ``COMFY_QUALITY_*`` name that no section knows (a typo) is reported with the closest
  known name (:func:`unknown_variables`); the composed tree (:mod:`comfy_quality.settings`) logs them when an
  entry point loads it, and ``comfy-quality-mcp doctor`` lists them.

This module imports nothing of ours (see :mod:`comfy_quality`).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, AliasPath, BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "COMFY_QUALITY_"
"""The prefix of every variable of ours."""
ENV_FILE = ".env"
"""The dotenv file every section reads (in the working directory)."""

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off"})


# -- the parsers ---------------------------------------------------------------------------------------------
def parse_bool(value: Any) -> bool:
    """A boolean setting: a bool, 0/1, or ``1/true/yes/on`` / ``0/false/no/off`` in any case.

    The true set is huggingface_hub's (``HF_HUB_OFFLINE=True`` means offline here as there). Anything else
    raises ValueError naming the value, so a typo never silently flips a switch."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_VALUES:
            return True
        if text in FALSE_VALUES:
            return False
    shown = value if not isinstance(value, str) or len(value) <= 20 else value[:17] + "..."
    raise ValueError(f"{shown!r} is not a boolean: use 1/true/yes/on or 0/false/no/off")


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean variable owned by another tool (``HF_HUB_OFFLINE``): true for the values :func:`parse_bool`
    takes as true, false otherwise (unset, empty or unrecognised: that tool's own reading)."""
    value = (os.environ if environ is None else environ).get(name, "")
    return value.strip().lower() in TRUE_VALUES


def hf_offline(environ: Mapping[str, str] | None = None) -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (``1``, ``true``, ``yes``, ``on``: offline)."""
    return env_flag("HF_HUB_OFFLINE", environ)


def parse_list(value: Any) -> Any:
    """A list setting: a JSON list (``["a", "b"]``) or comma-separated items (``a, b``); blanks are dropped and an
    empty value is an empty list. Lists and tuples pass as lists; other non-strings pass unchanged (pydantic
    then names the problem)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a valid JSON list ({exc.msg} at character {exc.pos})") from None
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return items
    return [item.strip() for item in text.split(",") if item.strip()]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: Any) -> Any:
    """A size setting, in bytes: ``67108864``, ``64MiB``, ``64 MB`` (10⁶), ``1.5GiB``. Non-strings pass unchanged."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if match is None:
        shown = value if len(value) <= 20 else value[:17] + "..."
        raise ValueError(f"{shown!r} is not a size: give bytes (67108864) or a number with a unit (64MiB, 1.5GB)")
    number, unit = match.groups()
    size = float(number) * _UNITS[(unit or "b").lower()]
    if not math.isfinite(size):
        raise ValueError("size too large")
    return int(size)


Flag = Annotated[bool, BeforeValidator(parse_bool)]
"""A boolean setting (:func:`parse_bool`)."""
StrList = Annotated[list[str], NoDecode, BeforeValidator(parse_list)]
"""A list of strings (:func:`parse_list`)."""
PathList = Annotated[list[Path], NoDecode, BeforeValidator(parse_list)]
"""A list of paths (:func:`parse_list`)."""
ByteCount = Annotated[int, BeforeValidator(parse_bytes)]
"""A size in bytes (:func:`parse_bytes`)."""


# -- the shared base -----------------------------------------------------------------------------------------
class SectionSettings(BaseSettings):
    """Base of every settings section: the one ``model_config`` (``.env`` read, the project's prefix, unknown
    names ignored here and reported by :func:`unknown_variables`). A section sets ``env_prefix`` to
    ``ENV_PREFIX`` + its own part (``COMFY_QUALITY_STORAGE_``) in its ``model_config``, nothing else."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    #: Fields that hold another section (read with that section's own prefix), not a variable of this one.
    nested_sections: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every ``COMFY_QUALITY_*`` variable this section reads → its field name (aliases included)."""
        prefix = str(cls.model_config.get("env_prefix") or "")
        names: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            if name in cls.nested_sections:
                continue
            alias = field.validation_alias
            choices: list[str] = []
            if isinstance(alias, str):
                choices = [alias]
            elif isinstance(alias, AliasChoices):
                choices = [c for c in alias.choices if isinstance(c, str)]
            elif alias is None or isinstance(alias, AliasPath):
                choices = [f"{prefix}{name}"]
            for choice in choices:
                if choice.upper().startswith(ENV_PREFIX):
                    names.setdefault(choice.upper(), name)
        return names

    @classmethod
    def env_file(cls) -> Path | None:
        """The dotenv file sections read now (None: none; tests switch it off)."""
        value = cls.model_config.get("env_file")
        if isinstance(value, (list, tuple)):  # several files: the last one wins, as in pydantic-settings
            value = value[-1] if value else None
        return None if value is None else Path(str(value))


# -- unknown variables ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnknownVariable:
    name: str
    source: str
    """``environment`` or the dotenv file's path."""
    suggestion: str | None
    """The closest known name, if one is close."""

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.name} (from {self.source}) is not a comfy-quality setting and is ignored{hint}"


def dotenv_names(path: Path | None) -> list[str]:
    """The variable names a dotenv file sets (none when it is absent or unreadable)."""
    if path is None or not path.is_file():
        return []
    try:
        from dotenv import dotenv_values

        return [name for name in dotenv_values(path, encoding="utf-8") if name]
    except (OSError, UnicodeDecodeError):
        return []


def unknown_variables(
    known: Iterable[str],
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
) -> list[UnknownVariable]:
    """The ``COMFY_QUALITY_*`` names set in the environment or the dotenv file that ``known`` lacks, each with
    the closest known name. Names are compared in capitals (the sections read them case-insensitively)."""
    known_names = sorted({k.upper() for k in known})
    environ = os.environ if environ is None else environ
    found: dict[str, UnknownVariable] = {}
    sources = [(name, "environment") for name in environ]
    sources += [(name, str(env_file)) for name in dotenv_names(env_file)]
    for name, source in sources:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known_names or upper in found:
            continue
        close = difflib.get_close_matches(upper, known_names, n=1, cutoff=0.75)
        found[upper] = UnknownVariable(name=name, source=source, suggestion=close[0] if close else None)
    return list(found.values())
