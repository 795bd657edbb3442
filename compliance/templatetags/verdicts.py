"""{{ code|verdict_label }} → "Watermark detected": a verification's verdict code as words, from
the one mapping in compliance.verdicts, wherever a page shows a stored verdict."""

from django import template

from compliance.verdicts import verdict_words

register = template.Library()


@register.filter
def verdict_label(code) -> str:
    return verdict_words(code)["label"]


@register.filter
def verdict_summary(code) -> str:
    return verdict_words(code)["summary"]
