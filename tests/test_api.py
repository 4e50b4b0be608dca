"""The public JSON API: what it shows, what it hides, how it pages, and the enquiry endpoint."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from api.models import Announcement, Enquiry, Event, GalleryAlbum, GalleryImage, Program, Teacher

# Aliased: pytest would try to collect a class named Test* imported into a test module.
from api.models import Testimonial as ParentTestimonial
from api.views import MAX_ENQUIRY_BODY_BYTES, MAX_PAGE_SIZE

pytestmark = pytest.mark.django_db


def make_program(slug: str = "preschool", **fields: Any) -> Program:
    defaults: dict[str, Any] = {
        "name": slug.title(),
        "age_min_years": 3,
        "age_max_years": 4,
        "monthly_fee": Decimal("560.50"),
        "schedule": {"mon": ["08:30", "15:00"]},
    }
    return Program.objects.create(slug=slug, **{**defaults, **fields})


def make_event(slug: str, starts_in: timedelta, **fields: Any) -> Event:
    starts_at = timezone.now() + starts_in
    defaults: dict[str, Any] = {"title": slug.title(), "ends_at": starts_at + timedelta(hours=2)}
    return Event.objects.create(slug=slug, starts_at=starts_at, **{**defaults, **fields})


def valid_enquiry(**overrides: Any) -> dict[str, Any]:
    return {
        "parent_name": "Alex Example",
        "phone": "+44 (20) 7946-0001",
        "email": "alex@example.com",
        "child_name": "Sam Example",
        "child_age_years": 3,
        "message": "Could we visit?",
        "consent": True,
        **overrides,
    }


def post_json(client: Client, data: Any) -> Any:
    return client.post("/api/enquiries/", data=json.dumps(data), content_type="application/json")


# --- programs ---------------------------------------------------------------------------------


def test_program_list__shows_active_programs_only(client: Client) -> None:
    make_program("toddlers", display_order=1)
    make_program("preschool", display_order=2)
    make_program("closed-program", is_active=False)

    body = client.get("/api/programs/").json()

    assert body["count"] == 2
    assert [program["slug"] for program in body["results"]] == ["toddlers", "preschool"]


def test_program_detail__by_slug(client: Client) -> None:
    program = make_program("pre-k", schedule={"tue": ["09:00", "12:00"]})

    response = client.get("/api/programs/pre-k/")

    assert response.status_code == 200
    body = response.json()
    assert body["public_id"] == str(program.public_id)
    assert body["monthly_fee"] == "560.50"
    assert body["schedule"] == {"tue": ["09:00", "12:00"]}
    assert body["image"] is None


def test_program_detail__inactive_program_is_a_json_404(client: Client) -> None:
    make_program("closed-program", is_active=False)

    response = client.get("/api/programs/closed-program/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not found."}


def test_program_detail__image_is_an_absolute_url(client: Client) -> None:
    make_program("toddlers", image="programs/toddlers.jpg")

    body = client.get("/api/programs/toddlers/").json()

    assert body["image"] == "http://testserver/media/programs/toddlers.jpg"


# --- pagination -------------------------------------------------------------------------------


def test_pagination__next_and_previous_are_absolute_and_keep_other_parameters(client: Client) -> None:
    for number in range(5):
        make_event(f"event-{number}", timedelta(days=number + 1))

    first = client.get("/api/events/?upcoming=1&page_size=2").json()
    second = client.get(first["next"]).json()

    assert first["count"] == 5
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/events/?upcoming=1&page_size=2&page=2"
    assert [event["slug"] for event in first["results"]] == ["event-0", "event-1"]
    assert [event["slug"] for event in second["results"]] == ["event-2", "event-3"]
    assert second["previous"] == "http://testserver/api/events/?upcoming=1&page_size=2&page=1"


def test_pagination__last_page_has_no_next(client: Client) -> None:
    for number in range(3):
        make_program(f"program-{number}")

    body = client.get("/api/programs/?page_size=2&page=2").json()

    assert body["next"] is None
    assert [program["slug"] for program in body["results"]] == ["program-2"]


def test_pagination__page_size_is_capped(client: Client) -> None:
    for number in range(MAX_PAGE_SIZE + 1):
        ParentTestimonial.objects.create(
            parent_name=f"Parent {number}", quote="Lovely.", rating=5, is_approved=True
        )

    body = client.get("/api/testimonials/?page_size=100000").json()

    assert body["count"] == MAX_PAGE_SIZE + 1
    assert len(body["results"]) == MAX_PAGE_SIZE
    assert body["next"] is not None


def test_pagination__page_past_the_end_is_a_json_404(client: Client) -> None:
    make_program("toddlers")

    response = client.get("/api/programs/?page=3")

    assert response.status_code == 404
    assert response.json()["error"] == "Page 3 does not exist."


@pytest.mark.parametrize("query", ["page=abc", "page=0", "page_size=-1"])
def test_pagination__malformed_numbers_are_a_400(client: Client, query: str) -> None:
    response = client.get(f"/api/programs/?{query}")

    assert response.status_code == 400
    assert "must be a positive whole number" in response.json()["error"]


# --- teachers ---------------------------------------------------------------------------------


def test_teacher_list__active_teachers_with_their_active_program_slugs(client: Client) -> None:
    toddlers, closed = make_program("toddlers"), make_program("closed", is_active=False)
    teacher = Teacher.objects.create(name="Amara Okafor", slug="amara-okafor", photo="teachers/amara.jpg")
    teacher.programs.set([toddlers, closed])
    Teacher.objects.create(name="Gone Teacher", slug="gone-teacher", is_active=False)

    body = client.get("/api/teachers/").json()

    assert body["count"] == 1
    (result,) = body["results"]
    assert result["slug"] == "amara-okafor"
    assert result["programs"] == ["toddlers"]
    assert result["photo"] == "http://testserver/media/teachers/amara.jpg"


def test_teacher_detail__by_slug_and_inactive_is_404(client: Client) -> None:
    Teacher.objects.create(name="Amara Okafor", slug="amara-okafor")
    Teacher.objects.create(name="Gone Teacher", slug="gone-teacher", is_active=False)

    assert client.get("/api/teachers/amara-okafor/").json()["name"] == "Amara Okafor"
    assert client.get("/api/teachers/gone-teacher/").status_code == 404


# --- gallery ----------------------------------------------------------------------------------


def test_album_list__published_only_and_without_images(client: Client) -> None:
    album = GalleryAlbum.objects.create(title="Sports day", slug="sports-day")
    GalleryImage.objects.create(album=album, image="gallery/a.jpg")
    GalleryAlbum.objects.create(title="Draft", slug="draft", is_published=False)

    body = client.get("/api/gallery/").json()

    assert [result["slug"] for result in body["results"]] == ["sports-day"]
    assert "images" not in body["results"][0]


def test_album_detail__includes_images_in_order(client: Client) -> None:
    album = GalleryAlbum.objects.create(title="Sports day", slug="sports-day")
    GalleryImage.objects.create(album=album, image="gallery/second.jpg", caption="second", sort_order=2)
    GalleryImage.objects.create(album=album, image="gallery/first.jpg", caption="first", sort_order=1)

    body = client.get("/api/gallery/sports-day/").json()

    assert [image["caption"] for image in body["images"]] == ["first", "second"]
    assert body["images"][0]["image"] == "http://testserver/media/gallery/first.jpg"


def test_album_detail__unpublished_is_404(client: Client) -> None:
    GalleryAlbum.objects.create(title="Draft", slug="draft", is_published=False)

    assert client.get("/api/gallery/draft/").status_code == 404


# --- events -----------------------------------------------------------------------------------


def test_event_list__published_only(client: Client) -> None:
    make_event("open-day", timedelta(days=3))
    make_event("hidden", timedelta(days=3), is_published=False)

    body = client.get("/api/events/").json()

    assert [event["slug"] for event in body["results"]] == ["open-day"]


def test_event_list__upcoming_excludes_finished_events_but_keeps_running_ones(client: Client) -> None:
    make_event("finished", timedelta(days=-3))
    make_event("running-now", timedelta(hours=-1))
    make_event("next-week", timedelta(days=7))

    everything = client.get("/api/events/").json()
    upcoming = client.get("/api/events/?upcoming=1").json()

    assert everything["count"] == 3
    assert [event["slug"] for event in upcoming["results"]] == ["running-now", "next-week"]


def test_event_detail__by_public_id_with_program_slug(client: Client) -> None:
    event = make_event("open-day", timedelta(days=3), program=make_program("toddlers"))

    body = client.get(f"/api/events/{event.public_id}/").json()

    assert body["slug"] == "open-day"
    assert body["program"] == "toddlers"
    assert body["starts_at"] == event.starts_at.isoformat()


def test_event_detail__unknown_or_malformed_public_id_is_a_json_404(client: Client) -> None:
    assert client.get(f"/api/events/{uuid.uuid4()}/").json() == {"error": "Not found."}
    assert client.get("/api/events/not-a-uuid/").json() == {"error": "Not found."}


# --- announcements and testimonials -------------------------------------------------------------


def test_announcement_list__pinned_first_and_scheduled_ones_hidden(client: Client) -> None:
    now = timezone.now()
    Announcement.objects.create(title="Old news", body=".", published_at=now - timedelta(days=9))
    Announcement.objects.create(
        title="Pinned", body=".", published_at=now - timedelta(days=30), is_pinned=True
    )
    Announcement.objects.create(title="Tomorrow", body=".", published_at=now + timedelta(days=1))

    body = client.get("/api/announcements/").json()

    assert [item["title"] for item in body["results"]] == ["Pinned", "Old news"]


def test_announcement_detail__by_id_with_attachment_url(client: Client) -> None:
    announcement = Announcement.objects.create(
        title="Term dates", body=".", published_at=timezone.now(), attachment="announcements/dates.pdf"
    )

    body = client.get(f"/api/announcements/{announcement.pk}/").json()

    assert body["title"] == "Term dates"
    assert body["attachment"] == "http://testserver/media/announcements/dates.pdf"


def test_testimonial_list__approved_only(client: Client) -> None:
    ParentTestimonial.objects.create(
        parent_name="Approved Parent", quote="Lovely.", rating=5, is_approved=True
    )
    ParentTestimonial.objects.create(parent_name="Pending Parent", quote="Hmm.", rating=2)

    body = client.get("/api/testimonials/").json()

    assert [item["parent_name"] for item in body["results"]] == ["Approved Parent"]


# --- protocol: methods, unknown URLs, query counts ------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_endpoints__reject_writes_with_a_json_405(client: Client, method: str) -> None:
    response = getattr(client, method)("/api/programs/")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {"error": f"Method {method.upper()} not allowed."}


def test_read_endpoints__answer_head_like_get(client: Client) -> None:
    make_program("toddlers")

    response = client.head("/api/programs/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_unknown_api_url__is_a_json_404(client: Client) -> None:
    response = client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found."}


def test_enquiries__cannot_be_read_through_the_api(client: Client) -> None:
    Enquiry.objects.create(
        parent_name="Alex",
        phone="0207946000",
        email="a@example.com",
        child_name="Sam",
        child_age_years=3,
        consent=True,
    )

    response = client.get("/api/enquiries/")

    assert response.status_code == 405
    assert b"example.com" not in response.content


def _fill_database(copies: int) -> None:
    for number in range(copies):
        program = make_program(f"program-{len(Program.objects.all())}")
        teacher = Teacher.objects.create(name=f"Teacher {number}", slug=f"teacher-{Teacher.objects.count()}")
        teacher.programs.set([program])
        album = GalleryAlbum.objects.create(title="Album", slug=f"album-{GalleryAlbum.objects.count()}")
        GalleryImage.objects.create(album=album, image="gallery/a.jpg")
        GalleryImage.objects.create(album=album, image="gallery/b.jpg")
        make_event(f"event-{Event.objects.count()}", timedelta(days=number + 1), program=program)
        Announcement.objects.create(title="News", body=".", published_at=timezone.now())
        ParentTestimonial.objects.create(parent_name="Parent", quote="Lovely.", rating=5, is_approved=True)


@pytest.mark.parametrize(
    ("url", "max_queries"),
    [
        ("/api/programs/", 2),
        ("/api/teachers/", 3),
        ("/api/gallery/", 2),
        ("/api/events/", 2),
        ("/api/announcements/", 2),
        ("/api/testimonials/", 2),
    ],
)
def test_list_views__query_count_does_not_grow_with_rows(
    client: Client, django_assert_max_num_queries: Any, url: str, max_queries: int
) -> None:
    _fill_database(copies=8)

    with django_assert_max_num_queries(max_queries):
        body = client.get(url).json()

    assert len(body["results"]) == 8


def test_album_detail__query_count_does_not_grow_with_images(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    album = GalleryAlbum.objects.create(title="Sports day", slug="sports-day")
    for number in range(10):
        GalleryImage.objects.create(album=album, image=f"gallery/{number}.jpg")

    with django_assert_max_num_queries(2):
        body = client.get("/api/gallery/sports-day/").json()

    assert len(body["images"]) == 10


# --- POST /api/enquiries/ -----------------------------------------------------------------------


def test_enquiry__valid_json_is_stored_and_only_its_public_id_returned(client: Client) -> None:
    make_program("preschool")

    response = post_json(client, valid_enquiry(program="preschool"))

    assert response.status_code == 201
    enquiry = Enquiry.objects.get()
    assert response.json() == {"public_id": str(enquiry.public_id)}
    assert (enquiry.parent_name, enquiry.child_age_years, enquiry.program.slug) == (
        "Alex Example",
        3,
        "preschool",
    )
    assert enquiry.consent is True
    assert enquiry.is_handled is False


def test_enquiry__response_echoes_no_personal_data(client: Client) -> None:
    response = post_json(client, valid_enquiry())

    for personal in ("Alex", "Sam", "example.com", "7946"):
        assert personal not in response.content.decode()


def test_enquiry__form_encoded_body_is_accepted(client: Client) -> None:
    form = {**valid_enquiry(), "consent": "on", "child_age_years": "5"}

    response = client.post("/api/enquiries/", data=form)

    assert response.status_code == 201
    assert Enquiry.objects.get().child_age_years == 5


def test_enquiry__program_is_optional(client: Client) -> None:
    response = post_json(client, valid_enquiry(program=None))

    assert response.status_code == 201
    assert Enquiry.objects.get().program is None


def test_enquiry__is_csrf_exempt(client: Client) -> None:
    csrf_checking_client = Client(enforce_csrf_checks=True)

    response = post_json(csrf_checking_client, valid_enquiry())

    assert response.status_code == 201


def test_enquiry__cannot_set_staff_fields(client: Client) -> None:
    post_json(client, valid_enquiry(is_handled=True))

    assert Enquiry.objects.get().is_handled is False


def assert_rejected(response: Any, field: str, message: str) -> None:
    assert response.status_code == 400
    assert message in response.json()["errors"][field]
    assert not Enquiry.objects.exists()


def test_enquiry__missing_consent_is_rejected(client: Client) -> None:
    data = valid_enquiry()
    del data["consent"]

    assert_rejected(
        post_json(client, data), "consent", "Consent is required: we can only store your details with it."
    )


def test_enquiry__consent_false_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(consent=False)),
        "consent",
        "Consent is required: we can only store your details with it.",
    )


@pytest.mark.parametrize("age", [0, 8, 12])
def test_enquiry__child_age_outside_1_to_7_is_rejected(client: Client, age: int) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(child_age_years=age)),
        "child_age_years",
        "We take children aged 1 to 7 years.",
    )


def test_enquiry__child_age_not_a_number_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(child_age_years="three")),
        "child_age_years",
        "Enter the child's age in whole years.",
    )


@pytest.mark.parametrize("age", [1, 7])
def test_enquiry__child_age_bounds_are_accepted(client: Client, age: int) -> None:
    assert post_json(client, valid_enquiry(child_age_years=age)).status_code == 201


@pytest.mark.parametrize("phone", ["0207 946 000a", "+44 20 7946 0000 ext. 5", "020/7946/0000"])
def test_enquiry__phone_with_letters_or_symbols_is_rejected(client: Client, phone: str) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(phone=phone)),
        "phone",
        "Use only digits, spaces, +, - and parentheses in the phone number.",
    )


@pytest.mark.parametrize("phone", ["123 456", "1" * 21])
def test_enquiry__phone_with_too_few_or_too_many_digits_is_rejected(client: Client, phone: str) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(phone=phone)), "phone", "A phone number has 7 to 20 digits."
    )


@pytest.mark.parametrize("phone", ["+1 (212) 555-0100", "0207 946 0000", "1234567"])
def test_enquiry__phone_in_common_formats_is_accepted(client: Client, phone: str) -> None:
    assert post_json(client, valid_enquiry(phone=phone)).status_code == 201


def test_enquiry__invalid_email_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(email="not-an-email")), "email", "Enter a valid email address."
    )


@pytest.mark.parametrize("field", ["parent_name", "child_name", "phone", "email", "child_age_years"])
def test_enquiry__missing_required_field_is_rejected(client: Client, field: str) -> None:
    data = valid_enquiry()
    del data[field]

    assert_rejected(post_json(client, data), field, "This field is required.")


def test_enquiry__unknown_program_slug_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(program="no-such-program")),
        "program",
        "There is no open program with this slug.",
    )


def test_enquiry__inactive_program_slug_is_rejected(client: Client) -> None:
    make_program("closed", is_active=False)

    assert_rejected(
        post_json(client, valid_enquiry(program="closed")),
        "program",
        "There is no open program with this slug.",
    )


def test_enquiry__every_invalid_field_is_reported_at_once(client: Client) -> None:
    response = post_json(client, valid_enquiry(phone="12", email="x", child_age_years=9, consent=False))

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"phone", "email", "child_age_years", "consent"}


def test_enquiry__list_value_for_a_field_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, valid_enquiry(parent_name=["Alex", "Sam"])),
        "parent_name",
        "Expected a single value, not a list or object.",
    )


def test_enquiry__malformed_json_is_rejected(client: Client) -> None:
    response = client.post("/api/enquiries/", data="{not json", content_type="application/json")

    assert_rejected(response, "__all__", "The body is not valid JSON.")


def test_enquiry__json_that_is_not_an_object_is_rejected(client: Client) -> None:
    assert_rejected(
        post_json(client, [valid_enquiry()]), "__all__", "The body must be a JSON object of enquiry fields."
    )


def test_enquiry__unsupported_content_type_is_rejected(client: Client) -> None:
    response = client.post("/api/enquiries/", data="parent_name=Alex", content_type="text/plain")

    assert_rejected(
        response, "__all__", "Send the enquiry as application/json or application/x-www-form-urlencoded."
    )


def test_enquiry__oversized_body_is_refused_with_413(client: Client) -> None:
    response = post_json(client, valid_enquiry(message="x" * MAX_ENQUIRY_BODY_BYTES))

    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not Enquiry.objects.exists()


def test_enquiry__cors_preflight_from_the_frontend_origin_is_allowed(client: Client, settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://kidoostatic.vercel.app"]

    response = client.options(
        "/api/enquiries/",
        HTTP_ORIGIN="https://kidoostatic.vercel.app",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://kidoostatic.vercel.app"
