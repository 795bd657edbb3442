"""`{{ version|model_name }}`: a model version's one name (training.model_names) as HTML, the
title for people and the readable id beside it; `model_title` and `model_id` each part alone,
`model_label` as plain text."""

from django import template
from django.utils.html import format_html

from training.model_names import model_name as name_of

register = template.Library()


@register.filter
def model_name(version):
    if version is None:
        return ""
    return format_html('<span class="model-name"><strong>{}</strong> {}</span>', name_of(version).title,
                       model_id(version))


@register.filter
def model_id(version):
    """The readable id alone, the version pin lighter (the owner's name while unlisted)."""
    if version is None:
        return ""
    name = name_of(version)
    return format_html('<span class="mono muted" title="{}">{}<span class="pin">@{}</span></span>',
                       name.api_id, name.readable_id or name.trainer, name.digest12)


@register.filter
def model_label(version):
    """Plain text, where HTML cannot go (a select's options): `Poe Nocturnes (ravenpoet/poe-nocturnes@…)`."""
    return str(name_of(version)) if version is not None else ""


@register.filter
def model_title(version):
    return name_of(version).title if version is not None else ""
