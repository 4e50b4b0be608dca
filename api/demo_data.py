"""A realistic sample of the site's content, for local development, demos and restore drills.

Everything is keyed by a natural key (slugs, or titles and example.com addresses where a model has
no slug), so running it again creates nothing twice. Files go through the fields' storage, so the
same data lands on local disk or on Cloudinary. Personal data is obviously fake: example.com
addresses and numbers from Ofcom's range reserved for drama (020 7946 0xxx).
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Model
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from PIL import Image, ImageDraw

from api.models import Announcement, Enquiry, Event, GalleryAlbum, GalleryImage, Program, Teacher, Testimonial

Report = Callable[[str], None]

SCHOOL_TIME_ZONE = ZoneInfo("Europe/London")

PALETTE = [
    (255, 183, 3),
    (251, 133, 0),
    (33, 158, 188),
    (142, 202, 230),
    (2, 48, 71),
    (233, 79, 55),
    (120, 190, 32),
    (255, 255, 255),
]


@dataclass
class SeedResult:
    """What a run created, by model verbose name plural, and how many files it stored."""

    created: Counter[str] = field(default_factory=Counter)
    files_stored: int = 0

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    def summary(self) -> str:
        if not self.total_created:
            return "Demo data already present: nothing created."
        counts = ", ".join(f"{count} {name}" for name, count in self.created.items() if count)
        return f"Created {counts} ({self.files_stored} files stored)."


def demo_image(seed: str, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small JPEG of coloured shapes, the same for the same ``seed`` (a few KB, never blank)."""
    rng = random.Random(seed)  # noqa: S311 -- repeatable pictures, not secrets
    background, *colours = rng.sample(PALETTE, 5)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    width, height = size
    for colour in colours:
        left, top = rng.randrange(0, width * 3 // 4), rng.randrange(0, height * 3 // 4)
        extent = rng.randrange(min(size) // 5, min(size) // 2)
        box = (left, top, left + extent, top + extent)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rounded_rectangle(box, radius=extent // 6, fill=colour)
    draw.line([(0, height - 12), (width, height - 24)], fill=colours[0], width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def demo_pdf(title: str) -> bytes:
    """A minimal one-page PDF with ``title`` on it: readers open it, and it is a few hundred bytes."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    output = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(output)
    output += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    output += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    output += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(output)


class _Seeder:
    def __init__(self, report: Report | None) -> None:
        self.result = SeedResult()
        self._report = report or (lambda line: None)

    def store(self, file_field: FieldFile, name: str, content: bytes) -> None:
        # save=False: the instance is saved once, with all its fields, by the caller.
        file_field.save(name, ContentFile(content), save=False)
        self.result.files_stored += 1

    def created(self, instance: Model) -> None:
        label = str(instance._meta.verbose_name_plural)
        self.result.created[label] += 1
        self._report(f"Created {type(instance).__name__.lower()} {instance}")

    def skipped(self, kind: str, key: str) -> None:
        self._report(f"Exists  {kind} {key}")


def _sunday_on_or_before(day: date) -> date:
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _last_sunday(year: int, month: int) -> date:
    first_of_next = date(year + (month == 12), month % 12 + 1, 1)
    return _sunday_on_or_before(first_of_next - timedelta(days=1))


def _next_dst_change_days(today: date) -> tuple[date, date]:
    """The next UK spring-forward and fall-back Sundays (last Sunday of March and of October)."""
    spring = _last_sunday(today.year, 3)
    if spring < today:
        spring = _last_sunday(today.year + 1, 3)
    autumn = _last_sunday(today.year, 10)
    if autumn < today:
        autumn = _last_sunday(today.year + 1, 10)
    return spring, autumn


def _at(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


PROGRAMS: list[dict[str, Any]] = [
    {
        "slug": "toddlers",
        "name": "Toddlers",
        "description": "Play, songs and first friendships in a small, calm group.",
        "age_min_years": 1,
        "age_max_years": 2,
        "monthly_fee": Decimal("420.00"),
        "schedule": {"mon": ["08:30", "12:00"], "wed": ["08:30", "12:00"], "fri": ["08:30", "12:00"]},
        "capacity": 8,
        "display_order": 1,
    },
    {
        "slug": "preschool",
        "name": "Preschool",
        "description": "Stories, painting, gardening and outdoor play every day.",
        "age_min_years": 3,
        "age_max_years": 4,
        "monthly_fee": Decimal("560.00"),
        "schedule": {day: ["08:30", "15:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "capacity": 14,
        "display_order": 2,
    },
    {
        "slug": "pre-k",
        "name": "Pre-K",
        "description": "Letters, numbers and curiosity: a gentle start before school.",
        "age_min_years": 4,
        "age_max_years": 5,
        "monthly_fee": Decimal("595.50"),
        "schedule": {day: ["08:30", "15:30"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "capacity": 16,
        "display_order": 3,
    },
    {
        "slug": "after-school-club",
        "name": "After-school club",
        "description": "Homework corner, crafts and games until parents finish work.",
        "age_min_years": 5,
        "age_max_years": 7,
        "monthly_fee": Decimal("240.00"),
        "schedule": {day: ["15:00", "18:00"] for day in ("mon", "tue", "wed", "thu")},
        "capacity": 20,
        "display_order": 4,
    },
]

TEACHERS = [
    ("amara-okafor", "Amara Okafor", "Head teacher", ["preschool", "pre-k"], date(2016, 9, 1)),
    ("tomasz-nowak", "Tomasz Nowak", "Early years teacher", ["toddlers"], date(2019, 1, 7)),
    ("lena-fischer", "Lena Fischer", "Music and movement", ["toddlers", "preschool"], date(2021, 4, 19)),
    ("priya-raman", "Priya Raman", "Club leader", ["after-school-club", "pre-k"], date(2023, 9, 4)),
]

ALBUMS = [
    ("autumn-leaves", "Autumn leaves", "Collecting, sorting and painting with leaves from the park."),
    ("sports-day", "Sports day", "Egg-and-spoon, sack races and a lot of cheering."),
    ("garden-project", "Our garden", "From seeds to strawberries: the children's vegetable patch."),
]
IMAGES_PER_ALBUM = 6

ANNOUNCEMENTS = [
    ("Term dates for the new school year", "Term starts on the first Monday of September.", True, True),
    ("Closed for staff training", "We are closed for staff training on the last Friday.", False, False),
    ("Healthy snacks week", "Please pack fruit or vegetables; we will provide water and milk.", False, False),
]

TESTIMONIALS = [
    ("Demo Parent A.", "Our daughter runs in every morning. The teachers know every child.", 5, True),
    ("Demo Parent B.", "Great communication and lovely photos of the day.", 5, True),
    ("Demo Parent C.", "Settling in took time, and the staff were patient with us.", 4, True),
    ("Demo Parent D.", "Waiting for approval: not shown on the website yet.", 3, False),
]

ENQUIRIES = [
    ("Alex Example", "+44 20 7946 0001", "alex.demo@example.com", "Sam Example", 3, "preschool"),
    ("Jordan Sample", "020 7946 0002", "jordan.demo@example.com", "Robin Sample", 1, "toddlers"),
    ("Casey Placeholder", "(020) 7946-0003", "casey.demo@example.com", "Kit Placeholder", 5, None),
]


def seed_demo_data(report: Report | None = None) -> SeedResult:
    """Create whatever part of the demo data set is missing; ``report`` gets one line per item."""
    seeder = _Seeder(report)
    with transaction.atomic():
        programs = _seed_programs(seeder)
        _seed_teachers(seeder, programs)
        _seed_gallery(seeder)
        _seed_events(seeder, programs)
        _seed_announcements(seeder)
        _seed_testimonials(seeder)
        _seed_enquiries(seeder, programs)
    return seeder.result


def _seed_programs(seeder: _Seeder) -> dict[str, Program]:
    programs = {}
    for spec in PROGRAMS:
        slug = str(spec["slug"])
        program = Program.objects.filter(slug=slug).first()
        if program is None:
            program = Program(**spec)
            seeder.store(program.image, f"{slug}.jpg", demo_image(f"program-{slug}"))
            program.save()
            seeder.created(program)
        else:
            seeder.skipped("program", slug)
        programs[slug] = program
    return programs


def _seed_teachers(seeder: _Seeder, programs: dict[str, Program]) -> None:
    for display_order, (slug, name, role, program_slugs, joined_on) in enumerate(TEACHERS, start=1):
        if Teacher.objects.filter(slug=slug).exists():
            seeder.skipped("teacher", slug)
            continue
        teacher = Teacher(
            slug=slug,
            name=name,
            role=role,
            bio=f"{name.split()[0]} has been with us since {joined_on:%B %Y}.",
            joined_on=joined_on,
            display_order=display_order,
        )
        seeder.store(teacher.photo, f"{slug}.jpg", demo_image(f"teacher-{slug}", size=(240, 240)))
        teacher.save()
        teacher.programs.set([programs[program_slug] for program_slug in program_slugs])
        seeder.created(teacher)


def _seed_gallery(seeder: _Seeder) -> None:
    for album_number, (slug, title, description) in enumerate(ALBUMS):
        if GalleryAlbum.objects.filter(slug=slug).exists():
            seeder.skipped("album", slug)
            continue
        album = GalleryAlbum(slug=slug, title=title, description=description)
        seeder.store(album.cover, f"{slug}-cover.jpg", demo_image(f"album-{slug}-cover"))
        album.save()
        seeder.created(album)
        taken_day = timezone.localdate() - timedelta(days=30 * (album_number + 1))
        for number in range(1, IMAGES_PER_ALBUM + 1):
            image = GalleryImage(
                album=album,
                caption=f"{title}, photo {number}",
                taken_at=_at(taken_day, 9 + number, 15, SCHOOL_TIME_ZONE),
                sort_order=number,
            )
            seeder.store(image.image, f"{slug}-{number}.jpg", demo_image(f"album-{slug}-{number}"))
            image.save()
            seeder.created(image)


def _seed_events(seeder: _Seeder, programs: dict[str, Program]) -> None:
    today = timezone.localdate()
    spring_forward, fall_back = _next_dst_change_days(today)
    new_york, sydney = ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
    # Local wall-clock times on the days the clocks change (and in other zones): what a calendar
    # shows must survive the conversion to UTC and back.
    events = [
        (
            "sports-day",
            "Sports day",
            "Races, games and a picnic: on the morning the clocks go forward, so set yours.",
            _at(spring_forward, 10, 0, SCHOOL_TIME_ZONE),
            _at(spring_forward, 13, 0, SCHOOL_TIME_ZONE),
            "Victoria Park, east field",
            "preschool",
        ),
        (
            "lantern-evening",
            "Lantern evening",
            "We walk with paper lanterns the children made, on the evening the clocks go back.",
            _at(fall_back, 17, 30, SCHOOL_TIME_ZONE),
            _at(fall_back, 19, 0, SCHOOL_TIME_ZONE),
            "School garden",
            None,
        ),
        (
            "online-parents-evening-new-york",
            "Online parents' evening (New York families)",
            "A video call at a time that suits families who moved to the US east coast.",
            _at(today + timedelta(days=21), 18, 0, new_york),
            _at(today + timedelta(days=21), 19, 30, new_york),
            "Video call",
            "pre-k",
        ),
        (
            "sister-school-story-time",
            "Story time with our Sydney sister school",
            "A morning in Sydney, an evening here: stories read across the world.",
            _at(today + timedelta(days=45), 9, 30, sydney),
            _at(today + timedelta(days=45), 10, 15, sydney),
            "Video call",
            None,
        ),
        (
            "summer-fair",
            "Summer fair",
            "Cakes, a tombola and face painting. Thank you to everyone who came!",
            _at(today - timedelta(days=40), 11, 0, SCHOOL_TIME_ZONE),
            _at(today - timedelta(days=40), 15, 0, SCHOOL_TIME_ZONE),
            "School hall",
            None,
        ),
    ]
    for slug, title, description, starts_at, ends_at, location, program_slug in events:
        if Event.objects.filter(slug=slug).exists():
            seeder.skipped("event", slug)
            continue
        event = Event(
            slug=slug,
            title=title,
            description=description,
            starts_at=starts_at,
            ends_at=ends_at,
            location=location,
            program=programs[program_slug] if program_slug else None,
        )
        seeder.store(event.banner, f"{slug}.jpg", demo_image(f"event-{slug}", size=(480, 200)))
        event.save()
        seeder.created(event)


def _seed_announcements(seeder: _Seeder) -> None:
    now = timezone.now()
    for age_days, (title, body, is_pinned, with_attachment) in enumerate(ANNOUNCEMENTS):
        if Announcement.objects.filter(title=title).exists():
            seeder.skipped("announcement", title)
            continue
        announcement = Announcement(
            title=title, body=body, is_pinned=is_pinned, published_at=now - timedelta(days=7 * age_days)
        )
        if with_attachment:
            seeder.store(announcement.attachment, "term-dates.pdf", demo_pdf(title))
        announcement.save()
        seeder.created(announcement)


def _seed_testimonials(seeder: _Seeder) -> None:
    for parent_name, quote, rating, is_approved in TESTIMONIALS:
        if Testimonial.objects.filter(parent_name=parent_name).exists():
            seeder.skipped("testimonial", parent_name)
            continue
        testimonial = Testimonial.objects.create(
            parent_name=parent_name, quote=quote, rating=rating, is_approved=is_approved
        )
        seeder.created(testimonial)


def _seed_enquiries(seeder: _Seeder, programs: dict[str, Program]) -> None:
    for parent_name, phone, email, child_name, age, program_slug in ENQUIRIES:
        if Enquiry.objects.filter(email=email).exists():
            seeder.skipped("enquiry", email)
            continue
        enquiry = Enquiry(
            parent_name=parent_name,
            phone=phone,
            email=email,
            child_name=child_name,
            child_age_years=age,
            program=programs[program_slug] if program_slug else None,
            message="Demo enquiry: could we visit one morning?",
            consent=True,
        )
        enquiry.save()
        seeder.created(enquiry)
