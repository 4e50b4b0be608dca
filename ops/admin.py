"""The data-safety page's entry in the admin index ("Operations"), for those who may see it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from ops.models import DataSafety


@admin.register(DataSafety)
class DataSafetyAdmin(admin.ModelAdmin):
    """No rows, nothing to add or change: the index links to the page, which lives at its own URL."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("ops_dashboard:data-safety"))
