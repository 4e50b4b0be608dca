"""Alerts (ops/alerts.py): a failed unattended backup, restore or prune mails ADMINS and requests the
alert URL + /fail; a backup that reached the repository requests the alert URL; a failing alert
never hides the failure it reports.

The alert URL is a real HTTP server on loopback (a thread of this process); mail goes to Django's
locmem backend (pytest-django's ``mailoutbox``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail as django_mail
from django.core.management import call_command
from django.core.management.base import CommandError

from ops.alerts import failure_text, ping_url
from ops.repository.backups import BackupRepository, configured_repository, default_namespace
from ops.repository.stores import LocalFolderStore, StoreError
from tests.alert_receiver import CHECK_PATH, AlertReceiver
from tests.commands import run_command
from tests.ops_databases import ScratchDatabases

ADMINS = [("office@kidoo.example", "office@kidoo.example")]


@pytest.fixture
def receiver(settings: Any) -> Iterator[AlertReceiver]:
    running = AlertReceiver()
    running.start()
    settings.OPS = {**getattr(settings, "OPS", {}), "ALERT_URL": running.url}
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def admins(settings: Any) -> None:
    settings.ADMINS = ADMINS


@pytest.fixture
def backup_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_DIR": str(folder), "BACKUP_REPOSITORY": "local"}
    return folder


def with_data(alias: str) -> str:
    User.objects.db_manager(alias).create_user(f"u{User.objects.using(alias).count()}", "u@example.org", "x")
    return alias


def failing(*args: str, **options: Any) -> tuple[CommandError, str]:
    """Run a command that must fail: its error and its stderr."""
    err = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(*args, stdout=io.StringIO(), stderr=err, **options)
    return raised.value, err.getvalue()


def as_seen(error: CommandError) -> tuple[str, int]:
    """What a user sees of a failure: the message (the new backup's name aside) and the exit code."""
    return re.sub(r"\d{8}T\d{6}Z-[a-z-]+-[0-9a-f]{4}", "NAME", str(error)), error.returncode


def unwritable_repository(settings: Any, tmp_path: Path) -> None:
    """A backup folder that cannot be created: a file sits where it should be."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.OPS = {**settings.OPS, "BACKUP_DIR": str(blocker / "backups"), "BACKUP_REPOSITORY": "local"}


class TerminalStdin(io.StringIO):
    """Standard input as a person's terminal (someone watches the run)."""

    def isatty(self) -> bool:
        return True


# The ping URL


def test_ping_url__fail_goes_on_the_path_and_a_query_string_stays_last() -> None:
    assert ping_url("https://hc-ping.com/abc", failed=False) == "https://hc-ping.com/abc"
    assert ping_url("https://hc-ping.com/abc", failed=True) == "https://hc-ping.com/abc/fail"
    assert ping_url("https://hc-ping.com/abc/", failed=True) == "https://hc-ping.com/abc/fail"
    assert ping_url("https://cronitor.link/p/k/job?env=prod", failed=True) == (
        "https://cronitor.link/p/k/job/fail?env=prod"
    )


def test_failure_text__redacts_and_names_an_unexpected_exception_by_its_class_only() -> None:
    expected = CommandError("Cannot reach postgres://kidoo:hunter2@db.internal/kidoo (password=hunter2).")
    unexpected = RuntimeError("connection to postgres://kidoo:hunter2@db.internal failed")

    assert "hunter2" not in failure_text(expected)
    assert "Cannot reach postgres://***@db.internal/kidoo" in failure_text(expected)
    assert failure_text(unexpected) == "unexpected RuntimeError (the command's log has the details)"
    assert len(failure_text(CommandError("x" * 5000))) == 500


# backup


@pytest.mark.usefixtures("admins")
def test_backup__unattended_failure_mails_admins_and_requests_the_fail_url(
    scratch: ScratchDatabases, settings: Any, tmp_path: Path, receiver: AlertReceiver
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)

    error, err = failing("backup", database=alias, reason="daily", prune=True)

    assert error.returncode == 1
    assert str(error).startswith("Cannot write ")
    assert "Alert:" not in err
    [ping] = receiver.pings
    assert ping.path == CHECK_PATH + "/fail"
    assert ping.body.startswith("backup --prune failed on ")
    assert "(exit 1): " + " ".join(str(error).split()) in ping.body
    [message] = django_mail.outbox
    assert message.to == ["office@kidoo.example"]
    assert message.subject == "[Django] " + ping.body.split(" at ")[0]
    assert message.body == ping.body


@pytest.mark.usefixtures("admins", "backup_dir")
def test_backup__into_the_repository_requests_the_url_and_mails_nobody(
    scratch: ScratchDatabases, receiver: AlertReceiver
) -> None:
    alias = with_data(scratch.postgres())

    out, err = run_command("backup", database=alias, reason="daily")

    assert out.startswith("Backup ")
    assert err == ""
    [ping] = receiver.pings
    assert ping.path == CHECK_PATH
    assert ping.body.startswith("backup succeeded on ")
    assert django_mail.outbox == []


@pytest.mark.usefixtures("admins", "backup_dir")
def test_backup__skipped_on_an_empty_database_is_no_heartbeat(
    scratch: ScratchDatabases, receiver: AlertReceiver
) -> None:
    # A database emptied and never restored must let the monitor's daily deadline pass.
    alias = scratch.postgres()

    _, err = run_command("backup", database=alias, reason="daily")

    assert "backup skipped" in err
    assert receiver.pings == []
    assert django_mail.outbox == []


@pytest.mark.usefixtures("admins", "backup_dir")
def test_backup__listing_verifying_and_dry_runs_alert_nobody(
    scratch: ScratchDatabases, receiver: AlertReceiver
) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias)
    receiver.pings.clear()

    run_command("backup", database=alias, list=True)
    run_command("backup", database=alias, verify="", latest=True)
    run_command("backup", database=alias, prune_only=True, dry_run=True)
    failing("backup", database=alias, verify="20200101T000000Z-nothing-0000")

    assert receiver.pings == []
    assert django_mail.outbox == []


