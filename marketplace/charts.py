"""Server-rendered SVG charts for the dashboards: no JavaScript, nothing fetched from elsewhere.

Each function returns a complete <svg> element as a string with every label escaped.
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 56, 28, 24
PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def _frame(title: str, ymax: float, fmt) -> list[str]:
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart">'),
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for i in range(3):
        value = ymax * i / 2
        y = _y(value, ymax)
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{escape(fmt(value))}</text>')
    return parts


def _y(value: float, ymax: float) -> float:
    plot_height = HEIGHT - PAD_BOTTOM - PAD_TOP
    return HEIGHT - PAD_BOTTOM - (value / ymax) * plot_height if ymax else HEIGHT - PAD_BOTTOM


def _x(index: int, count: int) -> float:
    plot_width = WIDTH - PAD_LEFT - 16
    return PAD_LEFT + 8 + (plot_width * index / max(count - 1, 1))


def _x_labels(labels: list[str]) -> list[str]:
    step = max(1, len(labels) // 6)
    return [f'<text x="{_x(i, len(labels)):.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">'
            f"{escape(label)}</text>" for i, label in enumerate(labels) if i % step == 0]


def bar_chart(labels: list[str], values: list[int], *, title: str, fmt=lambda v: f"{v:g}") -> str:
    ymax = max(values, default=0) or 1
    parts = _frame(title, ymax, fmt)
    bar = max(2.0, (WIDTH - PAD_LEFT - 16) / max(len(values), 1) * 0.7)
    for i, value in enumerate(values):
        y = _y(value, ymax)
        parts.append(f'<rect x="{_x(i, len(values)) - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                     f'height="{HEIGHT - PAD_BOTTOM - y:.1f}" fill="{PALETTE[0]}">'
                     f"<title>{escape(labels[i])}: {escape(fmt(value))}</title></rect>")
    return "".join(parts + _x_labels(labels) + ["</svg>"])


def line_chart(labels: list[str], series: dict[str, list[int]], *, title: str, fmt=lambda v: f"{v:g}") -> str:
    ymax = max((max(values, default=0) for values in series.values()), default=0) or 1
    parts = _frame(title, ymax, fmt)
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{_x(i, len(values)):.1f},{_y(v, ymax):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                     f"<title>{escape(name)}</title></polyline>")
        parts.append(f'<text x="{WIDTH - 10}" y="{PAD_TOP + 14 * (n + 1)}" font-size="11" '
                     f'text-anchor="end" fill="{colour}">{escape(name)}</text>')
    return "".join(parts + _x_labels(labels) + ["</svg>"])


def money(cents: float) -> str:
    return f"{cents / 100:,.2f}"
