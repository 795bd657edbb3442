"""Model cards as the Hugging Face Hub shows them: the YAML front matter as a small table of facts,
the Markdown below it as HTML. The Markdown is rendered by markdown-it-py (CommonMark + tables)
and the HTML is then sanitised by nh3 (Rust's ammonia): a card is text a trainer may edit, so
whatever HTML or links it holds, only a fixed set of tags and safe URL schemes reach the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nh3
import yaml
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "strong", "em", "del", "code", "pre",
                "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}


@dataclass
class RenderedCard:
    html: str
    front_matter: list[tuple[str, str]] = field(default_factory=list)  # (key, display value), in order


def split_front_matter(text: str) -> tuple[dict, str]:
    """(metadata, body) of a card; metadata is {} when the card has no `---` block or it is not
    a YAML mapping (then the whole text is the body)."""
    text = (text or "").replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    try:
        meta = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    return meta, text[end + 4:].lstrip("\n")


def _display(value) -> str:
    if isinstance(value, list):
        return ", ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_display(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def render_card(text: str) -> RenderedCard:
    """The card's Markdown as sanitised HTML and its front matter as (key, value) rows. The
    front-matter values are plain text (escaped by the template); the HTML is safe to mark safe."""
    meta, body = split_front_matter(text)
    html = nh3.clean(_MARKDOWN.render(body), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener noreferrer")
    return RenderedCard(html=html, front_matter=[(str(k), _display(v)) for k, v in meta.items()])
