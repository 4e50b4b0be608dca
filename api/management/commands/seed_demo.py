from api.demo_data import seed_demo_data
from ops.command import OpsCommand


# The README's first command: its failures (a database down) are one line, like the ops commands'.
class Command(OpsCommand):
    help = "Create a sample set of programs, teachers, gallery, events and enquiries, once."

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        per_item = (lambda line: self.stdout.write(line)) if verbosity >= 2 else None
        result = seed_demo_data(report=per_item)
        if verbosity >= 1:
            style = self.style.SUCCESS if result.total_created else self.style.NOTICE
            self.stdout.write(style(result.summary()))
