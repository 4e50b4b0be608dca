"""Model instances as the JSON the public API returns, and the one way media become URLs.

Every file field leaves through ``public_media_url``: the site's data holds media values in several
legacy shapes (see ``parse_stored_media_value``), and a URL built any other way is how images broke
with a double prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.db.models.fields.files import FieldFile
from django.http import HttpRequest

from api.models import Announcement, Event, GalleryAlbum, GalleryImage, Program, Teacher, Testimonial

JsonDict = dict[str, Any]

# "https://", and the "https:/" left behind when something collapsed double slashes.
_URL_START = re.compile(r"(?i)https?:/+")


@dataclass(frozen=True)
class StoredMediaValue:
    """What a stored media value refers to: exactly one of ``url`` or ``storage_name`` is set."""

    url: str | None = None
    storage_name: str | None = None


def _media_path_prefix() -> str:
    # MEDIA_URL may be absolute ("https://cdn.example/media/"); stored values only carry its path.
    return urlsplit(settings.MEDIA_URL).path.strip("/")


def _repair_url(value: str) -> str:
    """``value`` (starting with a URL) as a well-formed URL, innermost URL first.

    A value that went through a storage's ``url()`` once too often holds a full URL inside the
    path of another (``.../upload/v1/media/https://res.cloudinary.com/...``): the inner one is
    the real file.
    """
    path_end = len(value.split("?", 1)[0])
    starts = [match.start() for match in _URL_START.finditer(value) if match.start() < path_end]
    innermost = value[starts[-1] :]
    scheme, rest = innermost.split(":", 1)
    return f"{scheme.lower()}://{rest.lstrip('/')}"


def parse_stored_media_value(value: str) -> StoredMediaValue | None:
    """Classify a stored media value; None when there is no file.

    The shapes found in the site's data:

    - ``gallery/x.jpg``: a storage name (the normal case);
    - ``https://res.cloudinary.com/...``: a full URL stored instead of a name;
    - ``/media/gallery/x.jpg``: a name with MEDIA_URL glued in front;
    - ``/media/https://res...`` or ``media/https:/res...``: MEDIA_URL glued in front of a full URL
      (with slashes collapsed on the way).

    A bare ``media/...`` without a URL after it stays a name: Cloudinary's storage names its
    uploads that way, and on disk it may be a real folder.
    """
    value = value.strip()
    if not value:
        return None
    if _URL_START.match(value):
        return StoredMediaValue(url=_repair_url(value))
    prefix = _media_path_prefix()
    if prefix:
        for glued in (f"/{prefix}/", f"{prefix}/"):
            if value.startswith(glued):
                remainder = value[len(glued) :]
                if _URL_START.match(remainder):
                    return StoredMediaValue(url=_repair_url(remainder))
                if glued.startswith("/"):
                    return StoredMediaValue(storage_name=remainder.lstrip("/")) if remainder else None
    return StoredMediaValue(storage_name=value.lstrip("/"))


def public_media_url(
    value: FieldFile | str | None, request: HttpRequest | None = None, storage: Storage | None = None
) -> str | None:
    """The public absolute URL of a stored media value, or None when there is no file.

    The URL comes from ``storage`` (else the field's own storage, else ``default_storage``), so it
    is right for local disk and Cloudinary alike; a value that already is a URL is returned as that
    URL, never run through the storage again. Relative URLs (FileSystemStorage's ``/media/...``)
    are made absolute with ``request``: the frontend is on another host.
    """
    if value is None:
        return None
    if isinstance(value, FieldFile):
        storage = storage or value.storage
        stored = value.name or ""
    else:
        stored = value
    parsed = parse_stored_media_value(stored)
    if parsed is None:
        return None
    if parsed.url is not None:
        url = parsed.url
    else:
        assert parsed.storage_name is not None
        url = (storage or default_storage).url(parsed.storage_name)
    if request is not None and not urlsplit(url).scheme:
        url = request.build_absolute_uri(url)
    return url


def program_to_dict(program: Program, request: HttpRequest | None) -> JsonDict:
    return {
        "public_id": str(program.public_id),
        "slug": program.slug,
        "name": program.name,
        "description": program.description,
        "age_min_years": program.age_min_years,
        "age_max_years": program.age_max_years,
        # A string: JSON numbers would round a fee through binary floating point.
        "monthly_fee": str(program.monthly_fee),
        "schedule": program.schedule,
        "capacity": program.capacity,
        "image": public_media_url(program.image, request),
    }


def teacher_to_dict(teacher: Teacher, request: HttpRequest | None) -> JsonDict:
    return {
        "slug": teacher.slug,
        "name": teacher.name,
        "role": teacher.role,
        "bio": teacher.bio,
        "photo": public_media_url(teacher.photo, request),
        # .all() so a prefetch (the views' active_programs) is used instead of a query per teacher.
        "programs": [program.slug for program in teacher.programs.all()],
        "joined_on": teacher.joined_on.isoformat() if teacher.joined_on else None,
    }


def gallery_image_to_dict(image: GalleryImage, request: HttpRequest | None) -> JsonDict:
    return {
        "id": image.pk,
        "image": public_media_url(image.image, request),
        "caption": image.caption,
        "taken_at": image.taken_at.isoformat() if image.taken_at else None,
    }


def gallery_album_to_dict(
    album: GalleryAlbum, request: HttpRequest | None, *, with_images: bool = False
) -> JsonDict:
    data: JsonDict = {
        "slug": album.slug,
        "title": album.title,
        "description": album.description,
        "cover": public_media_url(album.cover, request),
        "created_at": album.created_at.isoformat(),
    }
    if with_images:
        data["images"] = [gallery_image_to_dict(image, request) for image in album.images.all()]
    return data


def event_to_dict(event: Event, request: HttpRequest | None) -> JsonDict:
    return {
        "public_id": str(event.public_id),
        "slug": event.slug,
        "title": event.title,
        "description": event.description,
        "banner": public_media_url(event.banner, request),
        # ISO 8601 with offset (UTC): the frontend shows them in the visitor's time zone.
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "location": event.location,
        "program": event.program.slug if event.program is not None else None,
    }


def announcement_to_dict(announcement: Announcement, request: HttpRequest | None) -> JsonDict:
    return {
        "id": announcement.pk,
        "title": announcement.title,
        "body": announcement.body,
        "attachment": public_media_url(announcement.attachment, request),
        "published_at": announcement.published_at.isoformat(),
        "is_pinned": announcement.is_pinned,
    }


def testimonial_to_dict(testimonial: Testimonial, request: HttpRequest | None) -> JsonDict:
    return {
        "id": testimonial.pk,
        # Shown publicly by the parent's choice (approved); contact details are not part of it.
        "parent_name": testimonial.parent_name,
        "quote": testimonial.quote,
        "rating": testimonial.rating,
        "photo": public_media_url(testimonial.photo, request),
        "created_at": testimonial.created_at.isoformat(),
    }
