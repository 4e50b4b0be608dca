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
from ops.repository.backups import FULL, SAFETY, BackupInfo, BackupRepository
from ops.repository.listing import human_size
from ops.repository.retention import RetentionPolicy, plan_retention, plan_safety_retention
from ops.repository.stores import Leftover

_BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z-.+")
# A part is written in seconds: a temporary file this old belongs to a write that was killed.
LEFTOVER_AGE = dt.timedelta(hours=1)


def configured_policy() -> RetentionPolicy:
    """The policy of OPS['BACKUP_KEEP_LAST'], _DAILY, _WEEKLY, _MONTHLY and _SAFETY."""
    return RetentionPolicy(
        keep_last=int(ops_setting("BACKUP_KEEP_LAST")),
        keep_daily=int(ops_setting("BACKUP_KEEP_DAILY")),
        keep_weekly=int(ops_setting("BACKUP_KEEP_WEEKLY")),
        keep_monthly=int(ops_setting("BACKUP_KEEP_MONTHLY")),
        keep_safety=int(ops_setting("BACKUP_KEEP_SAFETY")),
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
    kind: str = FULL
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
            "kind": self.kind,
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

    def failure_lines(self) -> list[str]:
        return [f"Could not delete {entry.name}: {entry.error}" for entry in self.failed]

    def lines(self, verbosity: int) -> list[str]:
        """What `backup --prune` prints: each backup's fate (dry run or -v 2), then a summary."""
        lines = []
        if self.dry_run or verbosity >= 2:
            for item in self.leftovers:
                action = "would delete" if self.dry_run else "deleted"
                lines.append(f"  {action:<12}  {item.key}  leftover of a killed write, over an hour old")
            width = max((len(entry.name) for entry in self.entries), default=0)
            for entry in self.entries:
                if entry.action == "keep":
                    action = "keep"
                elif self.dry_run:
                    action = "would delete"
                else:
                    action = "deleted" if entry.deleted else "NOT deleted"
                lines.append(f"  {action:<12}  {entry.name:<{width}}  {entry.reason}")
        if verbosity >= 1:
            freed = human_size(sum(entry.size for entry in self.to_delete))
            if self.dry_run:
                lines.append(
                    f"Dry run: would delete {len(self.to_delete)} and keep {len(self.kept)} "
                    f"backup(s) in the {self.location} ({freed}); nothing was deleted."
                )
            else:
                lines.append(
                    f"Pruned the {self.location}: deleted {len(self.deleted)} backup(s) ({freed}), "
                    f"kept {len(self.kept)}."
                )
        return lines

    def failure(self) -> OpsError | None:
        """The error the prune ends with when a deletion failed (the others went ahead)."""
        if not self.failed:
            return None
        names = ", ".join(entry.name for entry in self.failed)
        return OpsError(
            f"Pruning could not delete {names} (see above); the other backups were pruned. "
            "Run the prune again later; the backups are still listed until then."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "dry_run": self.dry_run,
            "policy": {
                "keep_last": self.policy.keep_last,
                "keep_daily": self.policy.keep_daily,
                "keep_weekly": self.policy.keep_weekly,
                "keep_monthly": self.policy.keep_monthly,
                "keep_safety": self.policy.keep_safety,
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
        kind=backup.kind,
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
    ours = [b for b in listed if b.name not in foreign_names]
    safety = [b for b in ours if b.complete and b.kind == SAFETY]
    plan = plan_retention([b for b in ours if b not in safety], policy, now=now)
    # Safety backups of one database are counted apart; those that record no database share a slot set.
    safety_plan = plan_safety_retention(safety, policy.keep_safety, lambda b: b.fingerprint)
    plan.keep += safety_plan.keep
    plan.delete += safety_plan.delete
    plan.reasons.update(safety_plan.reasons)
    # The policy's "newest backup holding data" may be a partial one: the newest full one stays too.
    newest_full = next((b for b in ours if b.complete and b.kind == FULL and b.holds_data), None)
    if newest_full is not None and newest_full in plan.delete:
        plan.delete.remove(newest_full)
        plan.keep.append(newest_full)
        plan.reasons[newest_full.name] = "newest full backup holding data"
    plan.delete.sort(key=lambda b: b.created_at, reverse=True)
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
