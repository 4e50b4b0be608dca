"""The admin: every model's list and edit pages render for staff, and enquiries stay read-mostly."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from api.demo_data import seed_demo_data
from api.models import Announcement, Enquiry, Event, GalleryAlbum, GalleryImage, Program, Teacher

# Aliased: pytest would try to collect a class named Test* imported into a test module.
from api.models import Testimonial as ParentTestimonial

pytestmark = pytest.mark.django_db

EVERY_MODEL: list[type[Model]] = [
    Program,
    Teacher,
    GalleryAlbum,
    GalleryImage,
    Event,
    Announcement,
    ParentTestimonial,
    Enquiry,
]


@pytest.fixture
def staff_client(client: Client) -> Client:
    seed_demo_data()
    user = User.objects.create_superuser("headteacher", "head@example.com", "correct horse battery")
    client.force_login(user)
    return client


def admin_url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", EVERY_MODEL, ids=lambda model: model.__name__)
def test_admin__changelist_renders(staff_client: Client, model: type[Model]) -> None:
    response = staff_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == model._default_manager.count() > 0


@pytest.mark.parametrize("model", EVERY_MODEL, ids=lambda model: model.__name__)
def test_admin__change_page_renders(staff_client: Client, model: type[Model]) -> None:
    instance = model._default_manager.first()
    assert instance is not None

    response = staff_client.get(admin_url(model, "change", instance.pk))

    assert response.status_code == 200
    assert str(instance) in response.content.decode()


@pytest.mark.parametrize(
    "model", [m for m in EVERY_MODEL if m is not Enquiry], ids=lambda model: model.__name__
)
def test_admin__add_page_renders(staff_client: Client, model: type[Model]) -> None:
    assert staff_client.get(admin_url(model, "add")).status_code == 200


def test_admin__changelist_search_works_for_every_model(staff_client: Client) -> None:
    for model in EVERY_MODEL:
        assert staff_client.get(admin_url(model, "changelist"), {"q": "demo"}).status_code == 200


def test_admin__album_page_edits_its_images_inline(staff_client: Client) -> None:
    album = GalleryAlbum.objects.get(slug="sports-day")

    response = staff_client.get(admin_url(GalleryAlbum, "change", album.pk))

    assert response.context["inline_admin_formsets"][0].formset.model is GalleryImage
    assert "Sports day, photo 1" in response.content.decode()


def test_admin__slugs_are_prepopulated_from_names(staff_client: Client) -> None:
    response = staff_client.get(admin_url(Program, "add"))

    assert response.context["adminform"].prepopulated_fields[0]["field"].name == "slug"


def test_admin__enquiries_cannot_be_added_by_staff(staff_client: Client) -> None:
    assert staff_client.get(admin_url(Enquiry, "add")).status_code == 403


def test_admin__enquiry_personal_data_is_read_only_and_is_handled_editable(staff_client: Client) -> None:
    enquiry = Enquiry.objects.filter(is_handled=False).first()
    assert enquiry is not None
    original_email = enquiry.email

    response = staff_client.post(
        admin_url(Enquiry, "change", enquiry.pk),
        {"is_handled": "on", "email": "attacker@example.org", "parent_name": "Changed"},
    )

    assert response.status_code == 302
    enquiry.refresh_from_db()
    assert enquiry.is_handled is True
    assert enquiry.email == original_email
    assert enquiry.parent_name != "Changed"
