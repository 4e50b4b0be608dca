from django.apps import AppConfig


class SquashAppConfig(AppConfig):
    """An app whose history is squashed: ``migrations`` (0001-0003) and ``migrations_squashed``
    (what ``squashmigrations squashapp 0003`` wrote, the replaced files then deleted)."""

    name = "tests.squashapp"
    label = "squashapp"
    default_auto_field = "django.db.models.BigAutoField"
