"""The hostile-input corpus: malformed, oversized, mistyped and malicious arguments for every tool.

Each :class:`Case` is one tool call and what must come of it: ``"error"`` (a tool error whose message contains
one of ``expect``), ``"ok"`` (a correct result), or ``"either"`` (the client library may already turn the value
into something valid, e.g. NaN into null: an error or a result, but a clear one). Paths use placeholders filled
in by :func:`materialize`: ``{ROOT}`` (an allowed folder holding a symlink and a hard link to files outside),
``{OUTSIDE}`` (a folder outside every root, holding a JSON file with a secret key and a password-file lookalike).
"""

from __future__ import annotations

import base64
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from refinement.workflows import load_template

Outcome = Literal["error", "ok", "either"]
SECRET = "AKIA-HOSTILE-SECRET-0042"


@dataclass
class Case:
    category: str
    name: str
    tool: str
    arguments: dict[str, Any]
    outcome: Outcome = "error"
    expect: tuple[str, ...] = ()
    """For errors: the message contains one of these (case-insensitive)."""
    slow: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke showpage\n"
ICO = b"\x00\x00\x01\x00\x01\x00\x08\x08\x00\x00\x01\x00\x20\x00" + b"\x00" * 64
GOOD_IMAGE = "sd1.5_normal_000.jpg"
NOT_IMAGE = ("not a supported image format",)
REFUSED = ("outside the allowed folders",)
BAD_ARGS = ("invalid arguments",)
INVALID_B64 = ("invalid base64",)


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def image_cases() -> list[Case]:
    rnd = random.Random(7)
    random_b64 = b64(bytes(rnd.getrandbits(8) for _ in range(2_000_000)))
    score = "score_image"
    cases = [
        # -- empty, huge, wrong types ------------------------------------------------------------------
        Case("empty", "empty image", score, {"image": ""}, expect=("image is empty", "at least 1")),
        Case("empty", "blank image", score, {"image": "   \n\t "}, expect=("image is empty",)),
        Case("huge", "3 MB of 'A'", score, {"image": "A" * 3_000_000}, expect=NOT_IMAGE),
        Case("huge", "2 MB random bytes as base64", score, {"image": random_b64}, expect=NOT_IMAGE),
        Case("huge", "5000-char path-like", score, {"image": "dir/" * 1250}, expect=("too long for a path",)),
        Case("huge", "long path with dashes", score, {"image": "my-dir/" * 700}, expect=("too long", "not found")),
        Case("base64", "path-like alphabet-only", score, {"image": "Photos/Holiday/" * 5 + "Cat"},
             expect=("not found",)),
        Case("huge", "25 MB argument", score, {"image": "Z" * 25_000_000}, expect=("long, more than",), slow=True),
        Case("huge", "prompt over 4000 chars", score, {"image": GOOD_IMAGE, "prompt": "p" * 5000}, expect=BAD_ARGS),
        Case("types", "image is a number", score, {"image": 12345}, expect=BAD_ARGS),
        Case("types", "image is null", score, {"image": None}, expect=BAD_ARGS),
        Case("types", "image is a list", score, {"image": ["a.png"]}, expect=BAD_ARGS),
        Case("types", "image is an object", score, {"image": {"path": "a.png"}}, expect=BAD_ARGS),
        Case("types", "image missing", score, {}, expect=BAD_ARGS),
        Case("types", "prompt is a number", score, {"image": GOOD_IMAGE, "prompt": 5}, expect=BAD_ARGS),
        Case("types", "unknown extra argument", score, {"image": GOOD_IMAGE, "evil": "x" * 2000}, outcome="either"),
        # -- local paths -------------------------------------------------------------------------------
        Case("traversal", "../ to /etc/passwd", score, {"image": "../../../../../../etc/passwd"}, expect=REFUSED),
        Case("traversal", "absolute /etc/passwd", score, {"image": "/etc/passwd"}, expect=REFUSED),
        Case("traversal", "absolute /etc/shadow", score, {"image": "/etc/shadow"}, expect=REFUSED),
        Case("traversal", "home dotfile", score, {"image": "~/.ssh/id_rsa"}, expect=REFUSED),
        Case("traversal", "in-and-out", score, {"image": f"{GOOD_IMAGE}/../../../../etc/hosts"}, expect=REFUSED),
        Case("traversal", "backslashes", score, {"image": "..\\..\\..\\etc\\passwd"}, expect=("not found",)),
        Case("traversal", "/proc/self/environ", score, {"image": "/proc/self/environ"}, expect=REFUSED),
        Case("traversal", "secret json outside", score, {"image": "{OUTSIDE}/creds.json"}, expect=REFUSED),
        Case("file-url", "file:///etc/passwd", score, {"image": "file:///etc/passwd"}, expect=REFUSED),
        Case("file-url", "file://localhost/etc/passwd", score, {"image": "file://localhost/etc/passwd"},
             expect=REFUSED),
        Case("file-url", "file URL with %2e%2e", score, {"image": "file://{ROOT}/%2e%2e/outside/creds.json"},
             expect=REFUSED),
        Case("file-url", "file URL inside", score, {"image": "file://{ROOT}/inside.png"}, outcome="ok"),
        Case("symlink", "symlink out of the root", score, {"image": "{ROOT}/link-out.png"}, expect=REFUSED),
        Case("symlink", "symlinked folder out", score, {"image": "{ROOT}/dir-out/secret.png"}, expect=REFUSED),
        Case("symlink", "hard link in the root", score, {"image": "{ROOT}/hard.png"}, expect=("hard links",)),
        Case("symlink", "a folder", score, {"image": "{ROOT}"}, expect=("not a regular file",)),
        Case("symlink", "a fifo", score, {"image": "{ROOT}/fifo.png"}, expect=("not a regular file",)),
        Case("nul", "NUL in a path", score, {"image": GOOD_IMAGE + "\x00.txt"}, expect=("NUL byte",)),
        Case("nul", "only NUL", score, {"image": "\x00"}, expect=("NUL byte", "image is empty")),
        Case("control", "terminal escape", score, {"image": "\x1b[31mred\x1b[0m.png"}, expect=("control",)),
        Case("control", "newline in path", score, {"image": "a\nb.png"}, expect=("control",)),
        Case("control", "DEL char", score, {"image": "a\x7fb.png"}, expect=("control",)),
        Case("unicode", "bidi override", score, {"image": "\u202egnp.exe"}, expect=("control",)),
        Case("unicode", "zero-width joiner", score, {"image": "a\u200db.png"}, expect=("control",)),
        Case("unicode", "full-width name", score, {"image": "\uff53\uff44.png"}, expect=("not found",)),
        Case("unicode", "combining accents", score, {"image": "e\u0301" * 30 + ".png"}, expect=("not found",)),
        Case("unicode", "emoji path", score, {"image": "\U0001f600/../../../etc/passwd"}, expect=REFUSED),
        Case("unicode", "full-width slash traversal", score, {"image": "..\uff0f..\uff0fetc\uff0fpasswd"},
             expect=("not found",)),
        Case("unicode", "private-use char", score, {"image": "\ue000.png"}, expect=("control",)),
        # -- URLs --------------------------------------------------------------------------------------
        Case("url", "unclosed IPv6 bracket", score, {"image": "http://[::1/x.png"}, expect=("malformed",)),
        Case("url", "scheme-relative bracket", score, {"image": "//[x.png"}, expect=("starts with '//'",)),
        Case("url", "bracket in host", score, {"image": "http://a]b/c.png"}, expect=("malformed",)),
        Case("url", "s3 bracket", score, {"image": "s3://[bad/key"}, expect=("malformed",)),
        Case("url", "full-width slash in host", score, {"image": "http://ex\uff0fample.com/x.png"},
             expect=("malformed",)),
        Case("url", "port out of range", score, {"image": "http://example.com:99999/x.png"}, expect=("malformed",)),
        Case("url", "port not a number", score, {"image": "http://example.com:http/x.png"}, expect=("malformed",)),
        Case("url", "credentials in URL", score, {"image": "https://user:pw@example.com/x.png"},
             expect=("allowlist", "credentials")),
        Case("url", "cloud metadata", score, {"image": "http://169.254.169.254/latest/meta-data/"},
             expect=("allowlist",)),
        Case("url", "ComfyUI view", score, {"image": "http://127.0.0.1:8188/view?filename=x.png"},
             expect=("allowlist", "own services")),
        Case("url", "no host", score, {"image": "http:///x.png"}, expect=("no host", "allowlist")),
        Case("url", "ftp", score, {"image": "ftp://example.com/x.png"}, expect=("not supported",)),
        Case("url", "gopher", score, {"image": "gopher://example.com:70/_x"}, expect=("not supported",)),
        Case("url", "javascript:", score, {"image": "javascript:alert(1)"}, expect=("not found",)),
        Case("url", "huge URL", score, {"image": "https://example.com/" + "a" * 100_000}, expect=("allowlist",)),
        # -- object store ------------------------------------------------------------------------------
        Case("s3", "other bucket", score, {"image": "s3://private-other/img.png"},
             expect=("not allowed or not found",)),
        Case("s3", "missing object", score, {"image": "s3://test-bucket/no/such.png"},
             expect=("not allowed or not found",)),
        Case("s3", "traversal key", score, {"image": "s3://test-bucket/../../etc/passwd"},
             expect=("not allowed or not found",)),
        Case("s3", "no bucket", score, {"image": "s3:///key.png"}, expect=("not allowed or not found",)),
        Case("s3", "bare s3://", score, {"image": "s3://"}, expect=("not allowed or not found",)),
        # -- base64 / data URLs ------------------------------------------------------------------------
        Case("base64", "invalid base64 after a PNG start", score, {"image": "iVBORw0KGgoAAAANSUhEUgAA!!!*&^%$"},
             expect=INVALID_B64),
        Case("base64", "padding in the middle", score, {"image": "iVBORw0KGgo=AAAANSUhEUgAAAAEAAAAB" * 3},
             expect=INVALID_B64),
        Case("base64", "SVG", score, {"image": b64(SVG)}, expect=NOT_IMAGE),
        Case("base64", "HTML", score, {"image": b64(HTML)}, expect=NOT_IMAGE),
        Case("base64", "EPS", score, {"image": b64(EPS)}, expect=NOT_IMAGE),
        Case("base64", "ICO", score, {"image": b64(ICO)}, expect=NOT_IMAGE),
        Case("base64", "PDF", score, {"image": b64(b"%PDF-1.7\n" + b"0" * 80)}, expect=NOT_IMAGE),
        Case("base64", "truncated PNG", score, {"image": b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)},
             expect=("could not", "cannot", "decode", "truncated", "broken", "not a", "unreadable")),
        Case("base64", "data URL SVG", score, {"image": "data:image/svg+xml;base64," + b64(SVG)}, expect=NOT_IMAGE),
        Case("base64", "data URL HTML type", score, {"image": "data:text/html;base64," + b64(HTML)},
             expect=("image/* type",)),
        Case("base64", "data URL empty payload", score, {"image": "data:image/png;base64,"}, expect=("nothing",)),
        Case("base64", "data URL without comma", score, {"image": "data:image/png;base64"}, expect=("no ','",)),
        Case("base64", "data URL not base64", score, {"image": "data:image/png,%89PNG"}, expect=("base64",)),
        Case("base64", "data URL invalid base64", score, {"image": "data:image/png;base64,!!!"},
             expect=INVALID_B64),
    ]
    return cases


