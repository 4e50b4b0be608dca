import json

from django.core.management.base import CommandError

from ops.command import FORMAT_HELP, OpsCommand
from ops.errors import OpsError, as_command_error
from ops.health import runner as health


class Command(OpsCommand):
    help = "Check the database, migrations, media storage, disk, memory, database size and backup age."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="append",
            dest="checks",
            metavar="NAME",
            help="Run only this check (repeatable). Defaults to every check in OPS['HEALTH_CHECKS'].",
        )
        parser.add_argument(
            "--fail-on-warning", action="store_true", help="Count warnings as failures (exit 1)."
        )
        parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)

    def handle(self, *args, **options):
        try:
            checks = health.configured_checks(options["checks"])
        except OpsError as error:
            raise as_command_error(error) from None
        report = health.run_checks(checks)
        fail_on_warning = options["fail_on_warning"]
        verbosity = options["verbosity"]
        if options["format"] == "json":
            self.stdout.write(json.dumps(report.as_dict(fail_on_warning=fail_on_warning), indent=2))
        elif verbosity >= 1:
            for line in health.text_lines(report, verbosity=verbosity):
                self.stdout.write(line)
        unhealthy = report.unhealthy_names(fail_on_warning=fail_on_warning)
        if unhealthy:
            raise CommandError(f"Unhealthy: {', '.join(unhealthy)}.", returncode=1)
        if verbosity >= 1 and options["format"] == "text":
            self.stdout.write(self.style.SUCCESS(f"Healthy: {len(report.results)} checks passed."))
