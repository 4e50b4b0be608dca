"""Authenticity of backups: an HMAC-SHA256 over each repository manifest, with a secret key.

Why: anyone holding the repository's credentials (one leaked ``CLOUDINARY_URL``) can upload a
backup, and age recipients are public keys, so encryption proves nothing about who wrote it. The
repository manifest lists every part with its size and SHA-256, and the archive's summary (the
media stream's parts too): a valid MAC over it vouches for every byte a restore reads. The key
(``BACKUP_SIGNING_KEY``, named by ``OPS['SIGNING_KEY_ENV']``) is a random secret the server holds;
without it nobody can make a manifest that verifies.

The signed bytes are the manifest's JSON without its ``signature`` member, keys sorted, no spaces,
ASCII only: what a manifest says, whatever whitespace the store or an editor gives it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError

ALGORITHM = "hmac-sha256"
SIGNATURE = "signature"
# 128 bits: below this a key can be guessed offline from one signed manifest.
MIN_KEY_BYTES = 16
_KEY_ID_LABEL = b"kidoo-ops backup signing key id"


class UnauthenticBackup(OpsError):
    """A backup whose manifest is unsigned, or signed with another key, while a key is configured."""


def _variable() -> str:
    return str(ops_setting("SIGNING_KEY_ENV"))


def generate_hint() -> str:
    return "python -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())'"


def parse_signing_key(text: str) -> bytes:
    """The key bytes of a base64 value (standard or URL-safe alphabet); refuses a short or non-base64 one.

    Never echoes the value: a message may end up in a deploy log.
    """
    value = text.strip()
    decoded: bytes | None = None
    for altchars in (None, b"-_"):
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if decoded is None or len(decoded) < MIN_KEY_BYTES:
        raise OpsConfigurationError(
            f"{_variable()} is not a usable signing key: it must be a random secret of at least "
            f"{MIN_KEY_BYTES} bytes, base64-encoded (32 bytes recommended). Make one with {generate_hint()}"
        )
    return decoded


def signing_key_from_environment() -> bytes | None:
    """The key that signs new backups and checks restored ones, or None when none is configured."""
    text = os.environ.get(_variable(), "").strip()
    return parse_signing_key(text) if text else None


def key_id(key: bytes) -> str:
    """A short name of the key (not of the secret: a MAC of a fixed label) for messages and listings."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:12]


def canonical_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the manifest without its signature, in one canonical JSON form."""
    body = {key: value for key, value in manifest.items() if key != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(manifest: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """``manifest`` with its ``signature`` member set."""
    mac = hmac.new(key, canonical_bytes(manifest), hashlib.sha256).hexdigest()
    return {**manifest, SIGNATURE: {"algorithm": ALGORITHM, "key_id": key_id(key), "mac": mac}}


def is_signed(manifest: Mapping[str, Any]) -> bool:
    return isinstance(manifest.get(SIGNATURE), dict)


def signature_state(manifest: Mapping[str, Any], key: bytes | None) -> str:
    """For listings: "valid" / "invalid" with a key, "present" without one, "unsigned"."""
    if not is_signed(manifest):
        return "unsigned"
    if key is None:
        return "present"
    try:
        check_signature(manifest, key, "it")
    except UnauthenticBackup:
        return "invalid"
    return "valid"


def check_signature(manifest: Mapping[str, Any], key: bytes, what: str) -> None:
    """Raise UnauthenticBackup unless ``manifest`` carries a valid MAC made with ``key``.

    ``what`` names the backup in the message ("Backup 2026...-daily-3f9a").
    """
    signature = manifest.get(SIGNATURE)
    if not isinstance(signature, dict):
        raise UnauthenticBackup(
            f"{what} is not signed, and {_variable()} is set: only backups signed with that key are "
            "restored (anyone with the repository's credentials can upload an unsigned one). Restore a "
            f"signed backup; if you trust this one, unset {_variable()} for this command only."
        )
    if signature.get("algorithm") != ALGORITHM or signature.get("key_id") != key_id(key):
        raise UnauthenticBackup(
            f"{what} is signed with another key than the one in {_variable()}: it was not written by "
            "this deployment, or the key was changed. Restore a backup signed with this key, or set "
            "the key it was signed with."
        )
    expected = hmac.new(key, canonical_bytes(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("mac", ""))):
        raise UnauthenticBackup(
            f"{what} does not match its signature: its manifest was changed after it was signed "
            "(parts replaced, or planted). Do not restore it; restore another backup."
        )
