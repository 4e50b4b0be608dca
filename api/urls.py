from django.urls import path, re_path

from api import views

app_name = "api"
urlpatterns = [
    path("programs/", views.program_list, name="program-list"),
    path("programs/<slug:slug>/", views.program_detail, name="program-detail"),
    path("teachers/", views.teacher_list, name="teacher-list"),
    path("teachers/<slug:slug>/", views.teacher_detail, name="teacher-detail"),
    path("gallery/", views.album_list, name="album-list"),
    path("gallery/<slug:slug>/", views.album_detail, name="album-detail"),
    path("events/", views.event_list, name="event-list"),
    path("events/<uuid:public_id>/", views.event_detail, name="event-detail"),
    path("announcements/", views.announcement_list, name="announcement-list"),
    path("announcements/<int:announcement_id>/", views.announcement_detail, name="announcement-detail"),
    path("testimonials/", views.testimonial_list, name="testimonial-list"),
    path("enquiries/", views.enquiry_create, name="enquiry-create"),
    # Last: any other /api/.../ answers a JSON 404. Only slash-terminated paths, so APPEND_SLASH
    # still redirects /api/programs to /api/programs/.
    re_path(r"^(?P<path>(?:.*/)?)$", views.json_not_found, name="not-found"),
]