@pytest.mark.usefixtures("admins")
def test_backup__a_person_at_a_terminal_sees_the_error_and_nobody_is_alerted(
    scratch: ScratchDatabases,
    settings: Any,
    tmp_path: Path,
    receiver: AlertReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)
    monkeypatch.setattr("sys.stdin", TerminalStdin())

    error, _ = failing("backup", database=alias)

    assert error.returncode == 1
    assert receiver.pings == []
    assert django_mail.outbox == []


# prune


class OneStuckBackup(LocalFolderStore):
    """A folder where one backup's objects cannot be deleted."""

    def __init__(self, root: Path, stuck: str) -> None:
        super().__init__(root)
        self.stuck = stuck

    def delete(self, keys: Sequence[str]) -> None:
        if any(key.startswith(f"{self.stuck}/") for key in keys):
            raise StoreError(f"Cannot delete {self.stuck} from the {self.description}.")
        super().delete(keys)


@pytest.mark.usefixtures("admins")
def test_prune__a_failed_delete_alerts_with_the_prune_s_message(
    scratch: ScratchDatabases,
    settings: Any,
    backup_dir: Path,
    receiver: AlertReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = with_data(scratch.postgres())
    for _ in range(2):
        run_command("backup", database=alias, verbosity=0)
    oldest = configured_repository(alias).backups()[-1].name
    settings.OPS = {
        **settings.OPS,
        "BACKUP_KEEP_LAST": 1,
        "BACKUP_KEEP_DAILY": 0,
        "BACKUP_KEEP_WEEKLY": 0,
        "BACKUP_KEEP_MONTHLY": 0,
    }
    # The database's own folder of the local repository (a folder per database).
    stuck = BackupRepository(OneStuckBackup(backup_dir / default_namespace(alias), oldest))
    monkeypatch.setattr("ops.management.commands.backup.configured_repository", lambda database: stuck)
    receiver.pings.clear()

    error, _ = failing("backup", database=alias, prune_only=True)

    assert error.returncode == 1
    [ping] = receiver.pings
    assert ping.path == CHECK_PATH + "/fail"
    assert ping.body.startswith("prune failed on ")
    assert f"Pruning could not delete {oldest}" in ping.body
    [message] = django_mail.outbox
    assert message.subject.startswith("[Django] prune failed on ")


# restore


@pytest.mark.usefixtures("admins", "backup_dir")
def test_restore__no_input_failure_mails_admins_and_requests_the_fail_url(
    scratch: ScratchDatabases, receiver: AlertReceiver
) -> None:
    alias = scratch.postgres()

    error, _ = failing("restore", "20200101T000000Z-daily-0000", database=alias, interactive=False)

    [ping] = receiver.pings
    assert ping.path == CHECK_PATH + "/fail"
    assert ping.body.startswith("restore failed on ")
    assert f"(exit {error.returncode}): " in ping.body
    [message] = django_mail.outbox
    assert "restore failed" in message.subject


@pytest.mark.usefixtures("admins", "backup_dir")
def test_restore__if_empty_with_data_present_pings_nothing(
    scratch: ScratchDatabases, receiver: AlertReceiver
) -> None:
    # A restore is no backup: its success is not the dead man's switch's heartbeat.
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias)
    receiver.pings.clear()

    out, _ = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)

    assert "already holds data: nothing restored." in out
    assert receiver.pings == []
    assert django_mail.outbox == []


