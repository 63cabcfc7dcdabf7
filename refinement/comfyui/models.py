"""Value objects the client returns: results, progress events, queue state."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ProgressStage = Literal["queued", "running", "sampling", "done"]


class UseClientDefault(enum.Enum):
    """Type of :data:`USE_CLIENT_DEFAULT`."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT = UseClientDefault.USE_CLIENT_DEFAULT
"""``timeout=USE_CLIENT_DEFAULT``: the client's configured limit. The same meaning all along client → pool →
orchestrator, where ``timeout=None`` always means "no limit"."""

RunTimeout = float | None | UseClientDefault
"""A ``run(timeout=...)`` argument: seconds, ``None`` (no limit) or :data:`USE_CLIENT_DEFAULT`."""


class ProgressEvent(BaseModel):
    """One progress update of a run, for the caller's progress reporting.

    ``stage``: ``queued`` (waiting; ``queue_position`` = prompts ahead of ours, 0 = next), ``running`` (a
    node is executing: ``node``/``node_type``; ``value``/``max`` when the node reports progress),
    ``sampling`` (a sampler node's steps: ``value`` of ``max``), ``done`` (finished, success or not).
    """

    model_config = ConfigDict(frozen=True)
    stage: ProgressStage
    prompt_id: str | None = None
    node: str | None = None
    node_type: str | None = None
    value: int | None = None
    max: int | None = None
    queue_position: int | None = None
    queue_remaining: int | None = None
    elapsed_s: float = 0.0
    server: str | None = None

    @property
    def fraction(self) -> float | None:
        """``value / max`` in [0, 1] when the event carries step progress."""
        if self.value is None or not self.max:
            return None
        return max(0.0, min(1.0, self.value / self.max))


class OutputImage(BaseModel):
    """One image a node of the workflow produced, downloaded through ``/view``."""

    model_config = ConfigDict(frozen=True)
    node_id: str
    filename: str
    subfolder: str = ""
    type: str = "output"
    """``output`` (SaveImage), ``temp`` (PreviewImage) or ``input``."""
    data: bytes = Field(repr=False)
    content_type: str | None = None
    cached: bool = False
    """True when the node was served from ComfyUI's cache (the file is the one an earlier identical run
    wrote)."""


class RunTimings(BaseModel):
    """Durations measured on the client's clock from message arrival times (not from server timestamps)."""

    model_config = ConfigDict(frozen=True)
    submit_s: float = 0.0
    """POST /prompt round trip (after the websocket was ready)."""
    queued_s: float = 0.0
    """From the accepted POST to ``execution_start``."""
    execution_s: float = 0.0
    """From ``execution_start`` to the end marker (or to the history entry after a fallback)."""
    download_s: float = 0.0
    total_s: float = 0.0
    nodes_s: dict[str, float] = Field(default_factory=dict)
    """Per executed node: time between its ``executing`` and the next node's (websocket path only)."""


class RunResult(BaseModel):
    """What :meth:`ComfyUIClient.run` returns for a prompt that finished successfully."""

    model_config = ConfigDict(frozen=True)
    prompt_id: str
    client_id: str
    number: float | int | None = None
    server: str
    images: list[OutputImage] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    """The raw ``ui`` output per node, as in ``/history`` (``{"images": [...]}`` and whatever else
    nodes report)."""
    cached_nodes: list[str] = Field(default_factory=list)
    executed_nodes: list[str] = Field(default_factory=list)
    node_errors: dict[str, Any] = Field(default_factory=dict)
    """Outputs the server dropped at validation while still accepting the prompt (partly invalid workflow)."""
    timings: RunTimings = Field(default_factory=RunTimings)
    history_fallback: bool = False
    """True when the end of the run was learned from ``/history`` because the websocket dropped."""
    ws_reconnects: int = 0
    resubmissions: int = 0
    """How often the workflow was submitted again because the server lost it (restart)."""

    @property
    def saved_images(self) -> list[OutputImage]:
        """Only the images with ``type == "output"`` (SaveImage), leaving out temp previews."""
        return [img for img in self.images if img.type == "output"]

    @property
    def fully_cached(self) -> bool:
        return bool(self.cached_nodes) and not self.executed_nodes


class SubmitResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    prompt_id: str
    number: float | int | None = None
    node_errors: dict[str, Any] = Field(default_factory=dict)


class QueueItem(BaseModel):
    """One entry of ``/queue``: ComfyUI sends ``[number, prompt_id, prompt, extra_data,
    outputs_to_execute]``."""

    model_config = ConfigDict(frozen=True)
    number: float | int
    prompt_id: str
    prompt: dict[str, Any] = Field(default_factory=dict, repr=False)
    extra_data: dict[str, Any] = Field(default_factory=dict)
    outputs_to_execute: list[str] = Field(default_factory=list)

    @classmethod
    def from_wire(cls, item: Any) -> QueueItem:
        if isinstance(item, dict):
            return cls.model_validate(item)
        if not isinstance(item, list | tuple) or len(item) < 2:
            raise ValueError(f"queue item is not [number, prompt_id, ...]: {item!r:.120}")
        fields: dict[str, Any] = {"number": item[0], "prompt_id": item[1]}
        if len(item) > 2 and isinstance(item[2], dict):
            fields["prompt"] = item[2]
        if len(item) > 3 and isinstance(item[3], dict):
            fields["extra_data"] = item[3]
        if len(item) > 4 and isinstance(item[4], list):
            fields["outputs_to_execute"] = [str(x) for x in item[4]]
        return cls.model_validate(fields)


class QueueState(BaseModel):
    model_config = ConfigDict(frozen=True)
    running: list[QueueItem] = Field(default_factory=list)
    pending: list[QueueItem] = Field(default_factory=list)

    @property
    def load(self) -> int:
        """Running + pending prompts."""
        return len(self.running) + len(self.pending)

    def contains(self, prompt_id: str) -> bool:
        return any(i.prompt_id == prompt_id for i in self.running) or any(
            i.prompt_id == prompt_id for i in self.pending
        )

    def is_running(self, prompt_id: str) -> bool:
        return any(i.prompt_id == prompt_id for i in self.running)

    def position(self, prompt_id: str) -> int | None:
        """Prompts that run before ``prompt_id`` (0 = it runs next or is running); None if not queued."""
        if self.is_running(prompt_id):
            return 0
        mine = next((i for i in self.pending if i.prompt_id == prompt_id), None)
        if mine is None:
            return None
        ahead = sum(1 for i in self.pending if (i.number, i.prompt_id) < (mine.number, mine.prompt_id))
        return len(self.running) + ahead


class UploadedImage(BaseModel):
    """``POST /upload/image`` answer: the name to use in a ``LoadImage`` node."""

    model_config = ConfigDict(frozen=True)
    name: str
    subfolder: str = ""
    type: str = "input"

    @property
    def load_image_value(self) -> str:
        """The value for ``LoadImage.inputs.image`` (``subfolder/name`` when in a subfolder)."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name
