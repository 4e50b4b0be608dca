"""Server-rendered SVG charts for the data-safety page: no JavaScript, no CDN.

Each chart is accessible (``role="img"``, ``<title>`` and ``<desc>``; the page puts a plain table
beside it) and takes its colours from the admin's CSS variables through classes, so it reads in the
light and the dark admin themes alike. Every text that reaches the SVG is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as the reader sees it ("12.3 MB")


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    value: float


def _html(template: str, *args: str | float) -> SafeString:
    """format_html that keeps numbers numbers, so templates may use format specs such as {:.1f}."""
    safe = [arg if isinstance(arg, int | float) else conditional_escape(arg) for arg in args]
    return mark_safe(template.format(*safe))  # noqa: S308 - every text argument is escaped above


def _svg(width: int, height: int, title: str, desc: str, body: Sequence[str], css_class: str) -> SafeString:
    head = _html(
        '<svg class="ops-chart {}" role="img" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        css_class,
        width,
        height,
        css_class,
        css_class,
        css_class,
        title,
        css_class,
        desc,
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every part is built with _html


def gauge(used_percent: float, warn_at: float, fail_at: float, *, title: str, desc: str) -> SafeString:
    """A horizontal gauge of 0-100 % with the warn and fail thresholds marked."""
    width, height, left, right, top, bar_height = 480, 64, 10, 470, 14, 22
    span = right - left

    def x(percent: float) -> float:
        return left + span * min(max(percent, 0.0), 100.0) / 100.0

    state = "failure" if used_percent >= fail_at else "warning" if used_percent >= warn_at else "ok"
    body = [
        _html(
            '<rect class="track" x="{}" y="{}" width="{}" height="{}" rx="4"/>', left, top, span, bar_height
        ),
        _html(
            '<rect class="fill {}" x="{}" y="{}" width="{:.1f}" height="{}" rx="4"/>',
            state,
            left,
            top,
            x(used_percent) - left,
            bar_height,
        ),
    ]
    for name, percent in (("warn", warn_at), ("fail", fail_at)):
        body.append(
            _html(
                '<line class="threshold {}" x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}"/>'
                '<text class="label" x="{:.1f}" y="{}" text-anchor="middle">{} {:.0f} %</text>',
                name,
                x(percent),
                x(percent),
                top - 6,
                top + bar_height + 6,
                x(percent),
                top + bar_height + 20,
                name,
                percent,
            )
        )
    body.append(
        _html(
            '<text class="value" x="{}" y="{}">used {:.1f} %</text>',
            left,
            top + bar_height + 20,
            used_percent,
        )
    )
    return _svg(width, height, title, desc, body, "ops-gauge")


def bar_chart(bars: Sequence[Bar], *, title: str, desc: str) -> SafeString:
    """Horizontal bars, largest first as given, each labelled with its name and value."""
    row, label_width, width = 24, 220, 640
    height = max(row * len(bars), row) + 8
    largest = max((bar.value for bar in bars), default=0.0) or 1.0
    span = width - label_width - 90
    body = []
    for index, bar in enumerate(bars):
        y = 4 + index * row
        length = max(span * bar.value / largest, 1.0)
        body.append(
            _html(
                '<g class="bar-row"><text class="label" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="bar" x="{}" y="{}" width="{:.1f}" height="{}" rx="2"/>'
                '<text class="value" x="{:.1f}" y="{}">{}</text></g>',
                label_width - 8,
                y + 16,
                _shorten(bar.label, 30),
                label_width,
                y + 3,
                length,
                row - 8,
                label_width + length + 6,
                y + 16,
                bar.text,
            )
        )
    return _svg(width, height, title, desc, body, "ops-bars")


def line_chart(
    points: Sequence[Point],
    *,
    limit: float,
    projection: tuple[Point, Point] | None,
    title: str,
    desc: str,
    value_text: str,
) -> SafeString:
    """Recorded samples as a line (one circle each), the plan limit, and the projected growth dashed."""
    width, height, left, right, top, bottom = 640, 240, 60, 620, 16, 200
    every = [*points, *(projection or ())]
    if not every:
        return _svg(width, height, title, desc, [], "ops-line")
    start = min(point.at for point in every)
    end = max(point.at for point in every)
    seconds = max((end - start).total_seconds(), 1.0)
    highest = max([limit, *(point.value for point in every)]) or 1.0

    def x(at: dt.datetime) -> float:
        return float(left + (right - left) * (at - start).total_seconds() / seconds)

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / highest

    body = [
        _html('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>', left, right, bottom, bottom),
        _html('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>', left, left, top, bottom),
        _html(
            '<line class="limit" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
            '<text class="label" x="{}" y="{:.1f}">limit {}</text>',
            left,
            right,
            y(limit),
            y(limit),
            left + 4,
            y(limit) - 4,
            value_text,
        ),
        _html('<text class="label" x="{}" y="{}">{}</text>', left, bottom + 18, f"{start:%Y-%m-%d}"),
        _html(
            '<text class="label" x="{}" y="{}" text-anchor="end">{}</text>',
            right,
            bottom + 18,
            f"{end:%Y-%m-%d}",
        ),
    ]
    if points:
        path = " ".join(f"{x(point.at):.1f},{y(point.value):.1f}" for point in points)
        body.append(_html('<polyline class="samples" points="{}"/>', path))
        body.extend(
            _html(
                '<circle class="sample" cx="{:.1f}" cy="{:.1f}" r="2.5"><title>{}: {}</title></circle>',
                x(point.at),
                y(point.value),
                f"{point.at:%Y-%m-%d %H:%M}",
                f"{point.value:,.0f} bytes",
            )
            for point in points
        )
    if projection:
        begin, full = projection
        body.append(
            _html(
                '<line class="projection" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>'
                '<text class="label" x="{:.1f}" y="{:.1f}" text-anchor="end">full {}</text>',
                x(begin.at),
                y(begin.value),
                x(full.at),
                y(full.value),
                x(full.at),
                y(full.value) + 16,
                f"{full.at:%Y-%m-%d}",
            )
        )
    return _svg(width, height, title, desc, body, "ops-line")


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"
