import json
from pathlib import Path

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.media.repair import CATEGORIES, RepairOptions, UndoResult, repair_media, undo_media_repair

LABELS = {
    "canonical": "canonical",
    "fixable": "would fix",
    "broken": "broken",
    "external": "external",
    "unknown": "unknown",
}


class Command(OpsCommand):
    help = "Find stored media values their storage cannot resolve and repair them (dry run unless --apply)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to scan. Defaults to the "default" database.',
        )
        parser.add_argument(
            "--app", action="append", default=[], dest="apps", help="Only this app (repeatable)."
        )
        parser.add_argument(
            "--model", action="append", default=[], dest="models", help="Only app_label.Model (repeatable)."
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", help="Only report (the default).")
        mode.add_argument("--apply", action="store_true", help="Write the repairs, with an undo log.")
        parser.add_argument(
            "--check-remote",
            action="store_true",
            help="Check every name exists in the media storage (bulk Admin API calls); never rewrite "
            "into a missing one.",
        )
        parser.add_argument(
            "--upload-missing",
            action="store_true",
            help="Upload files missing from Cloudinary but still in MEDIA_ROOT, and store their names "
            "(implies --check-remote).",
        )
        parser.add_argument(
            "--resume-from",
            type=Path,
            help="Keep the answers of a --check-remote stopped by the rate limit (the file it named).",
        )
        parser.add_argument(
            "--report", type=Path, help="Write every value to FILE (CSV, or JSON lines for .jsonl)."
        )
        parser.add_argument(
            "--undo",
            metavar="LOG",
            help="Put back the old values of an undo log: its key in the backup repository "
            "(undo/...) or a local file.",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask before writing.",
        )
        parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)

    def confirm(self, database):
        self.stdout.write(
            f"This will rewrite media values in database {database!r} (an undo log is kept).\n"
            f"Type 'yes' to continue, or 'no' to cancel: "
        )
        try:
            return input() == "yes"
        except EOFError:
            return False

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        confirm = self.confirm if options["interactive"] else None
        try:
            if options["undo"] is not None:
                if (
                    options["apps"]
                    or options["models"]
                    or options["check_remote"]
                    or options["upload_missing"]
                ):
                    raise CommandError("--undo takes only --apply, --database and --no-input.", returncode=2)
                undone = undo_media_repair(
                    options["undo"], options["database"], apply=options["apply"], confirm=confirm
                )
                self.print_undo(undone, options)
                return
            result = repair_media(
                RepairOptions(
                    database=options["database"],
                    apps=tuple(options["apps"]),
                    models=tuple(options["models"]),
                    apply=options["apply"],
                    check_remote=options["check_remote"],
                    upload_missing=options["upload_missing"],
                    report_path=options["report"],
                    resume_from=options["resume_from"],
                ),
                confirm=confirm,
                on_row=self.print_row if verbosity >= 2 and options["format"] == "text" else None,
            )
        except OpsError as error:
            raise as_command_error(error) from None
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(warning))
        if options["format"] == "json":
            self.stdout.write(json.dumps(result.as_dict(), indent=2, default=str))
            return
        if verbosity < 1:
            return
        counts = result.counts
        labels = dict(LABELS, fixable="fixed" if result.applied else "would fix")
        summary = ", ".join(f"{counts[c]:,} {labels[c]}" for c in CATEGORIES)
        calls = f"; {result.api_calls} Admin API calls" if result.checked_remote else ""
        head = "Repaired" if result.applied else "Dry run"
        self.stdout.write(
            f"{head} on {result.database}: {result.values_scanned:,} media values in "
            f"{len(result.columns)} fields: {summary} ({counts['empty']:,} empty skipped{calls}) "
            f"in {result.seconds:.1f} s."
        )
        for category in CATEGORIES[1:]:
            for example in result.examples[category] if verbosity == 1 else []:
                self.stdout.write(f"  e.g. {labels[category]}: {self.describe(example)}")
        if result.applied:
            line = f"Fixed {result.fixed:,}"
            if result.changed_concurrently:
                line += (
                    f"; {result.changed_concurrently:,} changed by someone else meanwhile, left as they are"
                )
            if result.uploads:
                line += f"; {result.uploads:,} uploaded from MEDIA_ROOT"
            if result.undo_log_stored_in:
                line += f". Undo log: {result.undo_log} in the {result.undo_log_stored_in}."
            else:
                line += f". Undo log: {result.undo_log}." if result.undo_log else "."
            self.stdout.write(self.style.SUCCESS(line))
        elif counts["fixable"]:
            self.stdout.write("Nothing was written. Run with --apply to repair.")
        if result.report_file:
            self.stdout.write(f"Every value: {result.report_file}")
        return

    @staticmethod
    def describe(row: dict) -> str:
        new = f" -> {row['new']}" if row["new"] else ""
        return f"{row['model']}.{row['field']} pk={row['pk']}: {row['old']!r}{new} ({row['reason']})"

    def print_row(self, row):
        new = f" -> {row.new}" if row.new else ""
        self.stdout.write(
            f"{row.category}: {row.model}.{row.field} pk={row.pk}: {row.old!r}{new} ({row.reason})"
        )

    def print_undo(self, result: UndoResult, options: dict) -> None:
        if options["format"] == "json":
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] >= 1:
            verb = "Restored" if result.applied else "Would restore"
            self.stdout.write(
                f"{verb} {result.restored:,} of {result.entries:,} values in {result.database}; "
                f"{result.skipped:,} changed since the repair, left as they are."
            )
            if not result.applied and result.restored:
                self.stdout.write("Nothing was written. Run with --apply to restore.")
