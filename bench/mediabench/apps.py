from django.apps import AppConfig


class MediaBenchConfig(AppConfig):
    name = "bench.mediabench"
    label = "mediabench"
    default_auto_field = "django.db.models.BigAutoField"
