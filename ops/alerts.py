"""Someone hears about a failed backup, restore or prune: mail to ADMINS, and a ping URL.

A backup that fails in a cron job fails silently: nobody reads a cron job's log until the data is
gone. So when ``backup`` or ``restore`` fails in a run nobody watches (``--no-input``, or no
terminal on standard input: Render's cron jobs, pre-deploy and start commands):

- ``ADMINS`` get a mail through Django's ``mail_admins`` (when ADMINS is set);
- ``OPS["ALERT_URL"]`` + ``/fail`` is requested (when set).

And when a backup reaches the repository, ``OPS["ALERT_URL"]`` itself is requested. This is the
healthchecks.io / Cronitor convention: the monitoring service expects a ping every day and alerts
when one is late or says ``/fail``, so the daily cron job is also a dead man's switch: a cron job
that stopped running, or a backup skipped day after day on an emptied database, alerts too.

An alert never hides the failure it reports: whatever happens while alerting is one warning line
on stderr, and the command's own error and exit code go out unchanged. Alert texts are short and
hold no secret (the error's message, redacted; an unexpected exception by its class name only).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import os
import platform
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.mail import get_connection, mail_admins
from django.core.management.base import BaseCommand, CommandError

from ops.conf import ops_setting
from ops.errors import redact

# What a body may carry: healthchecks.io shows the first 100 kB, a mail reader the first lines.
MAX_MESSAGE_CHARS = 500

Handle = TypeVar("Handle", bound=Callable[..., Any])


@dataclass
class Run:
    """One unattended run of a command that alerts; the library notes what it did not do."""

    operation: str
    backup_skipped: bool = False


_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar("ops_alerts_run", default=None)


def note_backup_skipped() -> None:
    """The backup wrote nothing (an empty database): the run is no heartbeat, so no success ping."""
    run = _current_run.get()
    if run is not None:
        run.backup_skipped = True


def operation_of(command: str, options: dict[str, Any]) -> str | None:
    """What a run of ``command`` with ``options`` does, as alerts name it; None: nothing to alert on
    (listing, verifying and dry runs change nothing)."""
    if options.get("dry_run"):
        return None
    if command == "backup":
        if options.get("list") or options.get("verify") is not None:
            return None
        if options.get("prune_only"):
            return "prune"
        return "backup --prune" if options.get("prune") else "backup"
    return command


def unattended(options: dict[str, Any]) -> bool:
    """True when nobody watches the run: ``--no-input``, or standard input is not a terminal."""
    if not options.get("interactive", True):
        return True
    stdin = sys.stdin
    try:
        return stdin is None or not stdin.isatty()
    except (OSError, ValueError):  # a closed or odd stdin: nobody types into it
        return True


def failure_text(error: BaseException) -> str:
    """A short, secret-free description of ``error``: an expected error's (redacted) message, an
    unexpected one's class name (its text may quote a connection string or a driver's internals)."""
    if isinstance(error, CommandError):
        message = " ".join(redact(str(error)).split())
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        return message
    return f"unexpected {type(error).__name__} (the command's log has the details)"


def where() -> str:
    """Which service ran it: Render's service name, else the host name."""
    return os.environ.get("RENDER_SERVICE_NAME") or platform.node() or "unknown host"


def ping_url(url: str, *, failed: bool) -> str:
    """``url`` for a success, ``url``/fail for a failure (path only: a query string stays last)."""
    if not failed:
        return url
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def ping(url: str, body: str, *, failed: bool) -> None:
    """POST ``body`` to the alert URL (or its /fail), within OPS["ALERT_TIMEOUT"] seconds."""
    import urllib.request  # here: 15-20 ms of every command's start otherwise, for a rare alert

    target = ping_url(url, failed=failed)
    if urllib.parse.urlsplit(target).scheme not in {"http", "https"}:
        raise ValueError("OPS['ALERT_URL'] must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        target,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "kidoo-ops-alerts"},
    )
    with urllib.request.urlopen(request, timeout=float(ops_setting("ALERT_TIMEOUT"))) as response:  # noqa: S310
        response.read(1024)


def mail(subject: str, body: str) -> bool:
    """Mail ADMINS; False when no ADMINS are set (email alerts are off)."""
    if not settings.ADMINS:
        return False
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or float(ops_setting("ALERT_TIMEOUT"))
    mail_admins(subject, body, fail_silently=False, connection=get_connection(timeout=timeout))
    return True


def report_failure(operation: str, error: BaseException, warn: Callable[[str], None]) -> None:
    """Mail and ping that ``operation`` failed with ``error``; trouble doing so goes to ``warn``."""
    exit_code = error.returncode if isinstance(error, CommandError) else 1
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = failure_text(error)
    subject = f"{operation} failed on {where()}"
    body = f"{subject} at {stamp} (exit {exit_code}): {text}"
    _deliver(body, subject=subject, failed=True, warn=warn)


def report_success(operation: str, warn: Callable[[str], None]) -> None:
    """Ping the alert URL: a backup reached the repository (no mail: success is the normal day)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    _deliver(f"{operation} succeeded on {where()} at {stamp}", subject=None, failed=False, warn=warn)


def _deliver(body: str, *, subject: str | None, failed: bool, warn: Callable[[str], None]) -> None:
    if subject is not None:
        try:
            mail(subject, body)
        except Exception as error:  # an alert must never replace the failure it reports
            warn(
                f"Alert: the mail to ADMINS could not be sent ({type(error).__name__}: {redact(str(error))})."
            )
    url = ops_setting("ALERT_URL")
    if url:
        from urllib.error import HTTPError

        try:
            ping(str(url), body, failed=failed)
        except HTTPError as error:
            warn(f"Alert: the alert URL answered HTTP {error.code}.")
        except Exception as error:  # as above
            # The URL itself is a credential of sorts (anyone holding it can ping): never printed.
            reason = getattr(error, "reason", None) or error
            warn(f"Alert: the alert URL could not be reached ({type(error).__name__}: {reason}).")


def alerting(command: str) -> Callable[[Handle], Handle]:
    """Decorate a management command's ``handle``: alert when an unattended run fails, and ping the
    alert URL when an unattended backup reached the repository. The command's own error and exit
    code are re-raised unchanged."""

    def decorate(handle: Handle) -> Handle:
        @functools.wraps(handle)
        def wrapper(self: BaseCommand, *args: Any, **options: Any) -> Any:
            operation = operation_of(command, options)
            if operation is None or not unattended(options):
                return handle(self, *args, **options)
            run = Run(operation)
            token = _current_run.set(run)

            def warn(line: str) -> None:
                self.stderr.write(self.style.WARNING(line))

            try:
                result = handle(self, *args, **options)
            except Exception as error:
                try:
                    report_failure(operation, error, warn)
                except Exception as alert_error:  # the failure itself must go out
                    warn(f"Alert: could not be sent ({type(alert_error).__name__}).")
                raise
            finally:
                _current_run.reset(token)
            if operation.startswith("backup") and options.get("output") is None and not run.backup_skipped:
                report_success(operation, warn)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