def generation_cases() -> list[Case]:
    gen = "generate_quality"
    sd15 = load_template("sd15")
    p = {"prompt": "a red fox"}
    wf_refused = ("is not a template",)
    cases = [
        # -- the workflow argument (item 1, 2) ---------------------------------------------------------
        Case("workflow", "/etc/shadow", gen, p | {"workflow": "/etc/shadow"}, expect=wf_refused),
        Case("workflow", "/etc/passwd", gen, p | {"workflow": "/etc/passwd"}, expect=wf_refused),
        Case("workflow", "../ traversal", gen, p | {"workflow": "../../../../etc/passwd"}, expect=wf_refused),
        Case("workflow", "secret JSON outside", gen, p | {"workflow": "{OUTSIDE}/creds.json"}, expect=wf_refused),
        Case("workflow", "missing file", gen, p | {"workflow": "{OUTSIDE}/none.json"}, expect=wf_refused),
        Case("workflow", "file URL", gen, p | {"workflow": "file:///etc/passwd"}, expect=wf_refused),
        Case("workflow", "unknown template", gen, p | {"workflow": "sd99"}, expect=wf_refused),
        Case("workflow", "empty", gen, p | {"workflow": ""}, expect=("workflow is empty",)),
        Case("workflow", "broken JSON text", gen, p | {"workflow": "{not json"}, expect=("not valid JSON",)),
        Case("workflow", "JSON list", gen, p | {"workflow": "[1, 2]"}, expect=(*BAD_ARGS, "JSON object")),
        Case("workflow", "no output node", gen, p | {"workflow": {"1": {"class_type": "KSampler", "inputs": {}}}},
             expect=("no output node",)),
        Case("workflow", "UI format", gen, p | {"workflow": {"nodes": [], "links": []}}, expect=("UI format",)),
        Case("workflow", "nested too deep", gen, p | {"workflow": {"1": _deep(120)}}, expect=("nested more than",)),
        Case("workflow", "deep JSON text", gen, p | {"workflow": '{"1": ' + "[" * 3000 + "]" * 3000 + "}"},
             expect=("nested", "depth", "recursion", "invalid arguments")),
        Case("workflow", "5 MB workflow", gen, p | {"workflow": {"1": {"class_type": "x" * 5_000_000}}},
             expect=("above the",)),
        Case("workflow", "workflow is a number", gen, p | {"workflow": 42}, expect=BAD_ARGS + wf_refused),
        Case("workflow", "inline JSON text", gen, p | {"workflow": json.dumps(sd15)}, outcome="ok"),
        Case("workflow", "inline JSON object", gen, p | {"workflow": sd15}, outcome="ok"),
        Case("workflow", "template name", gen, p | {"workflow": "sdxl"}, outcome="ok"),
        # -- parameters (item 8) -----------------------------------------------------------------------
        Case("params", "LoRA name with spaces", gen, p | {"loras": [{"name": " x.safetensors"}]},
             expect=("loras[0].name",)),
        Case("params", "LoRA traversal", gen, p | {"loras": [{"name": "../../x.safetensors"}]},
             expect=("plain file name",)),
        Case("params", "LoRA strength huge", gen, p | {"loras": [{"name": "a.safetensors", "strength_model": 1e9}]},
             expect=BAD_ARGS),
        Case("params", "100 LoRAs", gen, p | {"loras": [{"name": f"l{i}.safetensors"} for i in range(100)]},
             expect=BAD_ARGS),
        Case("params", "loras not a list", gen, p | {"loras": "x.safetensors"}, expect=BAD_ARGS),
        Case("params", "sampler with spaces", gen, p | {"sampler": "not a sampler"}, expect=("sampler name",)),
        Case("params", "scheduler injection", gen, p | {"scheduler": "karras; rm -rf /"}, expect=("scheduler name",)),
        Case("params", "width not multiple of 8", gen, p | {"width": 100}, expect=("multiple of 8",)),
        Case("params", "negative width", gen, p | {"width": -64}, expect=BAD_ARGS),
        Case("params", "giant width", gen, p | {"width": 10**12}, expect=BAD_ARGS),
        Case("params", "over 64 MP", gen,
             p | {"width": 4096, "height": 4096, "retry_strategy": "best_of_n", "best_of_n": 16},
             expect=("64 megapixels",)),
        Case("params", "negative seed", gen, p | {"seed": -1}, expect=BAD_ARGS),
        Case("params", "seed 2**64", gen, p | {"seed": 2**64}, expect=BAD_ARGS),
        Case("params", "threshold negative", gen, p | {"quality_threshold": -1}, expect=BAD_ARGS),
        Case("params", "threshold NaN", gen, p | {"quality_threshold": float("nan")}, outcome="either"),
        Case("params", "cfg infinity", gen, p | {"cfg": float("inf")}, outcome="either"),
        Case("params", "threshold as text", gen, p | {"quality_threshold": "high"}, expect=BAD_ARGS),
        Case("params", "max_attempts 0", gen, p | {"max_attempts": 0}, expect=BAD_ARGS),
        Case("params", "max_attempts 1000", gen, p | {"max_attempts": 1000}, expect=BAD_ARGS),
        Case("params", "max_attempts 2.5", gen, p | {"max_attempts": 2.5}, expect=BAD_ARGS),
        Case("params", "steps 0", gen, p | {"steps": 0}, expect=BAD_ARGS),
        Case("params", "best_of_n 100", gen, p | {"best_of_n": 100}, expect=BAD_ARGS),
        Case("params", "unknown strategy", gen, p | {"retry_strategy": "evil"}, expect=BAD_ARGS),
        Case("params", "empty prompt", gen, {"prompt": ""}, expect=BAD_ARGS),
        Case("params", "prompt null", gen, {"prompt": None}, expect=BAD_ARGS),
        Case("params", "prompt 5000 chars", gen, {"prompt": "p" * 5000}, expect=BAD_ARGS),
        Case("params", "negative prompt huge", gen, p | {"negative_prompt": "n" * 100_000}, expect=BAD_ARGS),
        Case("params", "wait_seconds negative", gen, p | {"wait_seconds": -5}, expect=BAD_ARGS),
        Case("params", "wait_seconds 1e9", gen, p | {"wait_seconds": 1e9}, expect=BAD_ARGS),
        Case("params", "prompt with control chars", gen, {"prompt": "a fox\x1b[31m\u202e\x00"}, outcome="ok"),
    ]
    return cases


