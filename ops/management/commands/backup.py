import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DEFAULT_DB_ALIAS, connections

from ops.backup import BackupResult, run_backup
from ops.errors import OpsError, as_command_error
from ops.media.backup import verify_media
from ops.progress import ProgressPrinter
from ops.repository.backups import configured_repository
from ops.repository.listing import backup_record, backups_table, damage_lines, human_size, leftover_lines
from ops.repository.prune import PruneResult, prune_repository
from ops.repository.verify import verify_backup


def media_text(media: dict[str, Any]) -> str:
    """What the summary line says of a backup's media (ops/media/backup.py): counts only."""
    problems = [f"{media[key]} {key}" for key in ("missing", "unchecked") if media.get(key)]
    state = f"; {', '.join(problems)}" if problems else ""
    stored = f", {media['stored_files']} stored" if media.get("with_files") else ""
    calls = f"; {media['api_calls']} Admin API calls" if media.get("api_calls") else ""
    return (
        f"media: {media['files']} files referenced ({human_size(int(media['bytes']))}{state}){stored}{calls}"
    )


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
            "--latest", action="store_true", help="With --verify: the newest backup that holds data."
        )
        parser.add_argument(
            "--include-empty",
            action="store_true",
            help="With --verify --latest: also consider backups of an empty database.",
        )

    def handle(self, *args, **options):
        chosen = {
            "--list": options["list"],
            "--verify": options["verify"] is not None,
            "--prune-only": options["prune_only"],
        }
        modes = [flag for flag, on in chosen.items() if on]
        if len(modes) > 1 or (modes and options["output"] is not None):
            taken = [*modes, "-o"] if options["output"] is not None else modes
            raise CommandError(f"{' and '.join(taken)} cannot be combined: choose one.", returncode=2)
        if options["dry_run"] and not (options["prune"] or options["prune_only"]):
            raise CommandError("--dry-run goes with --prune or --prune-only.", returncode=2)
        if options["prune"] and (modes or options["output"] is not None):
            raise CommandError("--prune prunes the repository after a backup into it: drop -o.", returncode=2)
        if options["with_media"] and (modes or options["output"] is not None):
            raise CommandError(
                "--with-media stores the files beside a backup in the repository: drop -o, --list, "
                "--verify and --prune-only.",
                returncode=2,
            )
        if not options["encrypt"] and options["output"] is None:
            raise CommandError(
                "--no-encrypt goes with -o (repository backups follow its policy).", returncode=2
            )
        if options["latest"] and options["verify"] is None:
            raise CommandError("--latest goes with --verify (restore --latest restores).", returncode=2)
        if options["include_empty"] and not options["latest"]:
            raise CommandError("--include-empty goes with --verify --latest.", returncode=2)
        if options["verify"] is not None and bool(options["verify"]) == options["latest"]:
            raise CommandError("Name the backup to verify, or use --latest, not both.", returncode=2)
        try:
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
            self.stdout.write(json.dumps([backup_record(backup) for backup in backups], indent=2))
            return
        if not backups and not (options["verbosity"] >= 2 and repository.leftovers()):
            self.stdout.write(f"No backups in the {repository.description}.")
            return
        for line in backups_table(backups):
            self.stdout.write(line)
        for line in damage_lines(backups):
            self.stderr.write(self.style.WARNING(line))
        if options["verbosity"] >= 2:
            for line in leftover_lines(repository.leftovers()):
                self.stdout.write(line)
        if options["verbosity"] >= 1:
            complete = [backup for backup in backups if backup.complete]
            empty = sum(1 for backup in complete if not backup.holds_data)
            note = f" ({empty} of an empty database)" if empty else ""
            self.stdout.write(f"{len(complete)} backup(s){note} in the {repository.description}.")

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
            encrypted = "encrypted, " if result.encrypted else ""
            data = "" if result.holds_data else "; it holds no user data"
            if media is not None:
                data += f"; media: {media.files} files listed, {media.stored_files} stored"
            self.stdout.write(
                self.style.SUCCESS(
                    f"Backup {result.name} is intact: {result.parts} part(s), {human_size(result.size)}, "
                    f"{encrypted}{result.tables} tables, {result.rows:,} rows, every checksum "
                    f"matches{data}."
                )
            )

    def prune(self, options: dict[str, Any], report: dict[str, Any]) -> None:
        result = prune_repository(configured_repository(options["database"]), dry_run=options["dry_run"])
        if options["format"] == "json":
            self.stdout.write(json.dumps({**report, "prune": result.as_dict()}, indent=2))
        else:
            self.print_prune(result, options["verbosity"])
        if result.failed:
            names = ", ".join(entry.name for entry in result.failed)
            raise CommandError(
                f"Pruning could not delete {names} (see above); the other backups were pruned. "
                "Run the prune again later; the backups are still listed until then.",
                returncode=1,
            )

    def print_prune(self, result: PruneResult, verbosity: int) -> None:
        for entry in result.failed:
            self.stderr.write(f"Could not delete {entry.name}: {entry.error}")
        if result.dry_run or verbosity >= 2:
            for item in result.leftovers:
                action = "would delete" if result.dry_run else "deleted"
                self.stdout.write(f"  {action:<12}  {item.key}  leftover of a killed write, over an hour old")
            width = max((len(entry.name) for entry in result.entries), default=0)
            for entry in result.entries:
                if entry.action == "keep":
                    action = "keep"
                elif result.dry_run:
                    action = "would delete"
                else:
                    action = "deleted" if entry.deleted else "NOT deleted"
                self.stdout.write(f"  {action:<12}  {entry.name:<{width}}  {entry.reason}")
        if verbosity >= 1:
            freed = human_size(sum(entry.size for entry in result.to_delete))
            if result.dry_run:
                summary = (
                    f"Dry run: would delete {len(result.to_delete)} and keep {len(result.kept)} "
                    f"backup(s) in the {result.location} ({freed}); nothing was deleted."
                )
            else:
                summary = (
                    f"Pruned the {result.location}: deleted {len(result.deleted)} backup(s) ({freed}), "
                    f"kept {len(result.kept)}."
                )
            self.stdout.write(summary)

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
                self.print_backup(messages, result)
            self.prune(options, result.as_dict() if options["format"] == "json" else {})
        elif options["format"] == "json":
            messages.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] >= 1:
            self.print_backup(messages, result)

    def print_backup(self, messages: OutputWrapper, result: BackupResult) -> None:
        media = f"; {media_text(result.media)}" if result.media and result.media["files"] else ""
        # -o: whether the file is encrypted, in the line people read (ops/backup.py says why).
        note = f"; {result.message}" if result.message else ""
        messages.write(
            self.style.SUCCESS(
                f"Backup {result.name}: {human_size(result.size)}, {result.tables} tables, "
                f"{result.rows:,} rows in {result.seconds:.1f} s ({result.location}){media}{note}."
            )
        )
