"""Where an entry point ends: one table per entry point turns errors into what its user sees.

A library error (a :class:`~comfy_quality.errors.ComfyQualityError`) was raised on purpose and its message is meant
for people: the entry point shows ``str(err)`` as is, with the exit code its table gives. Anything else is a bug:
it is logged with its traceback (through :mod:`logging`, which every entry point sends to stderr: in MCP stdio
mode stdout carries the protocol) and answered with a short generic message that names only the exception's type,
never its text (which may quote the input) nor the traceback.

    ERRORS = CliErrors(ErrorTable("comfy-quality", [(UsageError, 2), (SettingsError, 4), (QualityError, 3)]))
    def main(argv=None) -> int:
        ...
        return ERRORS.run(lambda: _main(args))      # or: except Exception as exc: return ERRORS.answer(exc)

Where one item fails and the run goes on (an attempt's image that cannot be scored, one file of a batch), the
same split applies: :func:`recorded_reason` records a library error's message, and logs anything else with its
traceback before recording it briefly.

Rows are matched in order, like ``except`` clauses: list the specific classes first (a row shadowed by an
earlier one is refused when the table is built).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Generic, TypeVar

from comfy_quality.errors import ComfyQualityError

log = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_INTERNAL = 70
"""The exit code of an unexpected error (``EX_SOFTWARE`` of sysexits.h): a bug, not a usage or setup problem."""


def unexpected_message(exc: BaseException) -> str:
    """The short answer to an unexpected error: its type only (its text may quote the input)."""
    return (
        f"internal error ({type(exc).__name__}); the traceback is in the log. "
        "This is a bug in comfy-quality: please report it with the log"
    )


def log_unexpected(where: str, exc: BaseException, logger: logging.Logger | None = None) -> None:
    """Log an unexpected exception with its traceback (at ERROR, so every configured log shows it)."""
    (logger or log).error("%s: unexpected %s", where, type(exc).__name__, exc_info=(type(exc), exc, exc.__traceback__))


class ErrorTable(Generic[T]):
    """Rows ``(error class, answer)`` checked in order; :meth:`lookup` gives the first row's answer that matches.

    ``answer`` is whatever the entry point needs: an exit code for a CLI, an error class for the MCP tools.
    ``where`` names the entry point in the log.
    """

    def __init__(self, where: str, rows: Iterable[tuple[type[BaseException], T]]) -> None:
        self.where = where
        self.rows: tuple[tuple[type[BaseException], T], ...] = tuple(rows)
        for i, (cls, _) in enumerate(self.rows):
            for earlier, _answer in self.rows[:i]:
                if issubclass(cls, earlier):
                    raise TypeError(f"{where}: the row for {cls.__name__} is shadowed by {earlier.__name__}")

    def lookup(self, exc: BaseException) -> T | None:
        for cls, answer in self.rows:
            if isinstance(exc, cls):
                return answer
        return None


def recorded_reason(where: str, exc: BaseException, logger: logging.Logger | None = None) -> str:
    """The reason to record when one item fails and the run goes on (an image that could not be scored, an attempt
    that failed): a library error's message as is; anything else is a bug, logged with its traceback here and
    recorded as :func:`unexpected_message`. One policy for every place that records instead of raising."""
    if isinstance(exc, ComfyQualityError):
        return str(exc) or type(exc).__name__
    log_unexpected(where, exc, logger)
    return unexpected_message(exc)


@dataclass(frozen=True)
class CliErrors:
    """A command line's table: library error → ``<prefix><message>`` on stderr and the row's exit code; anything
    else → logged with its traceback, a short generic message and :data:`EXIT_INTERNAL`.

    A library error no row names gets ``default`` (every CLI answers every :class:`ComfyQualityError` with its
    message, never with "internal error").
    """

    table: ErrorTable[int]
    default: int = 1
    internal: int = EXIT_INTERNAL
    prefix: str = "error: "

    def exit_code(self, exc: BaseException) -> int | None:
        """The exit code of a library error, None for anything else."""
        code = self.table.lookup(exc)
        if code is None and isinstance(exc, ComfyQualityError):
            return self.default
        return code

    def answer(self, exc: BaseException, stream: IO[str] | None = None) -> int:
        """Tell the user (stderr) and return the exit code. An exception group of one exception (what a task group
        raises when one component fails) is answered as that exception."""
        stream = stream if stream is not None else sys.stderr
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        code = self.exit_code(exc)
        if code is not None:
            print(f"{self.prefix}{exc}", file=stream)
            return code
        log_unexpected(self.table.where, exc)
        print(f"{self.prefix}{unexpected_message(exc)}", file=stream)
        return self.internal

    def run(self, body: Callable[[], int], stream: IO[str] | None = None) -> int:
        """``body()``, its errors answered by the table (``KeyboardInterrupt`` and ``SystemExit`` pass through)."""
        try:
            return body()
        except Exception as exc:
            return self.answer(exc, stream)
