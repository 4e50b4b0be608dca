"""What the repository holds, as a table for people and as JSON for scripts (``backup --list``).

One store listing plus one manifest read per backup (ops/repository/backups.py): on Cloudinary, one Admin
API call per 500 stored objects, the manifests come through download URLs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ops.repository.backups import BackupInfo
from ops.repository.signing import signature_state, signing_key_from_environment
from ops.repository.stores import Leftover

HEADERS = ("NAME", "CREATED (UTC)", "SIZE", "TABLES", "ROWS", "KIND", "SIGNED", "ENCRYPTED", "DATA")
# SIGNED: "yes" (valid with the configured key, or present when none is configured here), "BAD"
# (does not verify with the configured key: a restore refuses it), "NO".
_SIGNED = {"valid": "yes", "present": "yes", "invalid": "BAD", "unsigned": "NO"}


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def backup_record(backup: BackupInfo, key: bytes | None = None) -> dict[str, Any]:
    """One backup for ``--format json``: no personal data, only names, counts and sizes."""
    record = {**backup.as_dict(), "encrypted": backup.encrypted}
    if backup.complete:
        record["signature"] = signature_state(backup.manifest, key)
    return record


def backup_records(backups: Sequence[BackupInfo]) -> list[dict[str, Any]]:
    key = signing_key_from_environment()
    return [backup_record(backup, key) for backup in backups]


def _row(backup: BackupInfo, key: bytes | None) -> tuple[str, ...]:
    created = backup.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if not backup.complete:
        return (backup.name, created, human_size(backup.size), "-", "-", "-", "-", "-", "incomplete")

    def count(key: str) -> str:
        value = backup.summary.get(key)
        return f"{value:,}" if isinstance(value, int) else "?"

    return (
        backup.name,
        created,
        human_size(backup.size),
        count("tables"),
        count("rows"),
        backup.kind,
        _SIGNED[signature_state(backup.manifest, key)],
        "yes" if backup.encrypted else "NO",
        "DAMAGED" if backup.damage else "yes" if backup.holds_data else "EMPTY",
    )


def backups_table(backups: Sequence[BackupInfo]) -> list[str]:
    """Aligned text lines: a header and one line per backup; numbers right-aligned."""
    key = signing_key_from_environment()
    rows = [HEADERS, *(_row(backup, key) for backup in backups)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    numeric = {2, 3, 4}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def listing_lines(
    backups: Sequence[BackupInfo], location: str, *, verbosity: int, leftovers: Sequence[Leftover] = ()
) -> list[str]:
    """What `backup --list` prints: the table, the ``leftovers`` of killed writes, then (verbosity
    1+) a count with what is special. Damaged backups are marked in the table (``damage_lines``)."""
    if not backups and not leftovers:
        return [f"No backups in the {location}."]
    lines = backups_table(backups) if backups else []
    lines += leftover_lines(leftovers)
    if verbosity >= 1:
        complete = [backup for backup in backups if backup.complete]
        empty = sum(1 for backup in complete if not backup.holds_data)
        notes = [f"{empty} of an empty database"] if empty else []
        for kind in ("partial", "safety"):
            count = sum(1 for backup in complete if backup.kind == kind)
            if count:
                notes.append(f"{count} {kind}")
        note = f" ({', '.join(notes)})" if notes else ""
        lines.append(f"{len(complete)} backup(s){note} in the {location}.")
    return lines


def leftover_lines(leftovers: Sequence[Leftover], now: dt.datetime | None = None) -> list[str]:
    """``backup --list -v 2``: the temporary files killed writes left (a prune removes old ones)."""
    now = now or dt.datetime.now(dt.UTC)
    lines = []
    for item in leftovers:
        hours = (now - item.modified).total_seconds() / 3600
        lines.append(f"leftover {item.key}: {human_size(item.size)}, {hours:.1f} h old")
    return lines


def damage_lines(backups: Sequence[BackupInfo]) -> list[str]:
    """One line per damaged backup, saying what is missing (the table only marks them)."""
    return [f"{backup.name} is DAMAGED: {backup.damage}." for backup in backups if backup.damage]
