"""``POST /prompt`` validation with ComfyUI 0.3.64's rules and error shapes (see the README's table in
section 3).

* every node needs a ``class_type`` the server knows (else ``invalid_prompt``, no ``node_errors``);
* at least one output node (else ``prompt_no_outputs``);
* each output node is validated recursively: required inputs present, links ``[id, slot]`` of the right type,
  literal values converted to INT / FLOAT / STRING / BOOLEAN and checked against ``min`` / ``max`` and combo
  lists (lists longer than 20 are not echoed back);
* outputs that fail are dropped; if none is left the answer is 400 ``prompt_outputs_failed_validation``
  whose ``details`` lists the failing *output* nodes' own errors, and ``node_errors`` lists every failing
  node with the outputs depending on it. Otherwise 200, with ``node_errors`` for the dropped outputs.

Inputs are checked in declaration order (ComfyUI iterates a set, so its order is arbitrary).
"""

from __future__ import annotations

import traceback as tb_module
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.comfyui_server import node_specs

Files = dict[str, list[str]]
#: class -> (the inputs it validates, validator(inputs) -> True | error string): ComfyUI's VALIDATE_INPUTS.
#: Those inputs skip the range and combo checks, as in ComfyUI.
CustomValidator = tuple[list[str], Callable[[dict[str, Any]], "bool | str"]]


@dataclass
class Outcome:
    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def _error(
    type_: str, message: str, details: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra or {}}


def validate_prompt(
    prompt: Any,
    files: Files,
    *,
    partial_targets: list[str] | None = None,
    custom: dict[str, CustomValidator] | None = None,
) -> Outcome:
    custom = custom or {}
    if not isinstance(prompt, dict):
        return Outcome(False, _error("invalid_prompt", "Prompt is not a dict", ""))
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return Outcome(False, _error("invalid_prompt", message, f"Node ID '#{node_id}'"))
        class_type = node["class_type"]
        if class_type not in node_specs.ALL_SPECS:
            message = f"Cannot execute because node {class_type} does not exist."
            return Outcome(False, _error("invalid_prompt", message, f"Node ID '#{node_id}'"))
        if node_specs.ALL_SPECS[class_type].get("output_node") and (
            partial_targets is None or node_id in partial_targets
        ):
            outputs.append(node_id)
    if not outputs:
        return Outcome(False, _error("prompt_no_outputs", "Prompt has no outputs"))

    validator = _Validator(prompt, files, custom)
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for out in outputs:
        try:
            ok, reasons = validator.validate(out)
        except Exception as exc:  # a broken link (KeyError, IndexError) in the output node itself
            ok = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(exc),
                    {"exception_type": type(exc).__name__, "traceback": _fake_traceback(exc)},
                )
            ]
            validator.done[out] = (False, reasons)
        if ok:
            good.append(out)
            continue
        failed.append((out, reasons))
        # Like ComfyUI: every failing node validated so far lists this output as dependent.
        for node_id, (node_ok, node_reasons) in validator.done.items():
            if node_ok or not node_reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                },
            )
            entry["dependent_outputs"].append(out)
    if not good:
        details = "\n".join(f"{r['message']}: {r['details']}" for _, reasons in failed for r in reasons)
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return Outcome(False, error, [], node_errors)
    return Outcome(True, None, good, node_errors)


def _fake_traceback(exc: BaseException) -> list[str]:
    lines = tb_module.format_tb(exc.__traceback__) if exc.__traceback__ else []
    return [line.replace(str(__file__), "ComfyUI/execution.py") for line in lines[-2:]]