# A failing alert never hides the failure


@pytest.mark.usefixtures("admins")
def test_alerts__a_monitor_answering_500_leaves_the_error_and_exit_code_as_they_were(
    scratch: ScratchDatabases, settings: Any, tmp_path: Path, receiver: AlertReceiver
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)
    settings.OPS = {**settings.OPS, "ALERT_URL": None}
    settings.ADMINS = []
    quiet, _ = failing("backup", database=alias)
    settings.ADMINS = ADMINS
    settings.OPS = {**settings.OPS, "ALERT_URL": receiver.url}
    receiver.status = 500

    error, err = failing("backup", database=alias)

    assert as_seen(error) == as_seen(quiet)
    assert "Alert: the alert URL answered HTTP 500." in err
    assert len(django_mail.outbox) == 1


def test_alerts__an_unreachable_monitor_and_mail_server_leave_the_error_as_it_was(
    scratch: ScratchDatabases, settings: Any, tmp_path: Path
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)
    quiet, _ = failing("backup", database=alias)
    # Nothing listens on a port just released; the SMTP backend gets the same closed port.
    receiver = AlertReceiver()
    receiver.start()
    closed_url = receiver.url
    receiver.stop()
    port = int(closed_url.split(":")[2].split("/")[0])
    settings.OPS = {**settings.OPS, "ALERT_URL": closed_url, "ALERT_TIMEOUT": 2.0}
    settings.ADMINS = ADMINS
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port

    error, err = failing("backup", database=alias)

    assert as_seen(error) == as_seen(quiet)
    assert "Alert: the mail to ADMINS could not be sent (ConnectionRefusedError" in err
    assert "Alert: the alert URL could not be reached (URLError" in err
    assert CHECK_PATH not in err


def test_alerts__a_hanging_monitor_is_given_up_on_after_the_alert_timeout(
    scratch: ScratchDatabases, settings: Any, tmp_path: Path, receiver: AlertReceiver
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)
    quiet, _ = failing("backup", database=alias)
    settings.OPS = {**settings.OPS, "ALERT_URL": receiver.url, "ALERT_TIMEOUT": 0.2}
    receiver.delay = 2.0

    error, err = failing("backup", database=alias)

    assert as_seen(error) == as_seen(quiet)
    assert "Alert: the alert URL could not be reached (TimeoutError: timed out)." in err


@pytest.mark.usefixtures("backup_dir")
def test_alerts__nothing_configured_sends_nothing_and_says_nothing(
    scratch: ScratchDatabases, settings: Any, tmp_path: Path
) -> None:
    alias = with_data(scratch.postgres())
    unwritable_repository(settings, tmp_path)

    _, err = failing("backup", database=alias)

    assert "Alert" not in err
    assert django_mail.outbox == []
