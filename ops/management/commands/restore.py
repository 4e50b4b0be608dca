import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from ops.errors import OpsError, as_command_error
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
            help='The database to restore into. Defaults to the "default" database.',
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
        if options["format"] == "json":
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif result.warning:
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
