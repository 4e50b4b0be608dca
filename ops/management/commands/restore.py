import json
import sys
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from ops.alerts import alerting
from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.progress import ProgressPrinter
from ops.restore import check_restore_options, run_restore

if TYPE_CHECKING:
    from ops.media.backup import MediaRestoreResult


class Command(OpsCommand):
    help = "Replace the database with a verified backup, then migrate it forward."

    def add_arguments(self, parser):
        parser.add_argument(
            "source", nargs="?", help="A backup's name in the repository, a file, or - for stdin."
        )
        parser.add_argument(
            "--latest",
            action="store_true",
            help="Restore the newest full backup that holds data (never a safety or partial one).",
        )
        parser.add_argument(
            "--undo",
            action="store_true",
            help="Restore the newest safety backup of this database: what the last restore replaced.",
        )
        parser.add_argument(
            "--allow-unencrypted",
            action="store_true",
            help="Restore an unencrypted backup although a decryption key is configured.",
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
        parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)

    def confirm(self, database, partial=None):
        replaced = (
            f"This is a partial backup: it will REPLACE the rows of {partial} (a safety backup is "
            "taken first)."
            if partial
            else "This will REPLACE ALL DATA currently in it (a safety backup is taken first)."
        )
        self.stdout.write(
            f"You have requested a restore of database {database!r}.\n"
            f"{replaced}\n"
            f"Type 'yes' to restore {database!r}, or 'no' to cancel: "
        )
        try:
            return input() == "yes"
        except EOFError:
            return False

    @alerting("restore")
    def handle(self, *args, **options):
        source = options["source"]
        try:
            check_restore_options(
                source=source,
                latest=options["latest"],
                undo=options["undo"],
                if_empty=options["if_empty"],
                include_empty=options["include_empty"],
                media=options["media"],
                media_only=options["media_only"],
                dry_run=options["dry_run"],
            )
        except OpsError as error:
            raise as_command_error(error) from None
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
                undo=options["undo"],
                allow_unencrypted=options["allow_unencrypted"],
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
        if result.warning and not result.restored:
            self.stderr.write(self.style.WARNING(result.message))
        elif not result.restored:
            if options["verbosity"] >= 1:
                self.stdout.write(result.message)
        elif options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(result.summary_line()))
            for note in result.notes:
                self.stdout.write(note)
        if result.warning and result.restored:
            self.stderr.write(self.style.WARNING(result.message))
        if options["media"] and result.restored:
            self.restore_media(options, result.name, restored_database=True)

    def restore_media(
        self, options: dict[str, Any], name: str | None, *, restored_database: bool = False
    ) -> "MediaRestoreResult | None":
        # Imported here: a restore without --media does not pay for the media modules (and the
        # Cloudinary SDK) at every start.
        from ops.media.backup import restore_media, restored_media_text

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
            self.stdout.write(restored_media_text(media))
        if media.unavailable or media.failed or media.unsafe:
            self.stderr.write(
                self.style.WARNING(
                    f"Media: {media.unavailable + media.failed + media.unsafe} files could not be restored"
                    + ("" if verbose else " (-v 2 names them)")
                    + "."
                )
            )
        if media.failed and not restored_database:
            raise CommandError(
                "Some media uploads failed; run the command again to retry them.", returncode=1
            )
        return media
