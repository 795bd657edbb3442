"""`{% model_card text %}`: a model card rendered as on the Hugging Face Hub (core.markdown_cards)."""

from django import template
from django.utils.safestring import mark_safe

from core.markdown_cards import render_card

register = template.Library()


@register.inclusion_tag("core/model_card.html")
def model_card(text: str) -> dict:
    card = render_card(text)
    # Safe: nh3 removed every tag and attribute outside its allow-list.
    return {"front_matter": card.front_matter, "front_matter_refused": card.front_matter_refused,
            "evaluation": card.evaluation, "html": mark_safe(card.html)}  # noqa: S308
