from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("This migration fails on purpose (tests/render_broken_migration): a bad release.")


class Migration(migrations.Migration):
    initial = True
    dependencies = [("api", "__first__")]
    # A table first, then the failure: the replay checks the table is not left behind.
    operations = [
        migrations.RunSQL(
            "CREATE TABLE render_broken_migration_doomed (id integer)",
            "DROP TABLE render_broken_migration_doomed",
        ),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