class _Validator:
    def __init__(self, prompt: dict[str, Any], files: Files, custom: dict[str, CustomValidator]) -> None:
        self.prompt = prompt
        self.files = files
        self.custom = custom
        self.done: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def validate(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.done:
            return self.done[node_id]
        node = self.prompt[node_id]
        class_type = node["class_type"]
        inputs = node.setdefault("inputs", {})
        spec = node_specs.input_spec(class_type, self.files)
        errors: list[dict[str, Any]] = []
        valid = True
        for category in ("required", "optional"):
            for name, input_spec in (spec.get(category) or {}).items():
                input_type = input_spec[0]
                options = input_spec[1] if len(input_spec) > 1 else {}
                config = [input_type, options]
                if name not in inputs:
                    if category == "required":
                        errors.append(
                            _error(
                                "required_input_missing",
                                "Required input is missing",
                                name,
                                {"input_name": name},
                            )
                        )
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    upstream_ok = self._check_link(name, value, input_type, config, errors)
                    valid = valid and upstream_ok
                    continue
                error = self._check_value(class_type, name, value, input_type, options, config, inputs)
                if error is not None:
                    errors.append(error)
        custom = self.custom.get(class_type)
        if custom is not None:
            names, check = custom
            result = check(inputs)
            if result is not True:
                for name in names:
                    details = name if result is False else f"{name} - {result}"
                    errors.append(
                        _error("custom_validation_failed", "Custom validation failed for node", details,
                               {"input_name": name})
                    )  # fmt: skip
        outcome = (not errors and valid, errors)
        self.done[node_id] = outcome
        return outcome

    def _check_link(
        self, name: str, value: list[Any], input_type: Any, config: list[Any], errors: list[dict[str, Any]]
    ) -> bool:
        if len(value) != 2:
            errors.append(
                _error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    {"input_name": name, "input_config": config, "received_value": value},
                )
            )
            return True
        source_id, slot = value
        source_class = self.prompt[source_id]["class_type"]  # KeyError for a missing node, like ComfyUI
        received = node_specs.ALL_SPECS[source_class]["output"][slot]
        if not _types_match(received, input_type):
            details = f"{name}, received_type({received}) mismatch input_type({input_type})"
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    details,
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_type": received,
                        "linked_node": value,
                    },
                )
            )
            return True
        try:
            upstream_ok, _ = self.validate(source_id)
        except Exception as exc:
            self.done[source_id] = (
                False,
                [
                    _error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        str(exc),
                        {
                            "input_name": name,
                            "input_config": config,
                            "exception_message": str(exc),
                            "exception_type": type(exc).__name__,
                            "traceback": _fake_traceback(exc),
                            "linked_node": value,
                        },
                    )
                ],
            )
            return False
        return upstream_ok

    def _check_value(
        self,
        class_type: str,
        name: str,
        value: Any,
        input_type: Any,
        options: dict[str, Any],
        config: list[Any],
        inputs: dict[str, Any],
    ) -> dict[str, Any] | None:
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        converters: dict[str, Callable[[Any], Any]] = {
            "INT": int,
            "FLOAT": float,
            "STRING": str,
            "BOOLEAN": bool,
        }
        if isinstance(input_type, str) and input_type in converters:
            try:
                value = inputs[name] = converters[input_type](value)
            except Exception as exc:
                return _error(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {input_type} value",
                    f"{name}, {value}, {exc}",
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_value": value,
                        "exception_message": str(exc),
                    },
                )
        if class_type in self.custom and name in self.custom[class_type][0]:
            return None  # the custom validator owns this input (ComfyUI skips range/combo checks then)
        extra = {"input_name": name, "input_config": config, "received_value": value}
        if "min" in options and value < options["min"]:
            return _error(
                "value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name, extra
            )
        if "max" in options and value > options["max"]:
            return _error(
                "value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, extra
            )
        if isinstance(input_type, list) and value not in input_type:
            if len(input_type) > 20:
                listing = f"(list of length {len(input_type)})"
                extra["input_config"] = None
            else:
                listing = str(input_type)
            return _error(
                "value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}", extra
            )
        return None


def _types_match(received: str, wanted: Any) -> bool:
    if not isinstance(wanted, str):  # a combo input fed by a link: ComfyUI accepts COMBO / string outputs
        return received in ("COMBO", "STRING", "*")
    if received == "*" or wanted == "*" or received == wanted:
        return True
    return bool(set(received.split(",")) & set(wanted.split(",")))
