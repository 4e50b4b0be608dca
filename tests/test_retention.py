import datetime as dt
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.repository.retention import RetentionPolicy, plan_retention

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Backup:
    name: str
    created_at: dt.datetime
    holds_data: bool = True
    complete: bool = True


def daily_backups(days: int, *, hour: int = 3) -> list[Backup]:
    return [Backup(f"b{day:03d}", NOW.replace(hour=hour) - dt.timedelta(days=day)) for day in range(days)]


def names(backups: list[Backup]) -> set[str]:
    return {backup.name for backup in backups}


def test_plan__keep_last_only() -> None:
    backups = daily_backups(10)
    plan = plan_retention(backups, RetentionPolicy(3, 0, 0, 0), now=NOW)
    assert names(plan.keep) == {"b000", "b001", "b002"}
    assert len(plan.delete) == 7
    assert plan.reasons["b005"] == "outside the retention policy"


def test_plan__daily_weekly_monthly_buckets() -> None:
    backups = daily_backups(120)
    plan = plan_retention(backups, RetentionPolicy(0, 7, 4, 3), now=NOW)
    kept = names(plan.keep)
    # The last 7 days, one per ISO week for 4 weeks, one per month for 3 months, overlapping.
    assert {f"b{day:03d}" for day in range(7)} <= kept
    weeks = {b.created_at.isocalendar()[:2] for b in plan.keep}
    months = {(b.created_at.year, b.created_at.month) for b in plan.keep}
    assert len(weeks) >= 4
    assert months == {(2026, 11), (2026, 10), (2026, 9)}
    # Newest of each bucket is the one kept: 30 Sep 03:00 stands for September.
    assert "b059" in kept
    assert plan.reasons["b059"].endswith("monthly")
    assert len(plan.keep) + len(plan.delete) == 120


def test_plan__several_backups_a_day_keep_the_newest_of_the_day() -> None:
    backups = [Backup(f"h{hour:02d}", NOW.replace(hour=hour)) for hour in range(12)]
    plan = plan_retention(backups, RetentionPolicy(1, 1, 0, 0), now=NOW)
    assert names(plan.keep) == {"h11"}


def test_plan__empty_database_backups_never_push_good_ones_out() -> None:
    good = daily_backups(5)
    # The database expired 3 days ago and was recreated empty: 9 pre-deploy and cron backups since.
    empty = [Backup(f"empty{i}", NOW - dt.timedelta(hours=i * 8), holds_data=False) for i in range(9)]
    good = [Backup(b.name, b.created_at - dt.timedelta(days=3)) for b in good]
    plan = plan_retention(good + empty, RetentionPolicy(3, 3, 0, 0), now=NOW)
    assert {"b000", "b001", "b002"} <= names(plan.keep)
    assert names(plan.keep) & {f"empty{i}" for i in range(9)} == {"empty0", "empty1", "empty2"}
    assert plan.reasons["empty5"] == "backup of an empty database"


def test_plan__newest_backup_with_data_survives_a_zero_policy() -> None:
    backups = daily_backups(4)
    plan = plan_retention(backups, RetentionPolicy(0, 0, 0, 0), now=NOW)
    assert names(plan.keep) == {"b000"}
    assert plan.reasons["b000"] == "newest backup holding data"


def test_plan__in_progress_kept_abandoned_deleted() -> None:
    writing = Backup("writing", NOW - dt.timedelta(minutes=5), complete=False)
    abandoned = Backup("abandoned", NOW - dt.timedelta(days=2), complete=False)
    plan = plan_retention([writing, abandoned, *daily_backups(2)], RetentionPolicy(), now=NOW)
    assert "writing" in names(plan.keep)
    assert plan.reasons["writing"] == "still being written"
    assert "abandoned" in names(plan.delete)
    assert plan.reasons["abandoned"] == "abandoned: never completed"


def test_policy__negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_daily"):
        RetentionPolicy(keep_daily=-1)


@given(
    st.lists(
        st.tuples(st.integers(0, 400 * 24), st.booleans(), st.booleans()),
        max_size=60,
        unique_by=lambda t: t[0],
    ),
    st.integers(0, 5),
    st.integers(0, 10),
)
def test_plan__invariants(specs: list[tuple[int, bool, bool]], last: int, daily: int) -> None:
    backups = [
        Backup(f"b{hours}", NOW - dt.timedelta(hours=hours), holds_data=data, complete=complete)
        for hours, data, complete in specs
    ]
    plan = plan_retention(backups, RetentionPolicy(last, daily, 2, 2), now=NOW)
    assert sorted(names(plan.keep) | names(plan.delete)) == sorted(names(backups))
    assert not names(plan.keep) & names(plan.delete)
    with_data = [b for b in backups if b.complete and b.holds_data]
    if with_data:
        assert max(with_data, key=lambda b: b.created_at).name in names(plan.keep)
    for backup in backups:
        if not backup.complete and NOW - backup.created_at < dt.timedelta(hours=6):
            assert backup.name in names(plan.keep)
