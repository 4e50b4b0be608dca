import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from ops.errors import OpsError, as_command_error
from ops.media.backup import MediaRestoreResult, restore_media
from ops.progress import ProgressPrinter
from ops.restore import run_restore


class Command(BaseCommand):
    help = "Replace the database with a verified backup, then migrate it forward."

    def add_arguments(self, parser):
        parser.add_argument(
            "source", nargs="?", help="A backup's name in the repository, a file, or - for stdin."
        )
        parser.add_argument(
            "--latest", action="store_true", help="Restore the newest backup that holds data."
        )
        parser.add_argument(
            "--include-empty",
            action="store_true",
            help="With --latest: the newest backup even if it is of an empty database.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to restore into. Defaults to the "default" database. Either engine, '
            "whatever the backup's: a PostgreSQL backup restores into SQLite (pull production into "
            "local development) and a SQLite one into PostgreSQL.",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask before replacing a database that holds data.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Restore only if the database holds no user data; otherwise exit 0 and say so.",
        )
        parser.add_argument(
            "--no-migrate", action="store_false", dest="migrate", help="Stay at the backup's migrations."
        )
        parser.add_argument(
            "--media",
            action="store_true",
            help="After restoring, upload the media files the backup references that the media "
            "storage lacks (from the backup's stored files, else MEDIA_ROOT). Safe to repeat.",
        )
        parser.add_argument(
            "--media-only",
            action="store_true",
            help="Only the media step of --media: leave the database as it is.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --media-only: say what would be uploaded, upload nothing.",
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def confirm(self, database):
        self.stdout.write(
            f"You have requested a restore of database {database!r}.\n"
            "This will REPLACE ALL DATA currently in it (a safety backup is taken first).\n"
            f"Type 'yes' to restore {database!r}, or 'no' to cancel: "
        )
        try:
            return input() == "yes"
        except EOFError:
            return False

    def handle(self, *args, **options):
        if bool(options["source"]) == options["latest"]:
            raise CommandError("Name a backup (or a file, or -) or use --latest, not both.", returncode=2)
        if options["include_empty"] and not options["latest"]:
            raise CommandError("--include-empty goes with --latest.", returncode=2)
        source = options["source"]
        if (options["media"] or options["media_only"]) and (
            source == "-" or (source and Path(source).is_file())
        ):
            raise CommandError(
                "--media and --media-only read a backup in the repository (its media manifest): "
                "name one, or use --latest.",
                returncode=2,
            )
        if options["dry_run"] and not options["media_only"]:
            raise CommandError("--dry-run goes with --media-only.", returncode=2)
        if options["media_only"]:
            self.restore_media(options, source)
            return
        progress = ProgressPrinter(
            self.stdout.write,
            tty=self.stdout.isatty(),
            verbosity=options["verbosity"] if options["format"] == "text" else 0,
        )
        try:
            result = run_restore(
                options["database"],
                options["source"],
                latest=options["latest"],
                confirm=self.confirm if options["interactive"] else None,
                if_empty=options["if_empty"],
                migrate=options["migrate"],
                stdin=sys.stdin.buffer,
                progress=progress,
                include_empty=options["include_empty"],
            )
        except OpsError as error:
            raise as_command_error(error) from None
        finally:
            progress.done()
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(warning))
        if options["format"] == "json":
            data = result.as_dict()
            if options["media"] and result.restored:
                media = self.restore_media(options, result.name, restored_database=True)
                data["media"] = media.as_dict() if media else None
            self.stdout.write(json.dumps(data, indent=2))
            return
        if result.warning:
            self.stderr.write(self.style.WARNING(result.message))
        elif not result.restored:
            if options["verbosity"] >= 1:
                self.stdout.write(result.message)
        elif options["verbosity"] >= 1:
            safety = f"; safety backup {result.safety_backup}" if result.safety_backup else ""
            self.stdout.write(
                self.style.SUCCESS(
                    f"Restored {result.name} into {result.database}: {result.tables} tables, "
                    f"{result.rows:,} rows in {result.seconds:.1f} s{safety}."
                )
            )
        if options["media"] and result.restored:
            self.restore_media(options, result.name, restored_database=True)

    def restore_media(
        self, options: dict[str, Any], name: str | None, *, restored_database: bool = False
    ) -> MediaRestoreResult | None:
        verbose = options["verbosity"] >= 2 and options["format"] == "text"
        try:
            media = restore_media(
                options["database"],
                None if options["latest"] and not restored_database else name,
                latest=options["latest"] and not restored_database,
                include_empty=options["include_empty"],
                dry_run=options["dry_run"],
                on_problem=(lambda text: self.stderr.write(f"  {text}")) if verbose else None,
            )
        except OpsError as error:
            if not restored_database:
                raise as_command_error(error) from None
            # The database is restored: a start command must still start the site (Cloudinary
            # out of Admin API calls at boot is no reason to stay down). Warn; it can be retried.
            self.stderr.write(
                self.style.WARNING(
                    f"The database was restored, but the media step failed: {error} "
                    f"Run `restore {name} --media-only` to retry it."
                )
            )
            return None
        if options["format"] == "json":
            if not restored_database:  # else the caller prints it with the restore's result
                self.stdout.write(json.dumps({"media": media.as_dict()}, indent=2))
        elif options["verbosity"] >= 1:
            self.stdout.write(media_summary(media))
        if media.unavailable or media.failed:
            self.stderr.write(
                self.style.WARNING(
                    f"Media: {media.unavailable + media.failed} files could not be restored"
                    + ("" if verbose else " (-v 2 names them)")
                    + "."
                )
            )
        if media.failed and not restored_database:
            raise CommandError(
                "Some media uploads failed; run the command again to retry them.", returncode=1
            )
        return media


def media_summary(media: MediaRestoreResult) -> str:
    action = "would restore" if media.dry_run else "restored"
    sources = f" ({media.from_backup} from the backup, {media.from_media_root} from MEDIA_ROOT)"
    extra = [f"{media.unavailable} unavailable"]
    if media.missing_at_backup:
        extra.append(f"{media.missing_at_backup} already missing when the backup was taken")
    if media.failed:
        extra.append(f"{media.failed} failed")
    if media.not_installed:
        extra.append(f"{media.not_installed} of fields no longer installed")
    calls = f"; {media.api_calls} Admin API calls" if media.api_calls else ""
    return (
        f"Media of {media.backup}: {media.files} files referenced: {media.restored} {action}{sources}, "
        f"{media.already_present} already present, {', '.join(extra)}{calls}."
    )
