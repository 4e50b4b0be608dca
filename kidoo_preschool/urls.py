from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    # Before admin/: the data-safety page is the admin's, under its own URL.
    path("admin/data-safety/", include("ops.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("", include("ops.health.urls")),
]

# Local development (DEBUG=1) with media on local disk: runserver serves MEDIA_ROOT, so the API's
# image URLs open. In production media are on Cloudinary (or behind the web server), and static()
# adds nothing when DEBUG is off.
if settings.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage":
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
