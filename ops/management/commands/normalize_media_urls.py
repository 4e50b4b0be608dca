from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.media.normalize import NormalizeRequest, normalize_media_urls, row_line


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
            "--no-verify",
            action="store_false",
            dest="verify",
            help="Repair by shape alone, without looking the new names up in the media storage "
            "(no Admin API calls; a repair may point at no file).",
        )
        parser.add_argument(
            "--check-remote",
            action="store_true",
            help="Also look up names already canonical on Cloudinary (bulk Admin API calls) and report "
            "missing ones as broken. Local disk is always checked.",
        )
        parser.add_argument(
            "--upload-missing",
            action="store_true",
            help="Upload files missing from Cloudinary but still in MEDIA_ROOT, and store their names "
            "(implies --check-remote; django-cloudinary-storage fields and CloudinaryField columns).",
        )
        parser.add_argument(
            "--no-wait",
            action="store_false",
            dest="wait",
            help="With --apply: refuse at once, instead of waiting, while a restore of the database runs.",
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
        try:
            outcome = normalize_media_urls(
                NormalizeRequest(
                    database=options["database"],
                    apps=tuple(options["apps"]),
                    models=tuple(options["models"]),
                    apply=options["apply"],
                    verify=options["verify"],
                    check_remote=options["check_remote"],
                    upload_missing=options["upload_missing"],
                    report_path=options["report"],
                    resume_from=options["resume_from"],
                    undo=options["undo"],
                    wait=options["wait"],
                ),
                confirm=self.confirm if options["interactive"] else None,
                on_row=self.print_row if verbosity >= 2 and options["format"] == "text" else None,
                on_wait=lambda message: self.stderr.write(self.style.WARNING(message)),
            )
        except OpsError as error:
            raise as_command_error(error) from None
        for warning in outcome.warnings():
            self.stderr.write(self.style.WARNING(warning))
        for style, line in outcome.lines(verbosity, options["format"]):
            self.stdout.write(self.style.SUCCESS(line) if style == "success" else line)

    def print_row(self, row):
        self.stdout.write(row_line(row))
