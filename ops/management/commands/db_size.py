import json

from django.db import DEFAULT_DB_ALIAS, connections

from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.health import db_size


class Command(OpsCommand):
    help = "Show how full the database is, its largest tables, its growth and when it reaches the plan limit."

    def add_arguments(self, parser):
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to measure. Defaults to the "default" database.',
        )
        parser.add_argument("--top", type=int, default=None, help="Show only the N largest tables.")
        parser.add_argument(
            "--exact", action="store_true", help="Count the rows of the shown tables (scans them)."
        )
        parser.add_argument(
            "--record", action="store_true", help="Store this measurement as a sample for growth."
        )
        parser.add_argument("--media", action="store_true", help="Add Cloudinary's usage (one API call).")
        parser.add_argument(
            "--warn-at",
            type=float,
            default=None,
            help="Exit 1 with a warning at this percentage of the plan.",
        )
        parser.add_argument(
            "--fail-at",
            type=float,
            default=None,
            help="Exit 1 with a failure at this percentage of the plan.",
        )
        parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)

    def handle(self, *args, **options):
        try:
            report = db_size.report(
                options["database"],
                top=options["top"],
                exact=options["exact"],
                record=options["record"],
                media=options["media"],
                warn_at=options["warn_at"],
                fail_at=options["fail_at"],
            )
        except OpsError as error:
            raise as_command_error(error) from None
        verbosity = options["verbosity"]
        if options["format"] == "json":
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif verbosity >= 1:
            for line in db_size.text_lines(report, verbosity=verbosity):
                self.stdout.write(line)
        if options["record"] and verbosity >= 1 and options["format"] == "text":
            self.stdout.write(self.style.SUCCESS(db_size.recorded_line(report)))
        over = db_size.over_threshold(report, options["warn_at"], options["fail_at"])
        if over is not None:
            raise as_command_error(over)
