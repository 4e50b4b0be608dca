from django.core.management.base import CommandError

from ops.errors import OpsConfigurationError, OpsError, as_command_error, redact


def test_redact__url_credentials() -> None:
    text = "could not connect to postgres://kidoo:s3cr3t@db.internal:5432/kidoo"
    assert redact(text) == "could not connect to postgres://***@db.internal:5432/kidoo"


def test_redact__cloudinary_url_and_key_value_pairs() -> None:
    text = "cloudinary://1234:abcDEF@cloud failed; password=hunter2 api_secret: 'xyz' token=t0k"
    redacted = redact(text)
    for secret in ("abcDEF", "1234", "hunter2", "xyz", "t0k"):
        assert secret not in redacted
    assert "cloudinary://***@cloud" in redacted


def test_redact__leaves_ordinary_text_alone() -> None:
    text = "table api_enquiry: 12 rows, checksum mismatch at part 3"
    assert redact(text) == text


def test_as_command_error__carries_the_exit_code() -> None:
    failed = as_command_error(OpsError("Backup failed. Check the logs."))
    misuse = as_command_error(OpsConfigurationError("OPS['BACKUP_DIR'] is not writable. Fix it."))
    assert isinstance(failed, CommandError)
    assert (failed.returncode, misuse.returncode) == (1, 2)
    assert str(misuse) == "OPS['BACKUP_DIR'] is not writable. Fix it."
