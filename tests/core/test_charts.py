"""The SVG charts: complete, escaped markup that templates may show as is."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.utils.safestring import SafeString

from core.charts import bar_chart, line_chart, nice_max, usage_chart


def test_bars_stay_inside_the_chart():
    svg = bar_chart(["a", "b"], [1, 2], title="Two bars")
    xs = [float(part.split('"')[0]) for part in svg.split('<rect x="')[1:]]
    assert len(xs) == 2 and all(x > 0 for x in xs)


def test_labels_and_titles_are_escaped():
    svg = bar_chart(["<script>"], [3], title='Sales "&" <b>')
    assert isinstance(svg, SafeString) and svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg


def test_a_line_per_series_named_at_the_edge():
    svg = line_chart(["a", "b"], {"usd": [1, 2], "eur": [0, 5]}, title="Revenue")
    assert svg.count("<polyline") == 2 and ">usd<" in svg and ">eur<" in svg


def test_the_axis_tops_out_at_a_round_number():
    assert [nice_max(v) for v in (0, 1, 3, 7, 10, 11, 4500)] == [1, 1, 5, 10, 10, 20, 5000]


def test_a_grants_usage_has_a_bar_a_day_and_a_label_a_week():
    days = [{"day": date(2026, 11, 1) + timedelta(days=i), "tokens": i * 10, "requests": i} for i in range(30)]
    svg = usage_chart(days, quota_tokens=1000)
    assert svg.count("<rect") == 30 and "Nov 01" in svg and "Nov 08" in svg and "Nov 02" not in svg
    assert "quota 1,000" in svg and "2026-11-03: 20 tokens in 2 requests" in svg


def test_axis_ticks_are_whole_units_and_never_repeat():
    from core.charts import money, nice_axis

    assert nice_axis(1) == (1, 1) and nice_axis(7) == (8, 2) and nice_axis(4500) == (6000, 2000)
    svg = line_chart(["a", "b"], {"usd": [0, 1]}, title="Revenue", fmt=money)
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert labels == ["0.00", "0.01"]
