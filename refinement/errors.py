"""The refinement package's exception tree.

    RefinementError (comfy_quality.errors.ComfyQualityError)
    ├── RequestError             the request cannot be run as asked (bad workflow, a parameter with no place in it)
    ├── RefinementConfigError    settings that cannot work (no ComfyUI URL, a server twice); a SettingsError
    ├── WorkflowError            a workflow that cannot be used (refinement.workflows; also a ValueError)
    │   ├── WorkflowLoadError    not an API-format workflow, unknown template, no output node
    │   └── WorkflowPatchError   a requested parameter has no place in the workflow
    └── ComfyUIError             the ComfyUI client's tree (refinement.comfyui.errors)

The orchestrator turns ComfyUI and workflow errors into attempt errors or a ``failed`` result with the message.
``RequestError`` and ``WorkflowError`` are also ``ValueError``s: pydantic validators of
:class:`refinement.api.GenerationRequest` raise them, and pydantic reports only ``ValueError``s as validation errors.
"""

from __future__ import annotations

from comfy_quality.errors import ComfyQualityError, SettingsError


class RefinementError(ComfyQualityError):
    """Base class of refinement errors."""


class RequestError(RefinementError, ValueError):
    """The request cannot be run as asked; the message says what to change."""


class RefinementConfigError(RefinementError, SettingsError, ValueError):
    """The refinement settings (ComfyUI servers, pool limits) cannot work as given. ``ValueError`` too: settings
    validators raise it (pydantic reports only ``ValueError``s) and callers caught ``ValueError`` before."""
