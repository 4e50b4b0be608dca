from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing registers the system checks (ops.health.runner: the health view's token, ops.W010).
        from ops import checks  # noqa: F401
        from ops.health import runner  # noqa: F401
