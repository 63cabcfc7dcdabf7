"""The refinement package's exception tree.

    RefinementError
    └── RequestError         the request cannot be run as asked (bad workflow, a parameter with no place in it)

ComfyUI errors (:mod:`refinement.comfyui.errors`) and workflow errors (:class:`refinement.workflows.WorkflowError`)
keep their own types; the orchestrator turns them into attempt errors or a ``failed`` result with the message.
"""

from __future__ import annotations


class RefinementError(Exception):
    """Base class of refinement errors."""


class RequestError(RefinementError, ValueError):
    """The request cannot be run as asked; the message says what to change."""
