"""{{ moment|when }} → a <time> element: the date and time in UTC as the page is served, turned
into the viewer's own locale and time zone by static/core/times.js, with the exact UTC instant on
hover. `{{ moment|when:"date" }}` shows the date only. Without JavaScript the UTC text stays."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django import template
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.html import format_html

register = template.Library()
STYLES = {"datetime": "%Y-%m-%d %H:%M UTC", "date": "%Y-%m-%d", "seconds": "%Y-%m-%d %H:%M:%S UTC"}


@register.filter
def when(value, style: str = "datetime"):
    if not isinstance(value, datetime):
        return value if value not in (None, "") else "—"
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    utc = value.astimezone(dt_timezone.utc)
    style = style if style in STYLES else "datetime"
    return format_html('<time datetime="{}" title="{}" data-local="{}">{}</time>',
                       utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
                       utc.strftime("%Y-%m-%d %H:%M:%S UTC"), style, utc.strftime(STYLES[style]))


@register.filter
def ago(value):
    """"3 hours ago", with the exact UTC instant on hover."""
    if not isinstance(value, datetime):
        return "—"
    utc = value.astimezone(dt_timezone.utc)
    return format_html('<time datetime="{}" title="{}">{} ago</time>', utc.isoformat(timespec="seconds").replace(
        "+00:00", "Z"), utc.strftime("%Y-%m-%d %H:%M:%S UTC"), timesince(value))
