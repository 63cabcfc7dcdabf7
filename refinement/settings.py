"""Refinement settings (environment variables with the ``COMFY_QUALITY_`` prefix, or a ``.env`` file).

* ``COMFY_QUALITY_COMFYUI_URLS`` (``http://127.0.0.1:8188``): ComfyUI server(s), comma-separated or a JSON
  list; jobs go to the least busy one, a failing one is skipped until it answers again.
* ``COMFY_QUALITY_DEFAULT_WORKFLOW`` (``sd15``): template name, workflow file or JSON used when a request names
  none.
* ``COMFY_QUALITY_ATTEMPT_TIMEOUT_SECONDS`` (``900``): longest one ComfyUI job may take (queue + execution).
* ``COMFY_QUALITY_PREFLIGHT`` (``true``): check nodes and model files against ``/object_info`` first.
* ``COMFY_QUALITY_STORE_ATTEMPT_IMAGES`` (``true``): store every attempt's image (the dashboard shows them).

The rules shared by every section (sources, booleans, lists, unknown names) are :mod:`comfy_quality.config`'s.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from comfy_quality.config import ENV_PREFIX, Flag, SectionSettings, StrList


class RefinementSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    comfyui_urls: StrList = Field(default_factory=lambda: ["http://127.0.0.1:8188"])
    default_workflow: str = "sd15"
    attempt_timeout_seconds: float = Field(900.0, gt=0)
    preflight: Flag = True
    store_attempt_images: Flag = True

    @field_validator("comfyui_urls", mode="after")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one ComfyUI URL is needed (COMFY_QUALITY_COMFYUI_URLS)")
        return value
