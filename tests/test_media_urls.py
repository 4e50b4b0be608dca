"""api.serializers.public_media_url: every stored shape becomes one correct, absolute URL.

The shapes are classified by ops.media.refs (tested on its own in test_media_refs.py); these tests
check what the API makes of each class, and that it agrees with what normalize_media_urls writes.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.test import RequestFactory

from api.demo_data import demo_image
from api.models import Announcement, Program
from api.serializers import media_context, public_media_url
from ops.media.refs import MediaCategory, media_context_for, parse_media_value

CLOUDINARY_URL = "https://res.cloudinary.com/demo/image/upload/v1/media/gallery/x"


@pytest.fixture
def request_on_site(settings: Any) -> Any:
    settings.ALLOWED_HOSTS = ["kidoo-backend.onrender.com"]
    return RequestFactory().get("/api/programs/", HTTP_HOST="kidoo-backend.onrender.com", secure=True)


# --- under FileSystemStorage (the project's default in tests) -------------------------------------


def test_media_url__plain_storage_name_goes_through_the_storage(request_on_site: Any) -> None:
    assert (
        public_media_url("gallery/x.jpg", request_on_site)
        == "https://kidoo-backend.onrender.com/media/gallery/x.jpg"
    )


def test_media_url__full_cloudinary_url_is_returned_unchanged(request_on_site: Any) -> None:
    assert public_media_url(CLOUDINARY_URL, request_on_site) == CLOUDINARY_URL


def test_media_url__leading_media_prefix_is_not_doubled(request_on_site: Any) -> None:
    assert (
        public_media_url("/media/gallery/x.jpg", request_on_site)
        == "https://kidoo-backend.onrender.com/media/gallery/x.jpg"
    )


def test_media_url__media_prefix_before_a_full_url_is_dropped(request_on_site: Any) -> None:
    assert public_media_url(f"/media/{CLOUDINARY_URL}", request_on_site) == CLOUDINARY_URL


def test_media_url__media_prefix_before_a_url_with_collapsed_slashes_is_repaired(
    request_on_site: Any,
) -> None:
    collapsed = "media/https:/res.cloudinary.com/demo/image/upload/v1/media/gallery/x"

    assert public_media_url(collapsed, request_on_site) == CLOUDINARY_URL


def test_media_url__url_nested_inside_a_storage_url_resolves_to_the_inner_one(request_on_site: Any) -> None:
    doubled = f"https://res.cloudinary.com/demo/image/upload/v1/media/{CLOUDINARY_URL}"

    assert public_media_url(doubled, request_on_site) == CLOUDINARY_URL


def test_media_url__empty_value_is_none(request_on_site: Any) -> None:
    assert public_media_url("", request_on_site) is None
    assert public_media_url(None, request_on_site) is None
    assert public_media_url(Program(slug="x").image, request_on_site) is None


def test_media_url__field_file_uses_the_fields_storage(request_on_site: Any) -> None:
    program = Program(slug="toddlers", image="programs/toddlers.jpg")

    assert (
        public_media_url(program.image, request_on_site)
        == "https://kidoo-backend.onrender.com/media/programs/toddlers.jpg"
    )


def test_media_url__explicit_storage_wins_over_default(request_on_site: Any) -> None:
    elsewhere = FileSystemStorage(location="/tmp/unused", base_url="https://cdn.example.org/files/")

    assert public_media_url("gallery/x.jpg", request_on_site, storage=elsewhere) == (
        "https://cdn.example.org/files/gallery/x.jpg"
    )


def test_media_url__without_a_request_relative_url_stays_relative() -> None:
    assert public_media_url("gallery/x.jpg") == "/media/gallery/x.jpg"


def test_media_url__follows_media_url_setting(request_on_site: Any, settings: Any) -> None:
    settings.MEDIA_URL = "/uploads/"

    assert public_media_url("/uploads/gallery/x.jpg", request_on_site) == (
        "https://kidoo-backend.onrender.com/uploads/gallery/x.jpg"
    )


# --- under django-cloudinary-storage (against the Cloudinary emulator) ----------------------------


@pytest.fixture
def uploaded_to_cloudinary(cloudinary_settings: Any) -> tuple[str, bytes]:
    """A picture uploaded through the media storage: its stored name and its bytes."""
    picture = demo_image("cloudinary-variant")
    name = default_storage.save("gallery/cloud.jpg", ContentFile(picture))
    return name, picture


def fetch(url: str) -> bytes:
    assert url.startswith(("http://127.0.0.1:", "https://res.cloudinary.com/")), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- the emulator's URL
        body: bytes = response.read()
    return body


def test_media_url_on_cloudinary__plain_storage_name(
    uploaded_to_cloudinary: tuple[str, bytes], request_on_site: Any
) -> None:
    name, picture = uploaded_to_cloudinary
    assert name.startswith("media/gallery/")

    url = public_media_url(name, request_on_site)

    assert url == default_storage.url(name)
    assert fetch(url) == picture


def test_media_url_on_cloudinary__full_url_is_not_prefixed_again(
    uploaded_to_cloudinary: tuple[str, bytes], request_on_site: Any
) -> None:
    name, picture = uploaded_to_cloudinary
    stored_url = default_storage.url(name)

    url = public_media_url(stored_url, request_on_site)

    assert url == stored_url
    # What the storage alone makes of it: the double prefix that broke the site's images.
    assert default_storage.url(stored_url) != stored_url
    assert fetch(url) == picture


def test_media_url_on_cloudinary__leading_media_prefix(
    uploaded_to_cloudinary: tuple[str, bytes], request_on_site: Any
) -> None:
    name, picture = uploaded_to_cloudinary
    glued = "/media/" + name.removeprefix("media/")

    url = public_media_url(glued, request_on_site)

    assert url == default_storage.url(name)
    assert fetch(url) == picture


def test_media_url_on_cloudinary__media_prefix_before_a_full_url(
    uploaded_to_cloudinary: tuple[str, bytes], request_on_site: Any
) -> None:
    name, picture = uploaded_to_cloudinary
    stored_url = default_storage.url(name)
    collapsed = "media/" + stored_url.replace("://", ":/", 1)

    assert public_media_url("/media/" + stored_url, request_on_site) == stored_url
    assert public_media_url(collapsed, request_on_site) == stored_url
    assert fetch(stored_url) == picture


def test_media_url_on_cloudinary__field_file_of_a_saved_model(
    uploaded_to_cloudinary: tuple[str, bytes], request_on_site: Any
) -> None:
    name, picture = uploaded_to_cloudinary
    program = Program(slug="toddlers", image=name)

    url = public_media_url(program.image, request_on_site)

    assert url is not None
    assert fetch(url) == picture


# --- one parser: the API serves what normalize_media_urls would write ------------------------------

SHAPES = [
    "gallery/x.jpg",
    "  gallery/x.jpg ",
    "media/gallery/x",
    "media/media/gallery/x",
    "/media/gallery/x.jpg",
    CLOUDINARY_URL,
    "HTTPS://res.cloudinary.com/demo/x",
    f"/media/{CLOUDINARY_URL}",
    f"media/{CLOUDINARY_URL}",
    "/media/https:/res.cloudinary.com/demo/x",
    "/media/https%3A//res.cloudinary.com/demo/x",
    "//res.cloudinary.com/demo/image/upload/v1/media/gallery/x",
    "https://example.org/img?next=https://other.example/",
    "",
    "   ",
    "/media/",
    "data:image/png;base64,AAAA",
    "javascript:alert(1)",
    "../etc/passwd",
    "gallery/../../x.jpg",
    "/srv/elsewhere/x.jpg",
]


@pytest.mark.parametrize("stored", SHAPES)
def test_media_url__agrees_with_the_parser_normalize_media_urls_uses(stored: str) -> None:
    parsed = parse_media_value(stored, media_context_for(default_storage))
    if parsed.category in (MediaCategory.CANONICAL, MediaCategory.FIXABLE):
        assert parsed.canonical_name is not None
        expected: str | None = default_storage.url(parsed.canonical_name)
    elif parsed.category is MediaCategory.EXTERNAL:
        expected = parsed.external_url
    else:
        expected = None

    assert public_media_url(stored) == expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("  gallery/x.jpg ", "/media/gallery/x.jpg"),
        # Under FileSystemStorage a doubled prefix loses one layer: media/ may be a real folder.
        ("media/media/gallery/x", "/media/media/gallery/x"),
        ("HTTPS://res.cloudinary.com/demo/x", "https://res.cloudinary.com/demo/x"),
        ("/media/https%3A//res.cloudinary.com/demo/x", "https://res.cloudinary.com/demo/x"),
        ("//res.cloudinary.com/demo/x.jpg", "https://res.cloudinary.com/demo/x.jpg"),
        # A URL in the query string is not a nested file URL.
        (
            "https://example.org/img?next=https://other.example/",
            "https://example.org/img?next=https://other.example/",
        ),
    ],
)
def test_media_url__legacy_shapes_under_the_file_system_storage(stored: str, expected: str) -> None:
    assert public_media_url(stored) == expected


@pytest.mark.parametrize(
    "stored",
    [
        "   ",
        "/media/",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "../x.jpg",
        "/srv/elsewhere/x.jpg",
    ],
)
def test_media_url__a_value_that_names_no_file_safely_is_none(stored: str, request_on_site: Any) -> None:
    assert public_media_url(stored, request_on_site) is None


def test_media_url__document_storage_wrapping_the_default_one_is_understood() -> None:
    attachment = Announcement(attachment="/media/announcements/dates.pdf").attachment

    assert public_media_url(attachment) == "/media/announcements/dates.pdf"
    assert media_context(attachment.storage) is media_context(default_storage)


def test_media_context__built_once_per_storage_and_again_when_settings_change(settings: Any) -> None:
    first = media_context(default_storage)
    assert media_context(default_storage) is first

    settings.MEDIA_URL = "/uploads/"

    again = media_context(default_storage)
    assert again is not first
    assert again.media_url == "/uploads/"
