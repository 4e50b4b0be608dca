"""Every ops command fails in one line with the README's exit code (ops/command.py).

In-process where the failure is the subject (call_command, the CommandError a user would see);
in fresh `manage.py` processes where the process itself is (no traceback on stderr, the exit
code, a pipe closed by `| head`, a DATABASE_URL read by the settings).
"""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import OperationalError

from ops.backup import run_backup
from ops.command import OpsCommand, command_error_for
from ops.progress import ProgressPrinter, TableProgress
from tests.commands import failing_command, run_command
from tests.ops_databases import ScratchDatabases
from tests.scratch_databases import extra_database
from tests.test_restore import archive_of, small_data

ROOT = Path(__file__).resolve().parent.parent
OPS_COMMANDS = ("backup", "restore", "normalize_media_urls", "db_size", "healthcheck")
SECRET = "s3cr3t-pw"

pytestmark = pytest.mark.usefixtures("backup_dir")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` in a fresh process with the site's settings and only ``env`` set."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLOUDINARY", "RENDER", "DATABASE_URL", "SECRET_KEY", "DEBUG", "PRODUCTION"))
    }
    clean["DJANGO_SETTINGS_MODULE"] = "kidoo_preschool.settings"
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=clean,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def sqlite_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A migrated SQLite site in a folder of its own, and an archive of it, made by the commands."""
    folder = tmp_path_factory.mktemp("site")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "MEDIA_ROOT": str(folder / "media")}
    assert manage("migrate", "-v", "0", env=env, cwd=folder).returncode == 0
    archive = folder / "site.kidoo-backup"
    made = manage("backup", "--force", "-o", str(archive), env=env, cwd=folder)
    assert made.returncode == 0, made.stderr
    return env, archive


# --- the mechanism -------------------------------------------------------------------------------


def test_ops_commands__all_use_the_one_line_error_base() -> None:
    for name in OPS_COMMANDS:
        assert isinstance(load_command_class("ops", name), OpsCommand), name
    # And the site's own command in the README's set-up.
    assert isinstance(load_command_class("api", "seed_demo"), OpsCommand)


def test_command_error_for__each_kind_with_its_exit_code() -> None:
    refused = OperationalError(
        f'connection to server at "db", port 5432 failed: password authentication failed\n'
        f"for postgres://kidoo:{SECRET}@db/kidoo"
    )
    cases = {
        "unreachable": (refused, 1, "Cannot use the database: connection to server"),
        "configuration": (
            ImproperlyConfigured("settings.DATABASES is improperly configured."),
            2,
            "Configuration",
        ),
        "unsafe path": (SuspiciousFileOperation("Detected path traversal attempt"), 2, "Refused an unsafe"),
        "pipe": (BrokenPipeError(errno.EPIPE, "Broken pipe"), 1, "broken pipe"),
        "long name": (OSError(errno.ENAMETOOLONG, "File name too long", "x" * 5000), 2, "File name too long"),
        "disk full": (OSError(errno.ENOSPC, "No space left on device", "/backups/x"), 1, "No space left"),
    }
    for kind, (error, code, start) in cases.items():
        command_error = command_error_for(error)
        assert command_error is not None, kind
        message = str(command_error)
        assert command_error.returncode == code, kind
        assert start in message, (kind, message)
        assert "\n" not in message, kind
        assert len(message) < 400, kind
        assert SECRET not in message, kind
    assert command_error_for(KeyError("a bug")) is None


def test_ops_commands__format_option_says_what_it_does() -> None:
    for name in OPS_COMMANDS:
        parser = load_command_class("ops", name).create_parser("manage.py", name)
        action = next(a for a in parser._actions if "--format" in a.option_strings)
        assert action.help is not None, name
        assert "json" in action.help, name


# --- the database ----------------------------------------------------------------------------------


def test_restore__unreachable_database_is_one_line_exit_1(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = scratch.postgres()
    small_data(alias)
    archive = archive_of(alias, tmp_path)
    entry = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "kidoo",
        "USER": "kidoo",
        "PASSWORD": SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(closed_port()),
    }
    with extra_database("unreachable", entry):
        restore = failing_command("restore", str(archive), database="unreachable", interactive=False)
        normalize = failing_command("normalize_media_urls", database="unreachable")
    for raised in (restore, normalize):
        assert raised.returncode == 1
        assert "127.0.0.1" in str(raised)
        assert "\n" not in str(raised)
        assert SECRET not in str(raised)
    assert str(restore).startswith("Cannot use database 'unreachable' at 127.0.0.1:")


def test_manage__unreachable_database_no_traceback_unless_asked(
    sqlite_site: tuple[dict[str, str], Path],
) -> None:
    _, archive = sqlite_site
    env = {"DATABASE_URL": f"postgres://kidoo:{SECRET}@127.0.0.1:{closed_port()}/kidoo"}
    for args in (("restore", str(archive), "--no-input"), ("normalize_media_urls",)):
        result = manage(*args, env=env)
        line = assert_one_line_error(result.stderr)
        assert result.returncode == 1, args
        assert line.startswith("CommandError: "), line
        assert "Connection refused" in line
        assert SECRET not in result.stderr + result.stdout
    with_traceback = manage("restore", str(archive), "--no-input", "--traceback", env=env)
    assert "Traceback" in with_traceback.stderr
    assert "OperationalError" in with_traceback.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not-a-url", "DATABASE_URL is not a usable database URL: it is not a URL."),
        (f"mysqlx://kidoo:{SECRET}@db/kidoo", "its scheme 'mysqlx' is not a database"),
        (f"postgres://kidoo:{SECRET}@db:notaport/kidoo", "DATABASE_URL is not a usable database URL"),
        (f"postgres://kidoo:{SECRET}@db:5432", "DATABASE_URL names no database"),
    ],
    ids=["not-a-url", "unknown-scheme", "bad-port", "no-database-name"],
)
def test_manage__bad_database_url_is_one_line_naming_the_variable(url: str, says: str) -> None:
    for command in ("backup", "db_size", "restore"):
        result = manage(command, env={"DATABASE_URL": url})
        line = assert_one_line_error(result.stderr)
        assert result.returncode == 2, (command, result.stderr)
        assert says in line, line
        assert SECRET not in result.stderr


# --- pipes and names ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("db_size",), ("backup", "--list")], ids=["db_size", "backup-list"])
def test_manage__output_closed_by_head_is_one_line_not_a_traceback(
    sqlite_site: tuple[dict[str, str], Path], args: tuple[str, ...]
) -> None:
    env, archive = sqlite_site
    read_end, write_end = os.pipe()
    os.close(read_end)  # what `| head` does once it has its lines: every write now fails
    try:
        result = manage(*args, env=env, cwd=archive.parent, stdout=write_end)
    finally:
        os.close(write_end)
    line = assert_one_line_error(result.stderr)
    assert result.returncode == 1
    assert "broken pipe" in line


@pytest.mark.django_db
def test_backup__5000_character_output_name_is_one_line_exit_2(tmp_path: Path) -> None:
    raised = failing_command("backup", "-o", str(tmp_path / ("x" * 5000)))
    assert raised.returncode == 2
    assert str(raised).startswith("File name too long: ")
    assert "(5" in str(raised)
    assert len(str(raised)) < 200


def test_restore__5000_character_name_is_one_line_exit_2(scratch: ScratchDatabases) -> None:
    raised = failing_command("restore", "x" * 5000, database=scratch.postgres(), interactive=False)
    assert raised.returncode == 2
    assert "File name too long" in str(raised)
    assert len(str(raised)) < 300


# --- messages that said the wrong thing --------------------------------------------------------------


def test_restore__missing_file_says_no_such_file(scratch: ScratchDatabases) -> None:
    raised = failing_command("restore", "./nope.kidoo-backup", database=scratch.postgres(), interactive=False)
    assert raised.returncode == 2
    assert str(raised).startswith("No such file: ./nope.kidoo-backup.")
    assert "not a valid backup object name" not in str(raised)


def test_restore__no_arguments_says_what_to_name() -> None:
    raised = failing_command("restore")
    assert raised.returncode == 2
    assert "not both" not in str(raised)
    assert "or use --latest" in str(raised)
    both = failing_command("restore", "20261128T031500Z-daily-3f9a", "--latest")
    assert "not both" in str(both)


@pytest.mark.django_db
def test_db_size__record_prints_a_confirmation() -> None:
    out, _ = run_command("db_size", "--record", "--top", "1")
    assert out.splitlines()[-1].startswith("Recorded a size sample of database default (")
    quiet, _ = run_command("db_size", "--record", "-v", "0")
    assert quiet == ""


def test_restore_progress__index_lines_name_the_index_not_cut_off_sql(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any
) -> None:
    alias = scratch.postgres()
    small_data(alias)
    # The migration path (a backup that records no schema: --exclude makes it partial, and into an
    # unmigrated database it restores whole) on one connection (pg_load.recreate), where each
    # index is a progress line of its own.
    archive = tmp_path / "partial.kidoo-backup"
    run_backup(alias, output=str(archive), exclude=["sessions"])
    target = scratch.postgres(migrated=False)
    out = io.StringIO()
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": 1}
    call_command("restore", str(archive), database=target, interactive=False, verbosity=2, stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("indexes: ")]
    assert lines, out.getvalue()
    assert not [line for line in lines if "(0 rows)" in line or "USING" in line]
    assert any(" index " in line and " on auth_user" in line for line in lines), lines


def test_progress_printer__rows_only_where_they_mean_something() -> None:
    written: list[str] = []
    printer = ProgressPrinter(written.append, tty=False, verbosity=2)
    printer(TableProgress("load", "api_program", 1, 2, 1234))
    printer(TableProgress("indexes", "index api_program_slug_key on api_program", 1, 1, None))
    assert written == [
        "load: 1/2 api_program (1,234 rows)\n",
        "indexes: 1/1 index api_program_slug_key on api_program\n",
    ]


def test_command_errors__never_raise_for_callers_of_call_command() -> None:
    # CommandError passes through untouched: existing callers keep their exit codes.
    original = CommandError("x", returncode=2)
    assert command_error_for(original) is original
