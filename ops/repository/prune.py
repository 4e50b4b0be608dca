"""Prune a backup repository: apply the retention policy (ops/repository/retention.py) and delete the rest.

One listing of the repository (parts of backups still being written or abandoned included), one
plan, then one delete per backup that goes. A delete that fails is reported and the prune goes
on: one stuck object must not keep every other old backup alive. Objects whose names are not
backup names are never touched: the folder may hold something that is not ours.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any

from ops.conf import ops_setting
from ops.errors import OpsError, redact
from ops.repository.backups import BackupInfo, BackupRepository
from ops.repository.retention import RetentionPolicy, plan_retention
from ops.repository.stores import Leftover

_BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z-.+")
# A part is written in seconds: a temporary file this old belongs to a write that was killed.
LEFTOVER_AGE = dt.timedelta(hours=1)


def configured_policy() -> RetentionPolicy:
    """The policy of OPS['BACKUP_KEEP_LAST'], _DAILY, _WEEKLY and _MONTHLY."""
    return RetentionPolicy(
        keep_last=int(ops_setting("BACKUP_KEEP_LAST")),
        keep_daily=int(ops_setting("BACKUP_KEEP_DAILY")),
        keep_weekly=int(ops_setting("BACKUP_KEEP_WEEKLY")),
        keep_monthly=int(ops_setting("BACKUP_KEEP_MONTHLY")),
    )


@dataclass(frozen=True)
class PruneEntry:
    name: str
    created_at: dt.datetime
    # "keep" or "delete": what the plan says (a dry run deletes nothing).
    action: str
    reason: str
    size: int
    complete: bool
    holds_data: bool
    deleted: bool = False
    # Why the delete failed (a failed delete leaves the backup in place).
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "reason": self.reason,
            "size": self.size,
            "complete": self.complete,
            "holds_data": self.holds_data,
            "deleted": self.deleted,
            "error": self.error,
        }


@dataclass(frozen=True)
class PruneResult:
    location: str
    dry_run: bool
    policy: RetentionPolicy
    # Newest first, as the repository lists them.
    entries: tuple[PruneEntry, ...]
    # Temporary files of killed writes, older than LEFTOVER_AGE: removed (a dry run: would be).
    leftovers: tuple[Leftover, ...] = ()

    @property
    def kept(self) -> list[PruneEntry]:
        return [entry for entry in self.entries if entry.action == "keep"]

    @property
    def to_delete(self) -> list[PruneEntry]:
        return [entry for entry in self.entries if entry.action == "delete"]

    @property
    def deleted(self) -> list[PruneEntry]:
        return [entry for entry in self.entries if entry.deleted]

    @property
    def failed(self) -> list[PruneEntry]:
        return [entry for entry in self.entries if entry.error is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "dry_run": self.dry_run,
            "policy": {
                "keep_last": self.policy.keep_last,
                "keep_daily": self.policy.keep_daily,
                "keep_weekly": self.policy.keep_weekly,
                "keep_monthly": self.policy.keep_monthly,
            },
            "kept": len(self.kept),
            "deleted": len(self.deleted),
            "failed": len(self.failed),
            "backups": [entry.as_dict() for entry in self.entries],
            "leftovers": [{"key": item.key, "size": item.size} for item in self.leftovers],
        }


def _entry(backup: BackupInfo, action: str, reason: str) -> PruneEntry:
    return PruneEntry(
        name=backup.name,
        created_at=backup.created_at,
        action=action,
        reason=reason,
        size=backup.size,
        complete=backup.complete,
        holds_data=backup.complete and backup.holds_data,
    )


def prune_repository(
    repository: BackupRepository,
    policy: RetentionPolicy | None = None,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PruneResult:
    """Delete the backups ``policy`` (default: the configured one) does not keep; say why for each."""
    policy = policy or configured_policy()
    now = now or dt.datetime.now(dt.UTC)
    listed = repository.backups(include_incomplete=True)
    foreign = [b for b in listed if not b.complete and not _BACKUP_NAME.fullmatch(b.name)]
    # A manifest this code cannot read (a rollback to older code, a damaged file) is left for a
    # person to look at: deleting it as "abandoned" could take every newer backup with data.
    unreadable = [b for b in listed if b.unreadable is not None and b not in foreign]
    # The flat layout every database shared (old local folders): whose they are is unknown, so no
    # database's prune takes them.
    shared = [b for b in listed if repository.in_shared_layout(b.name) and b not in foreign]
    foreign_names = {b.name for b in foreign} | {b.name for b in unreadable} | {b.name for b in shared}
    plan = plan_retention([b for b in listed if b.name not in foreign_names], policy, now=now)
    decided = {b.name: _entry(b, "keep", plan.reasons[b.name]) for b in plan.keep}
    decided.update({b.name: _entry(b, "delete", plan.reasons[b.name]) for b in plan.delete})
    decided.update({b.name: _entry(b, "keep", "not a backup name: left alone") for b in foreign})
    decided.update({b.name: _entry(b, "keep", "unreadable manifest: left alone") for b in unreadable})
    decided.update(
        {b.name: _entry(b, "keep", "flat layout shared by every database: left alone") for b in shared}
    )
    if not dry_run:
        # Oldest first: an interrupted prune has removed what mattered least.
        for backup in reversed(plan.delete):
            try:
                repository.delete(backup.name)
            except (OpsError, OSError) as error:
                decided[backup.name] = replace(decided[backup.name], error=redact(str(error)))
            else:
                decided[backup.name] = replace(decided[backup.name], deleted=True)
    stale = [item for item in repository.leftovers() if now - item.modified > LEFTOVER_AGE]
    if not dry_run:
        for item in stale:
            repository.remove_leftover(item)
    return PruneResult(
        location=repository.description,
        dry_run=dry_run,
        policy=policy,
        entries=tuple(decided[b.name] for b in listed),
        leftovers=tuple(stale),
    )
