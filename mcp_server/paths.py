"""Files under configured roots: the one confinement rule for every path an agent may name.

:func:`confine` decides, from the text alone and before the file system is touched, whether a path lies under
one of the roots (``..`` is normalised first), so nothing is revealed about files outside; it then resolves
symlinks and checks again. :func:`read_confined` opens the result without following a last symlink, refuses
anything but a regular file, a file that is not under a root once opened (on Linux, its ``/proc/self/fd`` link
is checked: a folder swapped for a symlink after :func:`confine` is caught), a file with several hard links (one
of them may lie outside every root) unless allowed, and a file over the size cap, and reads it in bounded chunks.
It blocks: call it in a worker thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from mcp_server.errors import ImageSourceError, InvalidInputError, SourceRefusedError
from mcp_server.excerpt import excerpt
from mcp_server.netguard import human_bytes

PATH_MAX = 4096


def confine(
    text: str,
    roots: Sequence[Path],
    *,
    what: str = "image",
    roots_setting: str = "COMFY_QUALITY_MCP_ROOTS",
    error: type[InvalidInputError] = ImageSourceError,
    refused: type[InvalidInputError] = SourceRefusedError,
) -> Path:
    """The resolved path of ``text`` under one of ``roots``; raises ``refused`` / ``error`` naming the problem."""
    if "\x00" in text:
        raise error(f"{what} path {excerpt(text)} contains a NUL byte")
    if len(text) > PATH_MAX:
        raise error(f"{what} {excerpt(text)} is too long for a path (over {PATH_MAX} characters)")
    if not text.isprintable():
        raise error(f"{what} path {excerpt(text)} contains control characters")
    resolved_roots = [r.resolve() for r in roots]
    raw = Path(text).expanduser()
    candidate = Path(os.path.normpath(raw if raw.is_absolute() else resolved_roots[0] / raw))
    outside = refused(
        f"{what} path {excerpt(text)} is outside the allowed folders "
        f"({excerpt(', '.join(map(str, resolved_roots)), 300)}, {roots_setting}); "
        "'..' and symlinks are resolved before this check"
    )
    if not any(candidate.is_relative_to(root) for root in resolved_roots):
        raise outside  # decided before touching the file system: says nothing about files outside
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError as exc:
        raise error(f"{what} file not found: {excerpt(text)} (under the allowed folders)") from exc
    except (OSError, RuntimeError) as exc:  # loops, permissions, names too long
        raise error(f"{what} path {excerpt(text)} cannot be resolved ({type(exc).__name__})") from exc
    if not any(resolved.is_relative_to(root) for root in resolved_roots):
        raise outside  # a symlink inside a root that leads out of every root
    return resolved


def _opened_outside(fd: int, roots: Sequence[Path]) -> bool:
    """True when the open file is not under any root (Linux: its /proc/self/fd link). Closes the window in which
    a folder on the path could be swapped for a symlink between :func:`confine` and the open."""
    try:
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return False  # no /proc: the checks of confine() stand alone
    return not any(real.is_relative_to(root.resolve()) for root in roots)


def read_confined(
    path: Path,
    *,
    max_bytes: int,
    roots: Sequence[Path] = (),
    allow_hardlinks: bool = False,
    what: str = "image",
    limit_setting: str = "COMFY_QUALITY_MAX_IMAGE_BYTES",
    hardlink_setting: str = "COMFY_QUALITY_MCP_ALLOW_HARDLINKS",
    error: type[InvalidInputError] = ImageSourceError,
    refused: type[InvalidInputError] = SourceRefusedError,
) -> bytes:
    """The bytes of a path :func:`confine` returned (blocking; bounded by ``max_bytes``)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"{what} file {path} cannot be opened: {exc.strerror}") from exc
    try:
        if roots and _opened_outside(fd, roots):
            raise refused(f"{what} file {path} is outside the allowed folders (it changed while being opened)")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} path {path} is not a regular file")
        if info.st_nlink > 1 and not allow_hardlinks:
            raise refused(
                f"{what} file {path} has {info.st_nlink} hard links; a hard link may lead to a file outside the "
                f"allowed folders, so such files are refused ({hardlink_setting}=1 allows them)"
            )
        if info.st_size > max_bytes:
            raise error(
                f"{what} file {path} is {human_bytes(info.st_size)}, above the {human_bytes(max_bytes)} "
                f"limit ({limit_setting})"
            )
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > max_bytes:  # grew after the check
                raise error(f"{what} file {path} is above the {human_bytes(max_bytes)} limit ({limit_setting})")
            chunks.append(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if not data:
        raise error(f"{what} file {path} is empty")
    return data
