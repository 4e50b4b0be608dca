from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    """A preschool-shaped data set for bench/bench_backup_restore.py (indexes, FKs, text, JSON)."""

    name = "bench.benchapp"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"
