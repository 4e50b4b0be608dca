"""Single-file archives on local disk (``backup -o PATH``): written atomically, found by name.

What ``-o`` may write over is narrow on purpose: the path a user types can name anything. An
existing path is refused unless the caller says ``replace`` (``--force``), and even then only a
regular file is replaced (by a rename, so the old file stays whole until the new one is). A
symlink, a FIFO, a device node or a socket is never written through or replaced, and no path
inside the backup repository's folder is written at all: a part or manifest replaced by ``-o``
would silently damage a listed backup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ops.errors import OpsConfigurationError, OpsError

SUFFIX = ".kidoo-backup"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def output_path(
    output: str,
    name: str,
    *,
    replace: bool = False,
    forbidden: tuple[Path, ...] = (),
) -> Path:
    """``-o PATH``: the file itself, or ``NAME.kidoo-backup`` inside PATH when it names a folder.

    PATH names a folder when it ends with a separator or is an existing folder; such a folder must
    exist. ``replace``: an existing regular file may be replaced. ``forbidden``: folders (the
    backup repository's) no path may lie inside. Every refusal is an OpsConfigurationError (exit 2).
    """
    as_folder = output.endswith(("/", os.sep))
    path = Path(output).expanduser()
    if as_folder and not path.is_dir():
        raise OpsConfigurationError(
            f"The folder {path} does not exist (-o ending in / names a folder). "
            "Create it, or drop the trailing / to name a file."
        )
    if path.is_dir() and not path.is_symlink():
        path = path / f"{name}{SUFFIX}"
    elif path.is_symlink():
        # Never follow: a link may lead anywhere (a device, another backup).
        raise OpsConfigurationError(
            f"{path} is a symbolic link: -o never writes through one. Name the file itself."
        )
    if not path.parent.is_dir():
        raise OpsConfigurationError(
            f"The folder {path.parent} does not exist. Create it or choose another -o."
        )
    resolved = path.parent.resolve() / path.name
    for folder in forbidden:
        if _inside(resolved, folder.resolve()):
            raise OpsConfigurationError(
                f"{path} is inside the backup repository's folder ({folder}): -o never writes there, "
                "where it could replace a part of a backup. Choose a path outside it."
            )
    check_replaceable(path, replace=replace)
    return path


def check_replaceable(path: Path, *, replace: bool) -> None:
    """Nothing at ``path``, or (``replace``) a regular file; a clear refusal otherwise."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise OpsConfigurationError(f"Cannot inspect {path} ({error.strerror}).") from None
    mode = status.st_mode
    if stat.S_ISLNK(mode):
        raise OpsConfigurationError(
            f"{path} is a symbolic link: -o never writes through or replaces one. Name another file."
        )
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise OpsConfigurationError(
            f"{path} is {kind}: -o writes regular files only, even with --force. Name another file."
        )
    if not replace:
        raise OpsConfigurationError(
            f"{path} already exists. Choose another path, or pass --force to replace that file."
        )


def _link_into_place(temporary: str, path: Path) -> None:
    """``temporary`` under ``path`` only if nothing is there (a hard link cannot overwrite)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OpsConfigurationError(
            f"{path} appeared while the backup was written; it was left alone. "
            "Choose another path, or pass --force to replace a regular file."
        ) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A filesystem without hard links: checked just before, renamed over nothing.
        os.replace(temporary, path)
        return
    os.unlink(temporary)


@contextlib.contextmanager
def atomic_file(path: Path, *, replace: bool = False) -> Iterator[BinaryIO]:
    """A file that appears under ``path`` only once complete and on disk (temp file, fsync, rename).

    An interrupted write leaves at most a hidden ``.NAME.*.partial`` file, never ``path``.
    Without ``replace`` the file is linked into place, which fails if anything appeared at
    ``path`` meanwhile; with it, ``path`` is checked again just before the rename (it must still
    be nothing or a regular file).
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
        check_replaceable(path, replace=replace)
        if replace:
            os.replace(temporary, path)
        else:
            _link_into_place(temporary, path)
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
