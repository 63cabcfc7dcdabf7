"""Quote user input in messages safely: :func:`excerpt` is the one helper every error message uses.

A tool error goes into the calling agent's context, and often into a log line: quoting an argument whole can
put megabytes there (a base64 image taken for a path), and quoting it raw can carry terminal escapes, bidi
overrides or NUL bytes. An excerpt is at most ``limit`` characters of the input, every character that is not
plainly visible escaped (``\\x1b``, ``\\u202e``, ``\\ud800``), in single quotes, with the input's full length
named when it was cut.
"""

from __future__ import annotations

import unicodedata
from typing import Any

DEFAULT_LIMIT = 60
#: control, format (bidi overrides, zero-width), surrogate, private-use, unassigned, line/paragraph separators
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == "'":
        return "\\'"
    if ch == " " or (unicodedata.category(ch) not in _HIDDEN and not ch.isspace()):
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def excerpt(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """``'first characters…' (N characters)``: a short, escaped, quoted excerpt of ``value`` for a message.

    Non-strings are shown by type (``a dict``), never by content."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    head = "".join(_escape(ch) for ch in value[:limit])
    if len(value) <= limit:
        return f"'{head}'"
    return f"'{head}…' ({len(value):,} characters)"
