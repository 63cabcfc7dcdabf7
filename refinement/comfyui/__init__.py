"""Async ComfyUI client: run API-format workflows, follow them over the websocket, download their images.

Public API (see each module for details)::

    ComfyUIClient(base_url, *, timeout=600, ...)      one server: run(), submit(), queue(), history(),
    interrupt(),
                                                      cancel(), object_info(), system_stats(), upload_image(),
                                                      view(), preflight(), close()
    ComfyUIPool([urls], ...)                          least-busy dispatch over several servers, failure
    skipping RunResult / OutputImage / RunTimings              what run() returns ProgressEvent
    what on_progress receives
    errors: ComfyUIError and its subclasses           the only exceptions raised
    messages: parse_text / parse_binary               typed websocket messages
"""

from refinement.comfyui.client import ComfyUIClient, check_against_object_info
from refinement.comfyui.errors import (
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterruptedError,
    ComfyUIMissingModelsError,
    ComfyUIMissingNodesError,
    ComfyUIProtocolError,
    ComfyUIServerError,
    ComfyUITimeoutError,
    ComfyUIUnreachableError,
    ComfyUIValidationError,
    ComfyUIWorkflowShapeError,
    MissingModel,
)
from refinement.comfyui.models import (
    USE_CLIENT_DEFAULT,
    OutputImage,
    ProgressEvent,
    ProgressStage,
    QueueItem,
    QueueState,
    RunResult,
    RunTimeout,
    RunTimings,
    SubmitResult,
    UploadedImage,
    UseClientDefault,
)
from refinement.comfyui.pool import ComfyUIPool, ServerStatus

__all__ = [
    "USE_CLIENT_DEFAULT",
    "ComfyUIClient",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIInterruptedError",
    "ComfyUIMissingModelsError",
    "ComfyUIMissingNodesError",
    "ComfyUIPool",
    "ComfyUIProtocolError",
    "ComfyUIServerError",
    "ComfyUITimeoutError",
    "ComfyUIUnreachableError",
    "ComfyUIValidationError",
    "ComfyUIWorkflowShapeError",
    "MissingModel",
    "OutputImage",
    "ProgressEvent",
    "ProgressStage",
    "QueueItem",
    "QueueState",
    "RunResult",
    "RunTimeout",
    "RunTimings",
    "ServerStatus",
    "SubmitResult",
    "UploadedImage",
    "UseClientDefault",
    "check_against_object_info",
]
