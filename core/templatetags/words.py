"""{{ code|words }}: a machine code read as words ("grant.suspended" → "grant suspended",
"watermark_detected" → "watermark detected"), for codes that have no display label of their own."""

import re

from django import template

register = template.Library()


@register.filter
def words(code) -> str:
    return re.sub(r"[._]+", " ", str(code or "")).strip()
