from django.db import migrations


def fail(apps, schema_editor):
    Widget = apps.get_model("squashapp", "Widget")
    Widget.objects.using(schema_editor.connection.alias).update(size=-1)
    raise RuntimeError("this data migration fails halfway")


class Migration(migrations.Migration):
    """The code's newest migration, failing after it wrote: a restore migrating forward must roll back."""

    dependencies = [("squashapp", "0003_seed_widget")]

    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
