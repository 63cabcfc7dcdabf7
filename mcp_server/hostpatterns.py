"""Host patterns of the server's allow-lists (``COMFY_QUALITY_MCP_URL_ALLOWLIST``), parsed without
the network stack: the settings validate them, :mod:`mcp_server.netguard` matches URLs against them."""

from __future__ import annotations


def parse_host_pattern(pattern: str) -> tuple[str, int | None]:
    """``host``, ``*.domain``, ``host:port``, ``host:*``, ``[v6]:port`` or ``*`` → (host part, port or None).
    Raises ValueError for a malformed pattern."""
    pattern = pattern.strip().lower()
    port_text: str | None = None
    if pattern.startswith("["):
        close = pattern.find("]")
        if close < 0:
            raise ValueError(f"unclosed '[' in host pattern {pattern!r}")
        rest = pattern[close + 1 :]
        pattern = pattern[1:close]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} in host pattern")
            port_text = rest[1:]
    elif pattern.count(":") == 1:
        pattern, _, port_text = pattern.partition(":")
    if not pattern:
        raise ValueError("empty host in host pattern")
    if port_text is None or port_text == "*":
        return pattern, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port {port_text!r} in host pattern")
    return pattern, int(port_text)
