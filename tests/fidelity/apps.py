from django.apps import AppConfig


class FidelityConfig(AppConfig):
    """Models that exercise every field type, for backup -> restore round trips (tests only)."""

    name = "tests.fidelity"
    label = "fidelity"
    default_auto_field = "django.db.models.BigAutoField"
