import json
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections

from ops.backup import run_backup
from ops.errors import OpsError, as_command_error
from ops.progress import ProgressPrinter


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class Command(BaseCommand):
    help = "Back up the whole database into one consistent, checksummed, compressed archive."

    def add_arguments(self, parser):
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to back up. Defaults to the "default" database.',
        )
        parser.add_argument(
            "-o",
            "--output",
            default=None,
            help="Write the archive to this file (or into this folder), or to standard output with -. "
            "Default: the backup repository (OPS['BACKUP_DIR'] locally).",
        )
        parser.add_argument(
            "--include", action="append", default=[], metavar="APP_OR_MODEL", help="Only these apps/models."
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="APP_OR_MODEL",
            help="Leave these apps/models out.",
        )
        parser.add_argument(
            "--reason", default="manual", help="A word in the backup's name (daily, pre-deploy)."
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args, **options):
        to_stdout = options["output"] == "-"
        # With -o -, standard output carries the archive: everything else goes to stderr.
        messages = self.stderr if to_stdout else self.stdout
        progress = ProgressPrinter(
            messages.write,
            tty=messages.isatty(),
            verbosity=options["verbosity"] if options["format"] == "text" else 0,
        )
        stream: Any = None
        if to_stdout:
            raw = self.stdout._out
            stream = getattr(raw, "buffer", raw)
        try:
            result = run_backup(
                options["database"],
                output=options["output"],
                stream=stream,
                include=options["include"],
                exclude=options["exclude"],
                reason=options["reason"],
                progress=progress,
            )
        except OpsError as error:
            raise as_command_error(error) from None
        finally:
            progress.done()
        if stream is not None:
            stream.flush()
        if options["format"] == "json":
            messages.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] >= 1:
            messages.write(
                self.style.SUCCESS(
                    f"Backup {result.name}: {human_size(result.size)}, {result.tables} tables, "
                    f"{result.rows:,} rows in {result.seconds:.1f} s ({result.location})."
                )
            )
