"""Verify a backup in the repository without touching any database.

Downloads every part (each checked against its SHA-256 in the repository manifest), decrypts the
stream when it is age-encrypted (the identity comes from the environment, as for a restore),
and reads the whole archive through ``verify_archive``: structure, every table's checksum, the
archive's own checksum. Finally the repository manifest's summary must describe the archive
inside it. Streams part by part: memory holds one part, nothing is written to disk.

Before any download: with a signing key configured (ops/repository/signing.py) the manifest's
signature must be valid. ``check_authentic`` and ``check_encryption_claim`` are the checks a
restore makes too, word for word.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ops.archive.format import Manifest, Readable, verify_archive
from ops.repository.backups import BackupInfo, BackupRepository, CorruptBackup, PartsReader
from ops.repository.encryption import decrypting, decryption_identities, is_age_encrypted
from ops.repository.listing import human_size
from ops.repository.signing import check_signature, signing_key_from_environment


@dataclass(frozen=True)
class VerifyResult:
    name: str
    location: str
    size: int
    parts: int
    encrypted: bool
    tables: int
    rows: int
    holds_data: bool
    seconds: float
    # What the repository manifest says (read once): verify_media reads the media stream it lists.
    backup: BackupInfo
    # Its manifest's signature was checked with the configured key (unset: not checked).
    signature_checked: bool = False

    def summary_line(self, media: tuple[int, int] | None = None) -> str:
        """What `backup --verify` says; ``media``: the files its media stream lists and stores."""
        encrypted = "encrypted, " if self.encrypted else ""
        if self.signature_checked:
            encrypted += "signed by this deployment's key, "
        data = "" if self.holds_data else "; it holds no user data"
        if media is not None:
            data += f"; media: {media[0]} files listed, {media[1]} stored"
        return (
            f"Backup {self.name} is intact: {self.parts} part(s), {human_size(self.size)}, "
            f"{encrypted}{self.tables} tables, {self.rows:,} rows, every checksum matches{data}."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "ok": True,
            "size": self.size,
            "parts": self.parts,
            "encrypted": self.encrypted,
            "tables": self.tables,
            "rows": self.rows,
            "holds_data": self.holds_data,
            "seconds": round(self.seconds, 3),
            "kind": self.backup.kind,
            "signed": self.backup.signed,
            "signature_checked": self.signature_checked,
        }


def _check_summary(backup: BackupInfo, manifest: Manifest) -> None:
    described = {key: backup.summary.get(key) for key in ("tables", "rows", "holds_data")}
    actual = {"tables": len(manifest.tables), "rows": manifest.rows, "holds_data": manifest.holds_data}
    if any(described[key] is not None and described[key] != actual[key] for key in actual):
        raise CorruptBackup(
            f"Backup {backup.name}: its repository manifest does not describe the archive it holds "
            f"({described} listed, {actual} inside). It is damaged; restore another one."
        )


def check_authentic(backup: BackupInfo) -> bool:
    """With a signing key configured: the backup's manifest must carry a valid signature by it.

    Returns whether the signature was checked (False: no key configured here).
    """
    key = signing_key_from_environment()
    if key is None:
        return False
    check_signature(backup.manifest, key, f"Backup {backup.name}")
    return True


def check_encryption_claim(backup: BackupInfo, head: bytes) -> None:
    """The stream beginning with ``head`` must be age-encrypted exactly when the manifest says so.

    A manifest claiming "encrypted" over plaintext parts would otherwise be read as plaintext
    whatever key or passphrase is given: the claim, not the data, decides what is trusted.
    """
    if is_age_encrypted(head) != backup.encrypted:
        raise CorruptBackup(
            f"Backup {backup.name} is listed as {'encrypted' if backup.encrypted else 'unencrypted'} "
            "but its data is not: it is damaged or was replaced. Restore another one."
        )


def verify_backup(
    repository: BackupRepository,
    name: str | None = None,
    *,
    latest: bool = False,
    include_empty: bool = False,
) -> VerifyResult:
    """Verify backup ``name`` (or the latest one holding data); raises an OpsError if anything is wrong."""
    started = time.monotonic()
    backup = repository.pick(name, latest=latest, include_empty=include_empty)
    what = f"Backup {backup.name}"
    signature_checked = check_authentic(backup)
    # Read before any download: a missing key is reported before the parts are fetched.
    wrapped = repository.wrapped_identity(backup)
    identities = decryption_identities(wrapped) if backup.encrypted else None
    stream = PartsReader(repository.read_parts(backup))
    head = stream.read(64)
    encrypted = is_age_encrypted(head)
    check_encryption_claim(backup, head)
    source = _Prefixed(head, stream)
    if identities is None:
        manifest = verify_archive(source, what=what)
    else:
        # A damaged part raises CorruptBackup through the decryption (ops/repository/encryption.py).
        with decrypting(source, identities) as plaintext:
            manifest = verify_archive(plaintext, what=what)
    _check_summary(backup, manifest)
    return VerifyResult(
        name=backup.name,
        location=repository.description,
        size=backup.size,
        parts=len(backup.parts),
        encrypted=encrypted,
        tables=len(manifest.tables),
        rows=manifest.rows,
        holds_data=manifest.holds_data,
        seconds=time.monotonic() - started,
        backup=backup,
        signature_checked=signature_checked,
    )


class _Prefixed:
    """``head`` (already read to sniff the format) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)
