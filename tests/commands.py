"""Shared helpers for tests that run management commands and fetch URLs from the emulator."""

from __future__ import annotations

import io
import shutil
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.management import CommandError, call_command

# Tests that prove the standard `age` tool opens what the toolkit writes need its two programs;
# without them they skip, saying what to install (never fail with FileNotFoundError).
AGE_CLI_MISSING = [tool for tool in ("age", "age-keygen") if shutil.which(tool) is None]
requires_age_cli = pytest.mark.skipif(
    bool(AGE_CLI_MISSING),
    reason=f"needs the age CLI ({', '.join(AGE_CLI_MISSING) or 'age'} not found): "
    "apt-get install age (or brew install age)",
)


def run_command(*args: str, **options: Any) -> tuple[str, str]:
    """Run a management command in-process; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def failing_command(*args: str, **options: Any) -> CommandError:
    """Run a management command that must fail; the CommandError it raised."""
    with pytest.raises(CommandError) as raised:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    return raised.value


def fetch_status(url: str) -> int:
    """The HTTP status of a GET of ``url``, which must be on loopback (the emulator)."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- the emulator
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