def job_cases() -> list[Case]:
    cases = []
    for tool in ("generation_status", "cancel_generation"):
        cases += [
            Case("jobs", f"{tool}: unknown id", tool, {"job_id": "0123456789abcdef"}, expect=("no job",)),
            Case("jobs", f"{tool}: empty id", tool, {"job_id": ""}, expect=BAD_ARGS),
            Case("jobs", f"{tool}: 65-char id", tool, {"job_id": "x" * 65}, expect=BAD_ARGS),
            Case("jobs", f"{tool}: traversal id", tool, {"job_id": "../../etc/passwd"}, expect=("no job",)),
            Case("jobs", f"{tool}: NUL id", tool, {"job_id": "\x00"}, expect=("no job",)),
            Case("jobs", f"{tool}: bidi id", tool, {"job_id": "\u202eabc"}, expect=("no job",)),
            Case("jobs", f"{tool}: numeric id", tool, {"job_id": 12345}, expect=BAD_ARGS),
            Case("jobs", f"{tool}: null id", tool, {"job_id": None}, expect=BAD_ARGS),
        ]
    cases.append(Case("jobs", "status: negative wait", "generation_status", {"job_id": "abc", "wait_seconds": -1},
                      expect=BAD_ARGS))  # fmt: skip
    lg = "list_generations"
    cases += [
        Case("list", "limit 0", lg, {"limit": 0}, expect=BAD_ARGS),
        Case("list", "limit negative", lg, {"limit": -1}, expect=BAD_ARGS),
        Case("list", "limit huge", lg, {"limit": 10**12}, expect=BAD_ARGS),
        Case("list", "limit text", lg, {"limit": "ten"}, expect=BAD_ARGS),
        Case("list", "unknown grade", lg, {"grades": ["Z"]}, expect=BAD_ARGS),
        Case("list", "unknown status", lg, {"statuses": ["evil"]}, expect=BAD_ARGS),
        Case("list", "text too long", lg, {"text": "t" * 1000}, expect=BAD_ARGS),
        Case("list", "SQL-ish text", lg, {"text": "'; DROP TABLE generations; --"}, outcome="ok"),
        Case("list", "LIKE wildcards", lg, {"text": "%_%\\"}, outcome="ok"),
        Case("tools", "unknown tool", "no_such_tool", {}, expect=("unknown tool", "not found")),
        Case("tools", "huge tool name", "t" * 5000, {}, expect=("unknown tool", "not found")),
    ]
    return cases


