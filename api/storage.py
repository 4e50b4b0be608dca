"""Where documents (announcement attachments: PDFs and the like) are stored.

django-cloudinary-storage's default media storage uploads everything as Cloudinary's ``image``
resource type, which refuses a PDF. Documents therefore go to its ``raw`` storage when media are on
Cloudinary, and to the default storage otherwise. The choice is made when a file is first handled,
not at import, so a change of ``STORAGES`` (a test, ``override_settings``) is honoured.
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

CLOUDINARY_MEDIA_BACKEND = "cloudinary_storage.storage.MediaCloudinaryStorage"

if TYPE_CHECKING:
    _LazyStorage = LazyObject[Storage]
else:  # LazyObject is generic only in the type stubs.
    _LazyStorage = LazyObject


class _DocumentStorage(_LazyStorage):
    def _setup(self) -> None:
        if settings.STORAGES["default"]["BACKEND"] == CLOUDINARY_MEDIA_BACKEND:
            from cloudinary_storage.storage import RawMediaCloudinaryStorage

            self._wrapped = RawMediaCloudinaryStorage()
        else:
            self._wrapped = default_storage


document_storage: Storage = _DocumentStorage()  # type: ignore[assignment]


def get_document_storage() -> Storage:
    """The documents' storage (a callable, so migrations record a reference, not an instance)."""
    return document_storage


@receiver(setting_changed)
def _forget_document_storage(*, setting: str, **kwargs: Any) -> None:
    if setting in {"STORAGES", "MEDIA_ROOT", "MEDIA_URL", "CLOUDINARY_STORAGE"}:
        document_storage._wrapped = empty  # type: ignore[attr-defined]
