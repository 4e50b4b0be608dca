"""Mount before the admin: ``path("admin/data-safety/", include("ops.dashboard.urls"))``."""

from django.contrib import admin
from django.urls import path

from ops.dashboard.views import DataSafetyView

app_name = "ops_dashboard"

urlpatterns = [
    # admin_view: staff only (others go to the admin's login page), CSRF-protected POSTs.
    path("", admin.site.admin_view(DataSafetyView.as_view()), name="data-safety"),
]
