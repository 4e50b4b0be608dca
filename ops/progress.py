"""Progress of a backup or restore, reported per table to whoever displays it (the commands)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TableProgress:
    # "backup", "verify", "load" or "indexes".
    phase: str
    table: str
    # 1-based position of the table in this phase, and how many tables the phase has.
    index: int
    total: int
    # None where rows mean nothing (an index being built).
    rows: int | None


ProgressCallback = Callable[[TableProgress], None]


def no_progress(event: TableProgress) -> None:
    """The default: say nothing."""


class ProgressPrinter:
    """Shows progress: a line rewritten in place on a TTY, plain lines at most every ``interval`` s
    otherwise (Render's logs have no TTY), or a line per table at verbosity 2."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        tty: bool,
        verbosity: int,
        interval: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._write = write
        self._tty = tty
        self._verbosity = verbosity
        self._interval = interval
        self._clock = clock or time.monotonic
        self._last = self._clock()
        self._rows = 0
        self._open_line = False

    def __call__(self, event: TableProgress) -> None:
        if event.phase in ("backup", "load") and event.rows is not None:
            self._rows += event.rows
        rows = "" if event.rows is None else f" ({event.rows:,} rows)"
        line = f"{event.phase}: {event.index}/{event.total} {event.table}{rows}"
        if self._verbosity >= 2:
            self._write(line + "\n")
        elif self._verbosity == 1 and self._tty:
            self._write("\r\x1b[K" + line)
            self._open_line = True
        elif self._verbosity == 1 and self._clock() - self._last >= self._interval:
            self._last = self._clock()
            self._write(f"{event.phase}: {event.index}/{event.total} tables, {self._rows:,} rows so far\n")

    def done(self) -> None:
        """Ends a line rewritten in place, so the summary starts on its own line."""
        if self._open_line:
            self._write("\r\x1b[K")
            self._open_line = False