def all_cases(*, slow: bool = False) -> list[Case]:
    cases = image_cases() + generation_cases() + job_cases()
    return [c for c in cases if slow or not c.slow]


def make_tree(base: Path) -> dict[str, Path]:
    """An allowed folder with a good image, a symlink, a symlinked folder and a hard link that lead outside, and
    a FIFO; an outside folder with a JSON secret."""
    root, outside = base / "root", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    good = Path(__file__).resolve().parents[1] / "data" / "agiqa" / GOOD_IMAGE
    (root / "inside.png").write_bytes(good.read_bytes())
    (outside / "secret.png").write_bytes(good.read_bytes())
    (outside / "creds.json").write_text(json.dumps({"aws_secret_access_key": SECRET}))
    (root / "link-out.png").symlink_to(outside / "secret.png")
    (root / "dir-out").symlink_to(outside)
    os.link(outside / "secret.png", root / "hard.png")
    os.mkfifo(root / "fifo.png")
    return {"ROOT": root, "OUTSIDE": outside}


def materialize(value: Any, places: dict[str, Path]) -> Any:
    """``value`` with ``{ROOT}`` / ``{OUTSIDE}`` replaced in every string."""
    if isinstance(value, str):
        for key, path in places.items():
            value = value.replace("{" + key + "}", str(path))
        return value
    if isinstance(value, dict):
        return {k: materialize(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v, places) for v in value]
    return value
