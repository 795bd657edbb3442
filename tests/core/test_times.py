"""Times on pages: the viewer's locale by script, the exact UTC instant on hover, a readable UTC
text without script."""

from __future__ import annotations

from datetime import datetime, timezone

from core.templatetags.times import ago, when
from core.templatetags.words import words

MOMENT = datetime(2025, 3, 4, 15, 6, 7, tzinfo=timezone.utc)


def test_it_renders_a_time_element_with_the_exact_utc_on_hover():
    html = str(when(MOMENT))
    assert 'datetime="2025-03-04T15:06:07Z"' in html
    assert 'title="2025-03-04 15:06:07 UTC"' in html
    assert ">2025-03-04 15:06 UTC</time>" in html


def test_it_shows_a_date_only_when_asked_and_a_dash_for_nothing():
    assert ">2025-03-04</time>" in str(when(MOMENT, "date"))
    assert when(None) == "—"


def test_ago_keeps_the_exact_instant_on_hover():
    assert 'title="2025-03-04 15:06:07 UTC"' in str(ago(MOMENT)) and " ago</time>" in str(ago(MOMENT))


def test_codes_read_as_words():
    assert words("grant.suspended") == "grant suspended"
    assert words("watermark_detected") == "watermark detected"
