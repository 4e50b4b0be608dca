"""django-cloudinary-storage 0.3.0 (the project's media backend) against the Cloudinary emulator.

Everything goes through Django's storage API and the real ``cloudinary`` SDK over HTTP; the
``cloudinary_settings`` fixture sets CLOUDINARY_STORAGE and STORAGES["default"] as production does.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from PIL import Image

from api.models import Teacher
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.cloudinary_emulator.fixtures import CloudinaryTarget


def png_bytes(width: int = 16, height: int = 9) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "purple").save(buffer, format="PNG")
    return buffer.getvalue()


def test_media_storage__is_the_cloudinary_backend_aimed_at_the_emulator(
    cloudinary_settings: CloudinaryTarget, cloudinary_emulator: CloudinaryEmulator
) -> None:
    from cloudinary_storage.storage import MediaCloudinaryStorage

    assert isinstance(storages["default"], MediaCloudinaryStorage)
    name = default_storage.save("teachers/ada.png", ContentFile(png_bytes()))

    assert default_storage.url(name).startswith(
        f"{cloudinary_emulator.base_url}/{cloudinary_emulator.cloud_name}/"
    )


def test_media_storage__save_url_open_size_exists_delete_round_trip(
    cloudinary_settings: CloudinaryTarget, settings: Any
) -> None:
    image = png_bytes()

    name = default_storage.save("teachers/ada.png", ContentFile(image))

    # Saved under MEDIA_URL's prefix, with Cloudinary's random suffix and no extension (format is apart).
    assert name.startswith("media/teachers/ada_")
    assert "." not in name.rsplit("/", 1)[-1]
    assert f"/image/upload/v1/{name}" in default_storage.url(name)
    assert default_storage.exists(name)
    assert default_storage.size(name) == len(image)
    with default_storage.open(name) as opened:
        assert opened.read() == image

    default_storage.delete(name)

    assert not default_storage.exists(name)
    with pytest.raises(IOError):  # noqa: PT011 - django-cloudinary-storage raises a bare IOError on 404
        default_storage.open(name)


def test_media_storage__missing_file_does_not_exist(cloudinary_settings: CloudinaryTarget) -> None:
    assert not default_storage.exists("media/teachers/nobody")
    assert default_storage.size("media/teachers/nobody") is None


def test_media_storage__upload_is_tagged_and_listed_by_directory(
    cloudinary_settings: CloudinaryTarget, cloudinary_emulator: CloudinaryEmulator
) -> None:
    first = default_storage.save("gallery/covers/a.png", ContentFile(png_bytes()))
    second = default_storage.save("gallery/b.png", ContentFile(png_bytes()))

    stored = {resource.public_id: resource for resource in cloudinary_emulator.resources("image")}
    assert set(stored) == {first, second}
    assert all(resource.tags == ("media",) for resource in stored.values())
    directories, files = default_storage.listdir("media/gallery/")
    assert directories == ["covers"]
    assert files == [second.rsplit("/", 1)[-1]]


def test_media_storage__cloudinary_failure_surfaces_as_an_exception(
    cloudinary_settings: CloudinaryTarget, cloudinary_emulator: CloudinaryEmulator
) -> None:
    import cloudinary.exceptions

    cloudinary_emulator.inject_fault("http_503", endpoints=["upload"])

    with pytest.raises(cloudinary.exceptions.GeneralError):
        default_storage.save("teachers/unlucky.png", ContentFile(png_bytes()))
    assert cloudinary_emulator.resources() == []


@pytest.mark.django_db
def test_image_field__saved_model_keeps_a_public_id_that_serves_the_image(
    cloudinary_settings: CloudinaryTarget,
) -> None:
    image = png_bytes(20, 20)
    teacher = Teacher(name="Ada Lovelace", slug="ada-lovelace")
    teacher.photo.save("ada.png", ContentFile(image), save=True)

    reloaded = Teacher.objects.get(pk=teacher.pk)
    public_id = reloaded.photo.name
    assert public_id is not None

    assert public_id.startswith("media/teachers/ada_")
    assert reloaded.photo.width == 20
    with reloaded.photo.open() as opened:
        assert opened.read() == image
    assert reloaded.photo.storage.exists(public_id)

    reloaded.photo.delete(save=True)

    assert Teacher.objects.get(pk=teacher.pk).photo.name == ""
    assert not default_storage.exists(public_id)
