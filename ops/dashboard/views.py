"""The data-safety page: staff with ``ops.view_datasafety`` (superusers have it) see it; it only reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from ops.dashboard import charts
from ops.dashboard.data import (
    HealthSection,
    SizeSection,
    Verdict,
    backups_section,
    last_health,
    media_section,
    run_health,
    size_section,
    verify,
)
from ops.health.db_size import format_bytes

PERMISSION = "ops.view_datasafety"
# Projections further out than this say "not within 5 years" rather than draw a line off the chart.
PROJECTION_HORIZON = dt.timedelta(days=5 * 365)


def size_charts(section: SizeSection) -> dict[str, Any]:
    """The gauge, the 10 largest tables and the samples with their projection, as SVG."""
    report = section.report
    if report is None:
        return {}
    gauge = charts.gauge(
        report.used_percent,
        section.warn_at,
        section.fail_at,
        title="Database size against the plan limit",
        desc=(
            f"{format_bytes(report.size_bytes)} of {format_bytes(report.limit_bytes)} used "
            f"({report.used_percent:.1f} %); warns at {section.warn_at:.0f} %, "
            f"fails at {section.fail_at:.0f} %."
        ),
    )
    bars = [
        charts.Bar(table.name, float(table.total_bytes), format_bytes(table.total_bytes))
        for table in report.tables
    ]
    tables = charts.bar_chart(
        bars,
        title=f"The {len(bars)} largest tables",
        desc="; ".join(f"{bar.label}: {bar.text}" for bar in bars) or "No tables measured.",
    )
    points = [charts.Point(sample.taken_at, float(sample.size_bytes)) for sample in section.samples]
    projection = None
    growth = report.growth
    full_at = growth.projected_full_at if growth else None
    if full_at is not None and points and full_at - points[-1].at <= PROJECTION_HORIZON:
        projection = (points[-1], charts.Point(full_at, float(report.limit_bytes)))
    if full_at is None:
        outlook = "The database is not growing."
    elif projection is None:
        outlook = "At this rate the limit is not reached within 5 years."
    else:
        outlook = f"At this rate the limit is reached on {full_at:%Y-%m-%d}."
    history = charts.line_chart(
        points,
        limit=float(report.limit_bytes),
        projection=projection,
        title="Recorded database size",
        desc=f"{len(points)} samples recorded by db_size --record. {outlook}",
        value_text=format_bytes(report.limit_bytes),
    )
    return {"gauge": gauge, "tables_chart": tables, "history_chart": history, "outlook": outlook}


@method_decorator(never_cache, name="dispatch")
class DataSafetyView(View):
    database = DEFAULT_DB_ALIAS
    template_name = "ops/data_safety.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request, last_health(self.database))

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action")
        if action == "run-checks":
            return self.page(request, run_health(self.database))
        if action == "verify":
            name = request.POST.get("backup", "")
            listed = {row.name for row in backups_section(self.database).rows}
            # Only a listed backup: the form is no way to probe the repository for other keys.
            if name not in listed:
                verdict = Verdict(name, False, "That backup is not listed here; reload the page.")
            else:
                verdict = verify(self.database, name)
            return self.page(request, last_health(self.database), verdict=verdict)
        return self.page(request, last_health(self.database), status=400)

    def page(
        self,
        request: HttpRequest,
        health: HealthSection,
        *,
        verdict: Verdict | None = None,
        status: int = 200,
    ) -> HttpResponse:
        size = size_section(self.database)
        context = {
            **admin.site.each_context(request),
            "title": "Data safety",
            "health": health,
            "backups": backups_section(self.database),
            "size": size,
            "media": media_section(self.database),
            "verdict": verdict,
            **size_charts(size),
        }
        return render(request, self.template_name, context, status=status)
