"""seed_demo: a realistic sample data set, stored through the media storage, created only once."""

from __future__ import annotations

import io
import urllib.request
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image

from api.demo_data import ALBUMS, IMAGES_PER_ALBUM, PROGRAMS, demo_image, demo_pdf, seed_demo_data
from api.models import Announcement, Enquiry, Event, GalleryAlbum, GalleryImage, Program, Teacher

# Aliased: pytest would try to collect a class named Test* imported into a test module.
from api.models import Testimonial as ParentTestimonial

pytestmark = pytest.mark.django_db

EVERY_MODEL = [Program, Teacher, GalleryAlbum, GalleryImage, Event, Announcement, ParentTestimonial, Enquiry]


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in EVERY_MODEL}


def test_seed_demo__creates_every_kind_of_content() -> None:
    seed_demo_data()

    counts = row_counts()
    assert counts["Program"] == len(PROGRAMS)
    assert counts["GalleryAlbum"] == len(ALBUMS)
    assert counts["GalleryImage"] == len(ALBUMS) * IMAGES_PER_ALBUM
    assert all(count > 0 for count in counts.values()), counts
    assert all(teacher.programs.exists() for teacher in Teacher.objects.all())
    assert Announcement.objects.exclude(attachment="").count() == 1
    assert ParentTestimonial.objects.filter(is_approved=False).exists()


def test_seed_demo__files_are_stored_through_the_storage_and_are_real_images() -> None:
    seed_demo_data()

    for image in GalleryImage.objects.all():
        assert default_storage.exists(image.image.name)
        with default_storage.open(image.image.name) as stored:
            picture = Image.open(io.BytesIO(stored.read()))
            assert picture.format == "JPEG"
            # Not blank: shapes in several colours.
            assert len(picture.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 1
    attachment = Announcement.objects.exclude(attachment="").get().attachment
    assert default_storage.open(attachment.name).read().startswith(b"%PDF-")


def test_seed_demo__images_are_a_few_kilobytes() -> None:
    picture = demo_image("sample")

    assert 1_000 < len(picture) < 20_000
    assert demo_image("sample") == picture


def test_seed_demo__pdf_attachment_is_a_well_formed_pdf() -> None:
    pdf = demo_pdf("Term dates (draft)")

    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/Type /Catalog" in pdf


def test_seed_demo__events_keep_their_local_wall_clock_time_across_dst() -> None:
    seed_demo_data()

    london = ZoneInfo("Europe/London")
    sports_day = Event.objects.get(slug="sports-day")
    lantern_evening = Event.objects.get(slug="lantern-evening")
    # Stored in UTC; on the days the clocks change they still read 10:00 and 17:30 in London.
    assert sports_day.starts_at.astimezone(london).hour == 10
    assert (lantern_evening.starts_at.astimezone(london).hour, lantern_evening.starts_at.minute) == (17, 30)
    new_york_evening = Event.objects.get(slug="online-parents-evening-new-york")
    assert new_york_evening.starts_at.astimezone(ZoneInfo("America/New_York")).hour == 18


def test_seed_demo__enquiries_hold_only_clearly_fake_personal_data() -> None:
    seed_demo_data()

    for enquiry in Enquiry.objects.all():
        assert enquiry.email.endswith("@example.com")
        assert "7946 0" in enquiry.phone or "7946-0" in enquiry.phone


def test_seed_demo__second_run_creates_nothing() -> None:
    first = seed_demo_data()
    counts_after_first = row_counts()

    second = seed_demo_data()

    assert first.total_created == sum(counts_after_first.values())
    assert second.total_created == 0
    assert second.files_stored == 0
    assert row_counts() == counts_after_first


def test_seed_demo__fills_in_only_what_is_missing() -> None:
    seed_demo_data()
    Teacher.objects.filter(slug="amara-okafor").delete()

    result = seed_demo_data()

    assert dict(result.created) == {"teachers": 1}
    assert Teacher.objects.get(slug="amara-okafor").programs.count() == 2


def test_seed_demo_command__prints_one_summary_line() -> None:
    stdout = StringIO()

    call_command("seed_demo", stdout=stdout)

    (line,) = stdout.getvalue().splitlines()
    assert line.startswith("Created 4 programs, 4 teachers, 3 gallery albums, 18 gallery images, ")
    assert line.endswith("files stored).")


def test_seed_demo_command__second_run_says_nothing_was_created() -> None:
    call_command("seed_demo", stdout=StringIO())
    stdout = StringIO()

    call_command("seed_demo", stdout=stdout)

    assert stdout.getvalue() == "Demo data already present: nothing created.\n"


def test_seed_demo_command__verbosity_2_lists_each_item(capsys: Any) -> None:
    stdout = StringIO()

    call_command("seed_demo", verbosity=2, stdout=stdout)

    lines = stdout.getvalue().splitlines()
    assert "Created program Toddlers" in lines
    assert "Created teacher Amara Okafor" in lines
    assert lines[-1].startswith("Created 4 programs")


def test_seed_demo_command__verbosity_0_prints_nothing() -> None:
    stdout = StringIO()

    call_command("seed_demo", verbosity=0, stdout=stdout)

    assert stdout.getvalue() == ""
    assert Program.objects.count() == len(PROGRAMS)


def test_seed_demo__stores_its_files_on_cloudinary_when_that_is_the_media_storage(
    cloudinary_settings: Any,
) -> None:
    result = seed_demo_data()

    image = GalleryImage.objects.first()
    assert image is not None
    # django-cloudinary-storage's naming: the upload's public_id under MEDIA_URL.
    assert image.image.name.startswith("media/gallery/")
    assert result.files_stored == Program.objects.count() + Teacher.objects.count() + 3 + 18 + 5 + 1
    url = image.image.url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- the emulator's URL
        assert Image.open(io.BytesIO(response.read())).format == "JPEG"
    # Documents go to Cloudinary's raw resource type, which keeps the extension and accepts a PDF.
    announcement = Announcement.objects.exclude(attachment="").get()
    assert announcement.attachment.name.startswith("media/announcements/")
    assert announcement.attachment.name.endswith(".pdf")
    assert "/raw/upload/" in announcement.attachment.url
    with urllib.request.urlopen(announcement.attachment.url, timeout=10) as response:  # noqa: S310
        assert response.read().startswith(b"%PDF")
