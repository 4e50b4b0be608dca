"""Single-file archives on local disk (``backup -o PATH``): written atomically, found by name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ops.errors import OpsConfigurationError, OpsError

SUFFIX = ".kidoo-backup"


def output_path(output: str, name: str) -> Path:
    """``-o PATH``: the file itself, or ``NAME.kidoo-backup`` inside PATH when it is a folder."""
    path = Path(output).expanduser()
    if path.is_dir():
        return path / f"{name}{SUFFIX}"
    if not path.parent.is_dir():
        raise OpsConfigurationError(
            f"The folder {path.parent} does not exist. Create it or choose another -o."
        )
    return path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file that appears under ``path`` only once complete and on disk (temp file, fsync, rename).

    An interrupted write leaves at most a hidden ``.NAME.*.partial`` file, never ``path``.
    """
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise OpsError(f"Cannot write to {path.parent} ({error.strerror}). Check it is writable.") from None
    try:
        # Private: backups hold personal data.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OpsError(f"Writing {path} failed ({error.strerror}). Check free disk space.") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
