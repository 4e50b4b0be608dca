"""Expected failures of the toolkit.

Every message is an actionable sentence ("what failed. how to fix it.") and never holds a secret:
commands print it as-is and exit with ``exit_code`` (Django's CommandError convention: 1 the
operation failed, 2 misuse or cannot run).
"""

from __future__ import annotations

import re

from django.core.management.base import CommandError


class OpsError(Exception):
    """The operation failed (exit code 1)."""

    exit_code = 1


class OpsConfigurationError(OpsError):
    """The toolkit cannot run as configured or invoked (exit code 2)."""

    exit_code = 2


def as_command_error(error: OpsError) -> CommandError:
    """The CommandError a management command raises for ``error``."""
    return CommandError(one_line_message(str(error)), returncode=error.exit_code)


_LONG_WORD = re.compile(r"\S{121,}")


def one_line_message(text: str) -> str:
    """``text`` on one line (a driver's reason may span several), with any name longer than 120
    characters (a 5000-character argument quoted back) cut to its start and its length."""
    flat = " ".join(text.split())
    return _LONG_WORD.sub(lambda m: f"{m.group()[:40]}… ({len(m.group())} characters)", flat)


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_KEY_VALUE_SECRET = re.compile(
    r"(?P<key>\b(?:password|passwd|api_secret|secret|token|identity|passphrase)\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|\S+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with credentials in URLs and ``password=...``-style pairs replaced by ``***``.

    Driver errors (psycopg2's, the SDK's) may quote a connection string or a signed request;
    anything the toolkit shows or logs from them goes through here first.
    """
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _KEY_VALUE_SECRET.sub(lambda m: f"{m.group('key')}***", text)
