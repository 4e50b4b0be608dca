from django.db import migrations, models


class Migration(migrations.Migration):
    """Written after the squash: what a restore migrates forward to from a squashed history."""

    dependencies = [("squashapp", "0001_squashed_0003_seed_widget")]

    operations = [
        migrations.AddField(model_name="widget", name="colour", field=models.CharField(max_length=20, default="")),
    ]
