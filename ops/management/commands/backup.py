import json
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from ops.alerts import alerting
from ops.backup import check_backup_options, run_backup
from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.media.backup import verify_media
from ops.progress import ProgressPrinter
from ops.repository.backups import configured_repository
from ops.repository.listing import backup_records, damage_lines, listing_lines
from ops.repository.prune import prune_repository
from ops.repository.verify import verify_backup


class Command(OpsCommand):
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
        parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
        parser.add_argument(
            "--force",
            action="store_true",
            help="Back up into the repository even when the database holds no user data "
            "(such a backup is otherwise skipped with a warning, exit 0). With -o PATH: replace "
            "an existing regular file.",
        )
        parser.add_argument(
            "--no-encrypt",
            action="store_false",
            dest="encrypt",
            help="With -o: write the file in plaintext even when age recipients are configured.",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="After the backup, delete the backups the retention policy (OPS['BACKUP_KEEP_*']) "
            "does not keep.",
        )
        parser.add_argument(
            "--prune-only", action="store_true", help="Apply the retention policy without backing up."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --prune/--prune-only: show what would be kept and deleted, and why; delete nothing.",
        )
        parser.add_argument(
            "--list", action="store_true", help="List the backups in the repository instead of backing up."
        )
        parser.add_argument(
            "--with-media",
            action="store_true",
            help="Also store the media files the database references (every repository backup "
            "records their manifest; this adds their bytes).",
        )
        parser.add_argument(
            "--verify",
            nargs="?",
            const="",
            metavar="NAME",
            help="Download, decrypt and check every checksum of backup NAME (or --latest) without "
            "touching the database; exit 1 if anything is wrong.",
        )
        parser.add_argument(
            "--latest",
            action="store_true",
            help="With --verify: the newest full backup that holds data.",
        )
        parser.add_argument(
            "--include-empty",
            action="store_true",
            help="With --verify --latest: also consider backups of an empty database.",
        )

    @alerting("backup")
    def handle(self, *args, **options):
        try:
            check_backup_options(
                list_backups=options["list"],
                verify=options["verify"],
                prune_only=options["prune_only"],
                output=options["output"],
                dry_run=options["dry_run"],
                prune=options["prune"],
                with_media=options["with_media"],
                encrypt=options["encrypt"],
                latest=options["latest"],
                include_empty=options["include_empty"],
            )
            if options["list"]:
                self.list_backups(options)
            elif options["verify"] is not None:
                self.verify(options)
            elif options["prune_only"]:
                self.prune(options, {})
            else:
                self.backup(options)
        except OpsError as error:
            raise as_command_error(error) from None

    def list_backups(self, options: dict[str, Any]) -> None:
        repository = configured_repository(options["database"])
        backups = repository.backups(include_incomplete=options["verbosity"] >= 2)
        if options["format"] == "json":
            self.stdout.write(json.dumps(backup_records(backups), indent=2))
            return
        leftovers = repository.leftovers() if options["verbosity"] >= 2 else ()
        location, verbosity = repository.description, options["verbosity"]
        for line in listing_lines(backups, location, verbosity=verbosity, leftovers=leftovers):
            self.stdout.write(line)
        for line in damage_lines(backups):
            self.stderr.write(self.style.WARNING(line))

    def verify(self, options: dict[str, Any]) -> None:
        repository = configured_repository(options["database"])
        result = verify_backup(
            repository,
            options["verify"] or None,
            latest=options["latest"],
            include_empty=options["include_empty"],
        )
        # The media stream too (files listed and stored, every checksum); None: it records none.
        media = verify_media(repository, result.backup)
        if options["format"] == "json":
            media_dict = None if media is None else vars(media)
            self.stdout.write(json.dumps({**result.as_dict(), "media": media_dict}, indent=2))
        elif options["verbosity"] >= 1:
            counts = None if media is None else (media.files, media.stored_files)
            self.stdout.write(self.style.SUCCESS(result.summary_line(counts)))

    def prune(self, options: dict[str, Any], report: dict[str, Any]) -> None:
        result = prune_repository(configured_repository(options["database"]), dry_run=options["dry_run"])
        if options["format"] == "json":
            self.stdout.write(json.dumps({**report, "prune": result.as_dict()}, indent=2))
        else:
            for line in result.failure_lines():
                self.stderr.write(line)
            for line in result.lines(options["verbosity"]):
                self.stdout.write(line)
        failure = result.failure()
        if failure is not None:
            raise failure

    def backup(self, options: dict[str, Any]) -> None:
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
                skip_empty=not options["force"],
                with_media=options["with_media"],
                overwrite=options["force"],
                encrypt=options["encrypt"],
            )
        finally:
            progress.done()
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(warning))
        for warning in (result.media or {}).get("warnings", []):
            self.stderr.write(self.style.WARNING(f"Media: {warning}"))
        if stream is not None:
            stream.flush()
        if result.skipped:
            # stderr, and exit 0: a pre-deploy backup of a freshly recreated database must not
            # cancel the deploy that will restore it.
            self.stderr.write(self.style.WARNING(result.message))
            if options["format"] == "json":
                messages.write(json.dumps(result.as_dict(), indent=2))
            return
        if options["prune"]:
            if options["format"] == "text" and options["verbosity"] >= 1:
                messages.write(self.style.SUCCESS(result.summary_line()))
            self.prune(options, result.as_dict() if options["format"] == "json" else {})
        elif options["format"] == "json":
            messages.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] >= 1:
            messages.write(self.style.SUCCESS(result.summary_line()))
