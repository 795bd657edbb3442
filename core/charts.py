"""Server-rendered SVG charts: no JavaScript, nothing fetched from elsewhere, and pages print as
they show. Each function returns a complete <svg> element, safe to put in a template, with every
label escaped (nothing from users reaches the markup except through `escape`).

Named callers: the trainer's dashboards (`bar_chart`, `line_chart`) and a grant's daily usage on
a compliance case (`usage_chart`).
"""

from __future__ import annotations

from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 56, 28, 24
PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (a round top for the axis)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


MAX_TICKS = 4  # gridlines above zero


def nice_axis(value: float, *, unit: float = 1) -> tuple[float, float]:
    """(top, step) of an axis reaching `value`: the step is 1, 2 or 5 × 10^k and never below
    `unit` (one cent, one token), so every tick is a whole number of units and no two ticks read
    the same; the top is the first multiple of the step at or above `value`."""
    step = max(nice_max(value / MAX_TICKS), unit)
    ticks = max(1, -(-value // step))  # ceiling division, at least one step
    return ticks * step, step


def _frame(title: str, axis: tuple[float, float], fmt, css_class: str) -> list[str]:
    ymax, step = axis
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" '
         f'role="img" aria-label="{escape(title)}">'),
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for i in range(round(ymax / step) + 1):
        value = step * i
        y = _y(value, ymax)
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f'{escape(fmt(value))}</text>')
    return parts


def _y(value: float, ymax: float) -> float:
    plot_height = HEIGHT - PAD_BOTTOM - PAD_TOP
    return HEIGHT - PAD_BOTTOM - (value / ymax) * plot_height if ymax else HEIGHT - PAD_BOTTOM


def _x(index: int, count: int) -> float:
    plot_width = WIDTH - PAD_LEFT - 16
    return PAD_LEFT + 8 + (plot_width * index / max(count - 1, 1))


def _slot_x(index: int, count: int) -> float:
    """The centre of bar `index` of `count`, each in an equal slot of the plot's width."""
    return PAD_LEFT + (WIDTH - PAD_LEFT - 16) * (index + 0.5) / max(count, 1)


def _x_labels(labels: list[str], every: int | None = None, position=_x) -> list[str]:
    step = every or max(1, len(labels) // 6)
    return [f'<text x="{position(i, len(labels)):.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">'
            f"{escape(label)}</text>" for i, label in enumerate(labels) if i % step == 0]


def bar_chart(labels: list[str], values: list[int], *, title: str, fmt=lambda v: f"{v:g}",
              tooltips: list[str] | None = None, label_every: int | None = None,
              css_class: str = "chart") -> SafeString:
    """Bars of `values` with `labels` under them (every `label_every`-th, default about six)."""
    axis = nice_axis(max(values, default=0))
    ymax = axis[0]
    parts = _frame(title, axis, fmt, css_class)
    bar = max(2.0, (WIDTH - PAD_LEFT - 16) / max(len(values), 1) * 0.7)
    for i, value in enumerate(values):
        y = _y(value, ymax)
        tip = tooltips[i] if tooltips else f"{labels[i]}: {fmt(value)}"
        parts.append(f'<rect x="{_slot_x(i, len(values)) - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                     f'height="{HEIGHT - PAD_BOTTOM - y:.1f}" fill="{PALETTE[0]}"><title>{escape(tip)}</title></rect>')
    return mark_safe("".join(parts + _x_labels(labels, label_every, _slot_x) + ["</svg>"]))


def line_chart(labels: list[str], series: dict[str, list[int]], *, title: str,
               fmt=lambda v: f"{v:g}") -> SafeString:
    """One line per series, named at the right edge."""
    axis = nice_axis(max((max(values, default=0) for values in series.values()), default=0))
    ymax = axis[0]
    parts = _frame(title, axis, fmt, "chart")
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{_x(i, len(values)):.1f},{_y(v, ymax):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                     f"<title>{escape(name)}</title></polyline>")
        parts.append(f'<text x="{WIDTH - 10}" y="{PAD_TOP + 14 * (n + 1)}" font-size="11" '
                     f'text-anchor="end" fill="{colour}">{escape(name)}</text>')
    return mark_safe("".join(parts + _x_labels(labels) + ["</svg>"]))


def usage_chart(days: list[dict], *, quota_tokens: int | None = None) -> SafeString:
    """A grant's tokens per day (`days`: [{day, tokens, requests}]), a date label every week."""
    title = "Tokens generated per day" + (f" (quota {quota_tokens:,})" if quota_tokens else "")
    return bar_chart([d["day"].strftime("%b %d") for d in days], [d["tokens"] for d in days], title=title,
                     fmt=lambda v: f"{int(v):,}", label_every=7, css_class="usage-plot",
                     tooltips=[f"{d['day'].isoformat()}: {d['tokens']:,} tokens in {d['requests']} requests"
                               for d in days])


def money(cents: float) -> str:
    return f"{cents / 100:,.2f}"
