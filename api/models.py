"""The preschool's own domain: what it teaches, who teaches it, what it shows, who asks to join."""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from api.storage import get_document_storage


class Program(models.Model):
    """A class group (e.g. 'Toddlers', 'Pre-K'), with its ages, fee and weekly schedule."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    age_min_years = models.PositiveSmallIntegerField(validators=[MaxValueValidator(12)])
    age_max_years = models.PositiveSmallIntegerField(validators=[MaxValueValidator(12)])
    monthly_fee = models.DecimalField(max_digits=8, decimal_places=2)
    # e.g. {"mon": ["08:30", "12:30"], "wed": ["08:30", "12:30"]}
    schedule = models.JSONField(default=dict, blank=True)
    capacity = models.PositiveSmallIntegerField(default=12)
    image = models.ImageField(upload_to="programs/", blank=True)
    is_active = models.BooleanField(default=True)
    display_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["display_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(age_max_years__gte=F("age_min_years")), name="program_age_range_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Teacher(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    role = models.CharField(max_length=120, blank=True)
    bio = models.TextField(blank=True)
    photo = models.ImageField(upload_to="teachers/", blank=True)
    programs = models.ManyToManyField(Program, related_name="teachers", blank=True)
    joined_on = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    display_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["display_order", "name"]

    def __str__(self) -> str:
        return self.name


class GalleryAlbum(models.Model):
    title = models.CharField(max_length=160)
    slug = models.SlugField(max_length=160, unique=True)
    description = models.TextField(blank=True)
    cover = models.ImageField(upload_to="gallery/covers/", blank=True)
    is_published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class GalleryImage(models.Model):
    album = models.ForeignKey(GalleryAlbum, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to="gallery/")
    caption = models.CharField(max_length=240, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.caption or self.image.name or f"image {self.pk}"


class Event(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=160)
    slug = models.SlugField(max_length=160, unique=True)
    description = models.TextField(blank=True)
    banner = models.ImageField(upload_to="events/", blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    location = models.CharField(max_length=200, blank=True)
    program = models.ForeignKey(
        Program, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    is_published = models.BooleanField(default=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gte=F("starts_at")), name="event_ends_after_start")
        ]

    def __str__(self) -> str:
        return self.title


class Announcement(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
    attachment = models.FileField(upload_to="announcements/", storage=get_document_storage, blank=True)
    published_at = models.DateTimeField()
    is_pinned = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_pinned", "-published_at"]

    def __str__(self) -> str:
        return self.title


class Testimonial(models.Model):
    parent_name = models.CharField(max_length=120)
    quote = models.TextField()
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    photo = models.ImageField(upload_to="testimonials/", blank=True)
    is_approved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.parent_name} ({self.rating}/5)"


class Enquiry(models.Model):
    """A parent's request for a place or a visit. Personal data: never exposed by the public API."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    parent_name = models.CharField(max_length=120)
    phone = models.CharField(max_length=32)
    email = models.EmailField()
    child_name = models.CharField(max_length=120)
    child_age_years = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(7)]
    )
    program = models.ForeignKey(
        Program, on_delete=models.SET_NULL, null=True, blank=True, related_name="enquiries"
    )
    message = models.TextField(blank=True)
    consent = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    is_handled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "enquiries"

    def __str__(self) -> str:
        return f"{self.parent_name} for {self.child_name}"
