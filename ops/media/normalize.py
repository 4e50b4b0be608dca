"""The one call behind ``manage.py normalize_media_urls``: which mode, run it, and what to print.

The command parses its options into a ``NormalizeRequest``, calls ``normalize_media_urls`` and
prints the lines the returned ``NormalizeOutcome`` gives for its verbosity and format: every mode
check and every sentence a user reads lives here, typed and tested, not in the command file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ops.errors import OpsConfigurationError
from ops.media.repair import (
    BROKEN,
    CANONICAL,
    CATEGORIES,
    EXTERNAL,
    FIXABLE,
    UNKNOWN,
    RepairOptions,
    RepairResult,
    ReportRow,
    UndoResult,
    repair_media,
    undo_media_repair,
)

# "" plain, "success", "warning" (stderr): the command maps them to its styles and streams.
Style = Literal["", "success", "warning"]
Line = tuple[Style, str]


@dataclass(frozen=True)
class NormalizeRequest:
    database: str = "default"
    apps: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    apply: bool = False
    verify: bool = True
    check_remote: bool = False
    upload_missing: bool = False
    report_path: Path | None = None
    resume_from: Path | None = None
    # An undo log's key or path: put its old values back instead of repairing.
    undo: str | None = None
    wait: bool = True


@dataclass
class NormalizeOutcome:
    repair: RepairResult | None = None
    undo: UndoResult | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.repair is not None:
            return self.repair.as_dict()
        assert self.undo is not None
        return self.undo.as_dict()

    def warnings(self) -> list[str]:
        return list(self.repair.warnings) if self.repair is not None else []

    def lines(self, verbosity: int = 1, output_format: str = "text") -> list[Line]:
        """What the command prints on stdout (warnings apart: ``warnings()``)."""
        if output_format == "json":
            return [("", json.dumps(self.as_dict(), indent=2, default=str))]
        if verbosity < 1:
            return []
        if self.undo is not None:
            return undo_lines(self.undo)
        assert self.repair is not None
        return repair_lines(self.repair, verbosity)


def normalize_media_urls(
    request: NormalizeRequest,
    *,
    confirm: Callable[[str], bool] | None = None,
    on_row: Callable[[ReportRow], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> NormalizeOutcome:
    """Repair (or dry-run, or undo) as ``request`` says; raises OpsError subclasses on failure."""
    if request.undo is not None:
        if request.apps or request.models or request.check_remote or request.upload_missing:
            raise OpsConfigurationError("--undo takes only --apply, --database, --no-input and --no-wait.")
        if not request.verify or request.report_path is not None or request.resume_from is not None:
            raise OpsConfigurationError("--undo takes only --apply, --database, --no-input and --no-wait.")
        undone = undo_media_repair(
            request.undo,
            request.database,
            apply=request.apply,
            confirm=confirm,
            wait=request.wait,
            on_wait=on_wait,
        )
        return NormalizeOutcome(undo=undone)
    result = repair_media(
        RepairOptions(
            database=request.database,
            apps=request.apps,
            models=request.models,
            apply=request.apply,
            verify=request.verify,
            check_remote=request.check_remote,
            upload_missing=request.upload_missing,
            report_path=request.report_path,
            resume_from=request.resume_from,
            wait=request.wait,
        ),
        confirm=confirm,
        on_row=on_row,
        on_wait=on_wait,
    )
    return NormalizeOutcome(repair=result)


def fix_label(result: RepairResult) -> str:
    verb = "fixed" if result.applied else "would fix"
    return f"{verb} (verified)" if result.verified else f"{verb} (not verified)"


def repair_lines(result: RepairResult, verbosity: int = 1) -> list[Line]:
    counts = result.counts
    labels = {
        CANONICAL: "canonical",
        FIXABLE: fix_label(result),
        BROKEN: "broken",
        EXTERNAL: "external",
        UNKNOWN: "unknown",
    }
    summary = ", ".join(f"{counts[c]:,} {labels[c]}" for c in CATEGORIES)
    calls = f"; {result.api_calls} Admin API calls" if result.api_calls or result.checked_remote else ""
    head = "Repaired" if result.applied else "Dry run"
    lines: list[Line] = [
        (
            "",
            f"{head} on {result.database}: {result.values_scanned:,} media values in "
            f"{len(result.columns)} fields: {summary} ({counts['empty']:,} empty skipped{calls}) "
            f"in {result.seconds:.1f} s.",
        )
    ]
    if result.resumed_from:
        lines.append(
            ("", f"Resumed at {result.resumed_from}: the rows before it were settled by the stopped run.")
        )
    if not result.verified:
        lines.append(
            (
                "warning",
                "Repairs were not verified (--no-verify): a repaired name may point at no file. "
                "Without --no-verify only repairs whose file exists are written.",
            )
        )
    if verbosity == 1:
        # Would-fix and broken first: what the run writes, and what it leaves for a person.
        for category in (FIXABLE, BROKEN, UNKNOWN, EXTERNAL):
            for example in result.examples[category]:
                lines.append(("", f"  e.g. {labels[category]}: {describe(example)}"))
    if result.applied:
        line = f"Fixed {result.fixed:,}"
        if result.changed_concurrently:
            line += f"; {result.changed_concurrently:,} changed by someone else meanwhile, left as they are"
        if result.uploads:
            line += f"; {result.uploads:,} uploaded from MEDIA_ROOT"
        if result.undo_log_stored_in:
            line += f". Undo log: {result.undo_log} in the {result.undo_log_stored_in}."
        else:
            line += f". Undo log: {result.undo_log}." if result.undo_log else "."
        lines.append(("success", line))
    elif counts[FIXABLE]:
        lines.append(("", "Nothing was written. Run with --apply to repair."))
    if counts[BROKEN]:
        lines.append(
            (
                "",
                f"{counts[BROKEN]:,} broken values were left as they are: no file exists at any reading of "
                "them. Put the files back (or --upload-missing from MEDIA_ROOT), then run again.",
            )
        )
    if result.report_file:
        lines.append(("", f"Every value: {result.report_file}"))
    return lines


def describe(row: dict[str, Any]) -> str:
    new = f" -> {row['new']}" if row["new"] else ""
    return f"{row['model']}.{row['field']} pk={row['pk']}: {row['old']!r}{new} ({row['reason']})"


def row_line(row: ReportRow) -> str:
    """One value at verbosity 2."""
    new = f" -> {row.new}" if row.new else ""
    return f"{row.category}: {row.model}.{row.field} pk={row.pk}: {row.old!r}{new} ({row.reason})"


def undo_lines(result: UndoResult) -> list[Line]:
    verb = "Restored" if result.applied else "Would restore"
    lines: list[Line] = [
        (
            "",
            f"{verb} {result.restored:,} of {result.entries:,} values in {result.database}; "
            f"{result.skipped:,} changed since the repair, left as they are.",
        )
    ]
    if not result.applied and result.restored:
        lines.append(("", "Nothing was written. Run with --apply to restore."))
    return lines
