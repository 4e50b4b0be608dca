"""The base of every ops management command: any failure is one line and an exit code.

The library raises OpsError for what it foresees. The rest comes from below it: the database
driver (server down, wrong password), Django's configuration (a DATABASES entry without a name),
the filesystem (a 5000-character name, a full disk), a pipe closed by ``| head``, a storage
refusing a path. Each command would otherwise end in a traceback that says less than one line
could, and may quote a connection string. OpsCommand turns them into CommandError here, once,
with the exit codes the README documents (1 the operation failed, 2 cannot run as configured or
invoked); ``--traceback`` still shows the original error, chained.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from typing import Any

from django.core.checks import Tags
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections

from ops.errors import OpsError, as_command_error, one_line_message, redact

FORMAT_HELP = "text (the default) for people, json for scripts: one JSON document on standard output."
FAILED = 1
CANNOT_RUN = 2
# A message is one line: long enough for a driver's reason, short enough for a log line.
_MAX_DETAIL = 300
# OSErrors that say the name given was wrong, not that the operation failed on the way.
_BAD_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.EISDIR, errno.ENOTDIR}


def one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    """``text`` redacted, on one line, and shortened to ``limit`` characters."""
    flat = one_line_message(redact(str(text)))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!", "…")) else text + "."


def _short_name(name: object) -> str:
    text = os.fsdecode(name) if isinstance(name, (str, bytes)) else str(name)
    if len(text) <= 60:
        return repr(text)
    return f"{text[:40]!r}… ({len(text)} characters)"


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The database drivers' own error classes, for errors raised outside Django's wrapper."""
    found: list[type[BaseException]] = []
    for alias in connections:
        try:
            database = getattr(connections[alias], "Database", None)
        except Exception:  # noqa: S112 -- a backend that cannot load raised nothing of its own
            continue
        error = getattr(database, "Error", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def _database_label(database: str | None) -> str:
    if not database or database not in connections:
        return "the database"
    settings = connections.settings[database]
    host = settings.get("HOST") or ""
    port = settings.get("PORT") or ""
    where = f" at {host}:{port}" if host and port else (f" at {host}" if host else "")
    return f"database {database!r}{where}"


def unusable_database_text(error: BaseException, database: str | None) -> str:
    """The one line for a database that cannot be reached or used (connection refused, gone)."""
    return (
        f"Cannot use {_database_label(database)}: {_sentence(one_line(str(error)))} Check that "
        "the server is running and reachable, and the DATABASE_URL (or DATABASES) settings."
    )


def is_connection_error(error: BaseException) -> bool:
    driver_errors = _driver_errors()
    return isinstance(error, (OperationalError, InterfaceError)) or bool(
        driver_errors
        and isinstance(error, driver_errors)
        and type(error).__name__ in {"OperationalError", "InterfaceError"}
    )


def command_error_for(error: BaseException, *, database: str | None = None) -> CommandError | None:
    """The one-line CommandError for ``error``, or None for a failure this cannot explain."""
    if isinstance(error, CommandError):
        return error
    if isinstance(error, OpsError):
        return as_command_error(error)
    if isinstance(error, BrokenPipeError):
        return CommandError(
            "The output was closed before the command finished writing (broken pipe, as with "
            "`| head`): the command stopped there. Read all of its output to see the rest.",
            returncode=FAILED,
        )
    if isinstance(error, ImproperlyConfigured):
        return CommandError(f"Configuration error: {one_line(str(error))}", returncode=CANNOT_RUN)
    if isinstance(error, SuspiciousOperation):
        return CommandError(f"Refused an unsafe name or path: {one_line(str(error))}", returncode=CANNOT_RUN)
    driver_errors = _driver_errors()
    if is_connection_error(error):
        return CommandError(unusable_database_text(error, database), returncode=FAILED)
    if isinstance(error, DatabaseError) or (driver_errors and isinstance(error, driver_errors)):
        return CommandError(
            f"The {_database_label(database)} refused an operation: {_sentence(one_line(str(error)))}",
            returncode=FAILED,
        )
    if isinstance(error, OSError):
        reason = error.strerror or one_line(str(error)) or type(error).__name__
        name = error.filename if error.filename is not None else None
        about = f": {_short_name(name)}" if name is not None else ""
        if error.errno in _BAD_NAME_ERRNOS:
            return CommandError(f"{reason}{about}. Use another name.", returncode=CANNOT_RUN)
        return CommandError(f"{reason}{about}.", returncode=FAILED)
    return None


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so flushing at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (call_command's StringIO): nothing is left to fail
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class OpsCommand(BaseCommand):
    """A BaseCommand whose every failure is a one-line CommandError (see the module docstring)."""

    # The system checks of what these commands use: the models, and ops's own settings (tagged
    # compatibility). Not the URLconf, templates, admin or security settings: a broken view must
    # not keep a backup or a restore from running in an incident, and importing every view to
    # check the URLs was most of the checks' cost (Wagtail site: all checks 0.06 s, these 0.012 s
    # of a restore's start). `manage.py check` still runs them all.
    requires_system_checks = [Tags.models, Tags.compatibility]

    def run_from_argv(self, argv: list[str]) -> None:
        """Run as the process's command (``manage.py``), which ends right after it."""
        try:
            super().run_from_argv(argv)
        finally:
            # Before exiting, Python runs a full garbage collection over every object the
            # project's modules made: 0.25 s of a `manage.py help` and 0.4 s of a restore on the
            # Wagtail site of tests/realworld (measured), longer than pg_restore's whole run.
            # Frozen objects are left out of it; they are freed with the process as before.
            # Not in ``execute``: call_command runs inside processes that go on.
            gc.freeze()

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            output = super().execute(*args, **options)
            # Written now, inside the handler: `| head` closing the pipe must not surface as an
            # "Exception ignored" traceback when the interpreter flushes at exit.
            for stream in (self.stdout, self.stderr):
                stream.flush()
            return output
        except CommandError:
            raise
        except Exception as error:
            if isinstance(error, BrokenPipeError) and getattr(self.stdout, "_out", None) is sys.stdout:
                _silence_stdout()
            # Commands without --database use the default one.
            database = options.get("database") or DEFAULT_DB_ALIAS
            command_error = command_error_for(error, database=database)
            if command_error is None:
                raise
            raise command_error from error
