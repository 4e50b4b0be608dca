# ruff: noqa: DJ008  (benchmark models, never displayed)
from cloudinary_storage.storage import RawMediaCloudinaryStorage
from django.db import models


class Picture(models.Model):
    """Two file references a row: an image (default media storage) and a raw document."""

    title = models.CharField(max_length=80)
    image = models.ImageField(upload_to="gallery/", max_length=255, blank=True)
    document = models.FileField(
        upload_to="docs/", storage=RawMediaCloudinaryStorage(), max_length=255, blank=True, null=True
    )
