import uuid

from cloudinary.models import CloudinaryField
from django.db import models

from api.storage import get_document_storage


class Poster(models.Model):
    """A UUID primary key, an image, a document (raw on Cloudinary) and the SDK's own field."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    title = models.CharField(max_length=80, blank=True)
    picture = models.ImageField(upload_to="posters/", blank=True, max_length=255)
    leaflet = models.FileField(upload_to="leaflets/", storage=get_document_storage, blank=True, null=True)
    sdk_image = CloudinaryField("image", blank=True, null=True)

    def __str__(self) -> str:
        return self.title
