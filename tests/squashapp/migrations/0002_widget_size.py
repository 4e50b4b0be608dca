from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("squashapp", "0001_initial")]

    operations = [
        migrations.AddField(model_name="widget", name="size", field=models.IntegerField(default=0)),
    ]
