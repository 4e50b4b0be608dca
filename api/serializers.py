"""Model instances as the JSON the public API returns, and the one way media become URLs.

Every file field leaves through ``public_media_url``: the site's data holds media values in several
legacy shapes, and a URL built any other way is how images broke with a double prefix. The shapes
are told apart by ``ops.media.refs``, the parser ``normalize_media_urls`` repairs them with, so
what the API serves and what the command writes back never disagree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.files.storage import Storage, default_storage
from django.core.signals import setting_changed
from django.db.models.fields.files import FieldFile
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

from api.models import Announcement, Event, GalleryAlbum, GalleryImage, Program, Teacher, Testimonial
from ops.media.refs import MediaCategory, MediaContext, media_context_for, parse_media_value

JsonDict = dict[str, Any]

# id(storage) -> (storage, its context). A list of 100 pictures reads its storage's context once,
# not 100 times; holding the storage keeps its id from being reused by another object.
_contexts: dict[int, tuple[Storage, MediaContext]] = {}
# Storages are a handful per process; explicit ones made per call must not grow this forever.
_MAX_CACHED_CONTEXTS = 64


def _concrete(storage: Storage) -> Storage:
    # api.storage.document_storage may wrap default_storage: a lazy object inside a lazy object.
    while isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        storage = storage._wrapped
    return storage


def media_context(storage: Storage) -> MediaContext:
    """What ``storage`` makes of a stored value (``ops.media.refs``), built once per storage."""
    storage = _concrete(storage)
    cached = _contexts.get(id(storage))
    if cached is not None and cached[0] is storage:
        return cached[1]
    context = media_context_for(storage)
    if len(_contexts) >= _MAX_CACHED_CONTEXTS:
        _contexts.clear()
    _contexts[id(storage)] = (storage, context)
    return context


@receiver(setting_changed)
def _forget_media_contexts(**kwargs: Any) -> None:
    # MEDIA_URL, STORAGES, CLOUDINARY_STORAGE... all shape a context; settings only change in tests.
    _contexts.clear()


def public_media_url(
    value: FieldFile | str | None, request: HttpRequest | None = None, storage: Storage | None = None
) -> str | None:
    """The public absolute URL of a stored media value, or None when there is no usable file.

    Classified by ``ops.media.refs.parse_media_value`` against ``storage`` (else the field's own
    storage, else ``default_storage``):

    - a storage name, or a legacy shape of one (a full delivery URL of this account, MEDIA_URL glued
      in front, a doubled prefix, a URL nested in a URL...): the storage's ``url()`` of the
      canonical name, so it is right for local disk and Cloudinary alike and never prefixed twice;
    - an external URL (another host or account): that URL, cleaned, never run through the storage;
    - empty, or a value that names no file safely (``data:``, ``../x``, a path outside MEDIA_ROOT,
      a folder): None, so the frontend shows its placeholder instead of a broken or unsafe link.

    Relative URLs (FileSystemStorage's ``/media/...``) are made absolute with ``request``: the
    frontend is on another host.
    """
    if value is None:
        return None
    if isinstance(value, FieldFile):
        storage = storage or value.storage
        stored = value.name or ""
    else:
        stored = value
    if not stored:
        return None
    storage = storage or default_storage
    parsed = parse_media_value(stored, media_context(storage))
    if parsed.category in (MediaCategory.CANONICAL, MediaCategory.FIXABLE) and parsed.canonical_name:
        url = storage.url(parsed.canonical_name)
    elif parsed.category is MediaCategory.EXTERNAL and parsed.external_url:
        url = parsed.external_url
    else:
        return None
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
