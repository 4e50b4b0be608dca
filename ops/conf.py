"""The toolkit's settings: one ``OPS = {...}`` dict in the project settings, defaults here.

Read at call time (never cached at import) so ``override_settings(OPS=...)`` works in tests.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where backups live (ops/repository.py): "local", "cloudinary" or "storage:<alias>".
    # None: Cloudinary when its credentials are set, else the local folder.
    "BACKUP_REPOSITORY": None,
    # The local folder, relative to BASE_DIR unless absolute.
    "BACKUP_DIR": "backups",
    # Keeps staging and production apart in one account; None: the database's name.
    "BACKUP_NAMESPACE": None,
    "BACKUP_CLOUDINARY_FOLDER": "ops-backups",
    # Encryption of backups (ops/encryption.py): the names of the environment variables that hold
    # the keys, so no key ever sits in a settings file.
    "ENCRYPTION_RECIPIENTS_ENV": "BACKUP_AGE_RECIPIENTS",
    "ENCRYPTION_RECIPIENTS_FILE_ENV": "BACKUP_AGE_RECIPIENTS_FILE",
    "ENCRYPTION_PASSPHRASE_ENV": "BACKUP_AGE_PASSPHRASE",
    "ENCRYPTION_IDENTITY_ENV": "BACKUP_AGE_IDENTITY",
    "ENCRYPTION_IDENTITY_FILE_ENV": "BACKUP_AGE_IDENTITY_FILE",
}


def ops_setting(name: str) -> Any:
    """Return the project's value for ``OPS[name]``, or the toolkit's default."""
    user_settings: dict[str, Any] = getattr(settings, "OPS", {}) or {}
    if name in user_settings:
        return user_settings[name]
    try:
        return DEFAULTS[name]
    except KeyError:
        raise KeyError(f"Unknown OPS setting {name!r}") from None
