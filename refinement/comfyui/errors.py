"""The ComfyUI client's exception tree.

Every error the client raises is a :class:`ComfyUIError` (a :class:`refinement.errors.RefinementError`); each
message says what went wrong *and* what to do::

    ComfyUIError
    ├── ComfyUIUnreachableError     server down, connection refused, DNS failure, connection lost for too long
    ├── ComfyUIServerError          the server answered 5xx (it is up but broken)
    ├── ComfyUIProtocolError        the server said something the protocol does not allow (or a prompt
    vanished)
    ├── ComfyUIValidationError      POST /prompt answered 400: ``error`` + ``node_errors``, rendered
    per node/input
    ├── ComfyUIExecutionError       a node raised while running (``execution_error``)
    ├── ComfyUIInterruptedError     the prompt was interrupted (``execution_interrupted``) by someone else
    ├── ComfyUITimeoutError         the run did not finish within the caller's timeout (the job is cancelled)
    ├── ComfyUIMissingNodesError    pre-flight: class types the server does not have (custom nodes not
    installed)
    ├── ComfyUIMissingModelsError   pre-flight: model files the server does not list (checkpoints, LoRAs, ...)
    └── ComfyUIWorkflowShapeError   the workflow handed to the client is not API format (nothing was sent; also a
                                    ValueError, as before)

``ComfyUIUnreachableError`` and ``ComfyUIServerError`` are the *transient* ones: a
:class:`~.pool.ComfyUIPool` skips such a server and re-probes it later; everything else is about the job and
is not retried elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from refinement.errors import RefinementError


class ComfyUIError(RefinementError):
    """Base class of every error raised by :mod:`refinement.comfyui`."""

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.server = server

    def __str__(self) -> str:
        if self.server:
            return f"{self.message} [server {self.server}]"
        return self.message


class ComfyUIUnreachableError(ComfyUIError):
    """The server could not be reached (refused, DNS, timeout while connecting, connection lost)."""


class ComfyUIServerError(ComfyUIError):
    """The server answered with a 5xx status."""

    def __init__(self, message: str, *, status: int, body: str = "", server: str | None = None) -> None:
        super().__init__(message, server=server)
        self.status = status
        self.body = body


class ComfyUIProtocolError(ComfyUIError):
    """An answer that does not fit the protocol (bad JSON, missing fields), or a prompt the server lost."""


class ComfyUITimeoutError(ComfyUIError):
    """The run took longer than allowed. The client removed or interrupted the prompt before raising."""

    def __init__(
        self, message: str, *, prompt_id: str | None, timeout: float, stage: str, server: str | None = None
    ) -> None:
        super().__init__(message, server=server)
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.stage = stage


class ComfyUIInterruptedError(ComfyUIError):
    """The prompt ended with ``execution_interrupted`` (someone pressed cancel, or another client
    interrupted)."""

    def __init__(
        self,
        message: str,
        *,
        prompt_id: str,
        node_id: str | None = None,
        node_type: str | None = None,
        executed: Sequence[str] = (),
        server: str | None = None,
    ) -> None:
        super().__init__(message, server=server)
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.executed = list(executed)


class ComfyUIExecutionError(ComfyUIError):
    """A node raised at run time (``execution_error``): out of memory, a missing file, a bad tensor
    shape, ..."""

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        exception_message: str,
        traceback: Sequence[str] = (),
        executed: Sequence[str] = (),
        server: str | None = None,
    ) -> None:
        where = f"node {node_id} ({node_type})" if node_id is not None else "a node"
        text = exception_message.strip() or "(no message)"
        super().__init__(
            f"ComfyUI failed while running {where}: {exception_type}: {text}. "
            "Check the node's inputs and the server log; out-of-memory errors call for a smaller size "
            "or batch.",
            server=server,
        )
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = list(traceback)
        self.executed = list(executed)


class ComfyUIValidationError(ComfyUIError):
    """``POST /prompt`` was rejected (400). ``error`` and ``node_errors`` are the server's parsed body.

    ``str(err)`` renders every problem on its own line, per node and input, e.g.
    ``node 5 (KSampler) input 'steps': Value 0 smaller than min of 1``.
    """

    def __init__(
        self,
        error: Mapping[str, Any] | None,
        node_errors: Mapping[str, Any] | None,
        *,
        server: str | None = None,
    ) -> None:
        self.error: dict[str, Any] = dict(error or {})
        self.node_errors: dict[str, Any] = dict(node_errors or {})
        self.problems: list[str] = render_validation_problems(self.error, self.node_errors)
        headline = str(self.error.get("message") or "ComfyUI rejected the workflow")
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{headline}:\n{body}\nFix these inputs in the workflow (or the parameters patched into it) "
            "and submit again.",
            server=server,
        )

    @property
    def error_type(self) -> str:
        return str(self.error.get("type", ""))


class ComfyUIMissingNodesError(ComfyUIError):
    """Pre-flight: the workflow uses node classes the server does not know."""

    def __init__(self, missing: Mapping[str, Sequence[str]], *, server: str | None = None) -> None:
        self.missing: dict[str, list[str]] = {k: list(v) for k, v in missing.items()}
        listing = ", ".join(f"{cls} (node {', '.join(ids)})" for cls, ids in sorted(self.missing.items()))
        super().__init__(
            f"the server has no node class {listing}. Install the custom node pack that provides it "
            "(e.g. with ComfyUI-Manager) and restart ComfyUI, or use a workflow without it.",
            server=server,
        )


class ComfyUIWorkflowShapeError(ComfyUIError, ValueError):
    """The workflow given to the client is not an API-format workflow; it was not sent."""


class MissingModel:
    """One model file a workflow names that the server does not list."""

    __slots__ = ("available", "class_type", "input_name", "node_id", "value")

    def __init__(
        self, node_id: str, class_type: str, input_name: str, value: str, available: Sequence[str]
    ) -> None:
        self.node_id = node_id
        self.class_type = class_type
        self.input_name = input_name
        self.value = value
        self.available = list(available)

    def __repr__(self) -> str:
        return (
            f"MissingModel(node_id={self.node_id!r}, class_type={self.class_type!r}, "
            f"input_name={self.input_name!r}, value={self.value!r})"
        )

    def render(self) -> str:
        if not self.available:
            have = "the server lists none"
        elif len(self.available) <= 8:
            have = "available: " + ", ".join(self.available)
        else:
            have = f"{len(self.available)} available, e.g. " + ", ".join(self.available[:5])
        return f"node {self.node_id} ({self.class_type}) input '{self.input_name}': '{self.value}' ({have})"


class ComfyUIMissingModelsError(ComfyUIError):
    """Pre-flight: the workflow names model files (checkpoints, LoRAs, VAEs, ...) the server does not have."""

    def __init__(self, missing: Sequence[MissingModel], *, server: str | None = None) -> None:
        self.missing = list(missing)
        lines = "\n".join(f"  - {m.render()}" for m in self.missing)
        super().__init__(
            f"the server is missing {len(self.missing)} model file(s):\n{lines}\n"
            "Put the files into ComfyUI's models folders (checkpoints/, loras/, vae/, ...) and refresh, "
            "or choose models the server has.",
            server=server,
        )


def render_validation_problems(error: Mapping[str, Any], node_errors: Mapping[str, Any]) -> list[str]:
    """One line per problem: node, class and input first, then the server's message and details."""
    problems: list[str] = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            problems.append(f"node {node_id}: {entry}")
            continue
        class_type = entry.get("class_type") or "?"
        for err in entry.get("errors") or []:
            problems.append(_render_node_error(str(node_id), str(class_type), err))
    if not problems:
        message = str(error.get("message") or "invalid prompt")
        details = str(error.get("details") or "")
        problems.append(f"{message} ({details})" if details and details != message else message)
    return problems


def _render_node_error(node_id: str, class_type: str, err: Any) -> str:
    where = f"node {node_id} ({class_type})"
    if not isinstance(err, Mapping):
        return f"{where}: {err}"
    extra = err.get("extra_info") if isinstance(err.get("extra_info"), Mapping) else {}
    assert isinstance(extra, Mapping)
    message = str(err.get("message") or err.get("type") or "invalid")
    details = str(err.get("details") or "")
    input_name = extra.get("input_name")
    err_type = err.get("type")
    if input_name is None and err_type == "required_input_missing":
        input_name = details
    if input_name is None:
        return f"{where}: {message}" + (f" ({details})" if details else "")
    where += f" input '{input_name}'"
    if err_type in ("required_input_missing",) or details in ("", str(input_name)):
        return f"{where}: {message}"
    # value_not_in_list: "ckpt_name: 'x' not in [...]" -> keep the part after the input name
    prefix = f"{input_name}: "
    if details.startswith(prefix):
        details = details[len(prefix) :]
    elif details.startswith(f"{input_name}, "):
        details = details[len(input_name) + 2 :]
    elif details.startswith(f"{input_name} - "):
        details = details[len(input_name) + 3 :]
    return f"{where}: {message}: {details}"
