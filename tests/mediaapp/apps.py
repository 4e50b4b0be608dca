from django.apps import AppConfig


class MediaAppConfig(AppConfig):
    """A second, differently shaped set of file fields for normalize_media_urls (tests only)."""

    name = "tests.mediaapp"
    label = "mediaapp"
    default_auto_field = "django.db.models.BigAutoField"
