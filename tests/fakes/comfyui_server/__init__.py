"""A protocol-faithful ComfyUI 0.3.64 test server (see ``server.py`` for usage and
``shared/comfyui/README.md``
for the protocol it follows)."""

from tests.fakes.comfyui_server.misbehaviour import Misbehaviour
from tests.fakes.comfyui_server.server import DEFAULT_MODELS, FakeComfyUI, RecordedRequest, WsEvent

__all__ = ["DEFAULT_MODELS", "FakeComfyUI", "Misbehaviour", "RecordedRequest", "WsEvent"]
