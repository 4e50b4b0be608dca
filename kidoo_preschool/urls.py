from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before admin/: the data-safety page is the admin's, under its own URL.
    path("admin/data-safety/", include("ops.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("", include("ops.health.urls")),
]
