from django.urls import URLPattern, URLResolver, path

from ops.health import views

urlpatterns: list[URLPattern | URLResolver] = [
    # No trailing slash: the platform probes exactly the path it is given (render.yaml: /healthz).
    path("healthz", views.healthz, name="healthz"),
    path("healthz/details", views.health_details, name="healthz-details"),
]
