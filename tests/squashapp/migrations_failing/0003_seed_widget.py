from django.db import migrations


def seed(apps, schema_editor):
    Widget = apps.get_model("squashapp", "Widget")
    Widget.objects.using(schema_editor.connection.alias).create(name="seeded by a data migration", size=1)


class Migration(migrations.Migration):
    dependencies = [("squashapp", "0002_widget_size")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop, elidable=True)]
