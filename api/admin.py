"""The staff's back office for everything the site shows, and the inbox of parents' enquiries."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from api.models import Announcement, Enquiry, Event, GalleryAlbum, GalleryImage, Program, Teacher, Testimonial


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "age_min_years",
        "age_max_years",
        "monthly_fee",
        "capacity",
        "is_active",
        "display_order",
    ]
    list_editable = ["is_active", "display_order"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["public_id"]


@admin.register(Teacher)
class TeacherAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "joined_on", "is_active", "display_order"]
    list_editable = ["is_active", "display_order"]
    list_filter = ["is_active", "programs"]
    search_fields = ["name", "slug", "role", "bio"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["programs"]


class GalleryImageInline(admin.TabularInline):
    model = GalleryImage
    extra = 3
    fields = ["image", "caption", "taken_at", "sort_order"]


@admin.register(GalleryAlbum)
class GalleryAlbumAdmin(admin.ModelAdmin):
    list_display = ["title", "image_count", "is_published", "created_at"]
    list_filter = ["is_published", "created_at"]
    search_fields = ["title", "slug", "description"]
    prepopulated_fields = {"slug": ["title"]}
    date_hierarchy = "created_at"
    inlines = [GalleryImageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[GalleryAlbum]:
        # Counted in the list's one query, not one query per album.
        albums: QuerySet[GalleryAlbum] = super().get_queryset(request)
        return albums.annotate(number_of_images=Count("images"))

    @admin.display(description="images", ordering="number_of_images")
    def image_count(self, album: GalleryAlbum) -> int:
        number_of_images: int = album.number_of_images  # type: ignore[attr-defined]
        return number_of_images


@admin.register(GalleryImage)
class GalleryImageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "album", "taken_at", "sort_order"]
    list_filter = ["album"]
    search_fields = ["caption", "image", "album__title"]
    list_select_related = ["album"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["title", "starts_at", "ends_at", "location", "program", "is_published"]
    list_filter = ["is_published", "program", "starts_at"]
    search_fields = ["title", "slug", "description", "location"]
    prepopulated_fields = {"slug": ["title"]}
    date_hierarchy = "starts_at"
    list_select_related = ["program"]
    readonly_fields = ["public_id"]


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    list_display = ["title", "published_at", "is_pinned", "has_attachment"]
    list_filter = ["is_pinned", "published_at"]
    search_fields = ["title", "body"]
    date_hierarchy = "published_at"

    @admin.display(description="attachment", boolean=True)
    def has_attachment(self, announcement: Announcement) -> bool:
        return bool(announcement.attachment)


@admin.register(Testimonial)
class TestimonialAdmin(admin.ModelAdmin):
    list_display = ["parent_name", "rating", "is_approved", "created_at"]
    list_editable = ["is_approved"]
    list_filter = ["is_approved", "rating"]
    search_fields = ["parent_name", "quote"]
    actions = ["approve"]

    @admin.action(description="Approve selected testimonials for the website")
    def approve(self, request: HttpRequest, queryset: QuerySet[Testimonial]) -> None:
        updated = queryset.update(is_approved=True)
        self.message_user(request, f"{updated} testimonial(s) approved.")


@admin.register(Enquiry)
class EnquiryAdmin(admin.ModelAdmin):
    """Read-mostly: an enquiry is what a parent wrote; staff only mark it handled."""

    list_display = ["parent_name", "child_name", "child_age_years", "program", "created_at", "is_handled"]
    list_editable = ["is_handled"]
    list_filter = ["is_handled", "program", "created_at"]
    search_fields = ["parent_name", "child_name", "email", "phone"]
    date_hierarchy = "created_at"
    list_select_related = ["program"]
    readonly_fields = [
        "public_id",
        "parent_name",
        "phone",
        "email",
        "child_name",
        "child_age_years",
        "program",
        "message",
        "consent",
        "created_at",
    ]
    fields = [*readonly_fields, "is_handled"]
    actions = ["mark_handled"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Enquiries come from parents through the website, never typed in by staff.
        return False

    @admin.action(description="Mark selected enquiries as handled")
    def mark_handled(self, request: HttpRequest, queryset: QuerySet[Enquiry]) -> None:
        updated = queryset.update(is_handled=True)
        self.message_user(request, f"{updated} enquiry(ies) marked as handled.")
