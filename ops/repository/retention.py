"""Which backups a prune keeps, and why.

The policy is restic's (``--keep-last``, ``--keep-daily`` ...): keep the newest N backups, plus the
newest backup of each of the last D days that have one, W ISO weeks, M months. Buckets are counted
in UTC, the zone Render's cron runs in.

Three rules sit above the policy, because they are what the incident needed:

- Only backups of a database that held user data fill the policy's slots. When Render recreates an
  expired database, the next backups are of an empty database; if they counted, a week of them
  would push every good backup out of retention. (Backups of an empty database newer than the
  newest one with data are kept beside the slots, at most ``keep_last`` of them.)
- The newest complete backup that holds data is never deleted, whatever the policy says.
- A backup still being written is never deleted; one that was abandoned (started longer ago than
  ``abandoned_after``, never completed: a killed process) is, since its parts only cost space.

Restores' safety backups never enter that plan (they would take its slots, and the newest one
would be kept forever as "the newest backup holding data"): ``plan_safety_retention`` keeps the
newest ``keep_safety`` of each database apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class RetainedBackup(Protocol):
    """What retention needs to know of a backup."""

    @property
    def name(self) -> str: ...

    @property
    def created_at(self) -> dt.datetime: ...

    @property
    def holds_data(self) -> bool: ...

    @property
    def complete(self) -> bool: ...


B = TypeVar("B", bound=RetainedBackup)


@dataclass(frozen=True)
class RetentionPolicy:
    # Sized for the free tier: about 20 archives of a small database stay far below its limits.
    keep_last: int = 3
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6
    abandoned_after: dt.timedelta = dt.timedelta(hours=6)
    # Safety backups, per database (``plan_safety_retention``).
    keep_safety: int = 3

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_safety"):
            if getattr(self, name) < 0:
                raise ValueError(f"Retention {name} must be 0 or more, not {getattr(self, name)}.")


@dataclass
class RetentionPlan(Generic[B]):
    keep: list[B] = field(default_factory=list)
    delete: list[B] = field(default_factory=list)
    # Why each kept backup is kept, and why each deleted one goes: shown by --dry-run.
    reasons: dict[str, str] = field(default_factory=dict)


def _day(moment: dt.datetime) -> Hashable:
    return moment.astimezone(dt.UTC).date()


def _week(moment: dt.datetime) -> Hashable:
    year, week, _ = moment.astimezone(dt.UTC).isocalendar()
    return (year, week)


def _month(moment: dt.datetime) -> Hashable:
    utc = moment.astimezone(dt.UTC)
    return (utc.year, utc.month)


def plan_retention(backups: Sequence[B], policy: RetentionPolicy, *, now: dt.datetime) -> RetentionPlan[B]:
    """Split ``backups`` into those a prune keeps and those it deletes (nothing is deleted here)."""
    plan: RetentionPlan[B] = RetentionPlan()
    newest_first = sorted(backups, key=lambda backup: backup.created_at, reverse=True)
    reasons: dict[str, list[str]] = {}

    def keep(backup: B, reason: str) -> None:
        reasons.setdefault(backup.name, []).append(reason)

    candidates: list[B] = []
    empty_since_last_data: list[B] = []
    for backup in newest_first:
        if not backup.complete:
            if now - backup.created_at < policy.abandoned_after:
                keep(backup, "still being written")
        elif backup.holds_data:
            candidates.append(backup)
        elif not candidates:
            empty_since_last_data.append(backup)
    # They record the database's current state, but never take a slot from a backup with data.
    for backup in empty_since_last_data[: policy.keep_last]:
        keep(backup, "newer than any backup holding data")

    if candidates:
        keep(candidates[0], "newest backup holding data")
    for backup in candidates[: policy.keep_last]:
        keep(backup, "last")

    bucketings: list[tuple[str, int, Callable[[dt.datetime], Hashable]]] = [
        ("daily", policy.keep_daily, _day),
        ("weekly", policy.keep_weekly, _week),
        ("monthly", policy.keep_monthly, _month),
    ]
    for label, count, bucket_of in bucketings:
        seen: set[Hashable] = set()
        for backup in candidates:
            if len(seen) >= count:
                break
            bucket = bucket_of(backup.created_at)
            if bucket not in seen:
                seen.add(bucket)
                keep(backup, label)

    for backup in newest_first:
        if backup.name in reasons:
            plan.keep.append(backup)
            plan.reasons[backup.name] = ", ".join(reasons[backup.name])
        else:
            plan.delete.append(backup)
            if not backup.complete:
                plan.reasons[backup.name] = "abandoned: never completed"
            elif not backup.holds_data:
                plan.reasons[backup.name] = "backup of an empty database"
            else:
                plan.reasons[backup.name] = "outside the retention policy"
    return plan


def plan_safety_retention(
    backups: Sequence[B], keep: int, database_of: Callable[[B], Hashable]
) -> RetentionPlan[B]:
    """Restores' safety backups: the newest ``keep`` of each database (``database_of``) stay."""
    plan: RetentionPlan[B] = RetentionPlan()
    kept: dict[Hashable, int] = {}
    for backup in sorted(backups, key=lambda backup: backup.created_at, reverse=True):
        database = database_of(backup)
        if kept.get(database, 0) < keep:
            kept[database] = kept.get(database, 0) + 1
            plan.keep.append(backup)
            plan.reasons[backup.name] = f"safety backup, newest {keep} of its database"
        else:
            plan.delete.append(backup)
            plan.reasons[backup.name] = f"safety backup beyond the newest {keep} of its database"
    return plan
