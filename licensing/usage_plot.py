"""A grant's daily token usage as a server-rendered SVG bar chart: no JavaScript, no CDN, and the
page prints as it shows. Every number and label is escaped; nothing from users reaches the markup
except through `escape`."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 26, 30


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (a round top for the axis)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def usage_svg(days: list[dict], *, quota_tokens: int | None = None) -> SafeString:
    """Bars of `days` ([{day, tokens, requests}]) with a y axis in tokens and a label every week."""
    top = _nice_max(max([d["tokens"] for d in days] + [1]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-plot" viewBox="0 0 {WIDTH} {HEIGHT}" '
              f'role="img" aria-label="Tokens generated per day">'),
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#8a93a6"/>']
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6478">'
                     f'{int(top * fraction):,}</text>')
        if fraction:
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eef0f5"/>')
    for i, d in enumerate(days):
        h = plot_h * d["tokens"] / top
        x = LEFT + i * slot + slot * 0.15
        title = escape(f"{d['day'].isoformat()}: {d['tokens']:,} tokens in {d['requests']} requests")
        parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="#3b5bdb"><title>{title}</title></rect>')
        last = len(days) - 1
        # A label a week, and the last day unless it would sit on the previous weekly label.
        if i % 7 == 0 or (i == last and last % 7 >= 4):
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" '
                         f'fill="#5b6478">{escape(d["day"].strftime("%b %d"))}</text>')
    parts.append(f'<text x="{LEFT}" y="12" font-size="11" fill="#5b6478">tokens per day'
                 + (escape(f" (quota {quota_tokens:,})") if quota_tokens else "") + "</text></svg>")
    return mark_safe("".join(parts))
