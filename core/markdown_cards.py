"""Model cards as the Hugging Face Hub shows them: the YAML front matter as a small table of facts,
the Markdown below it as HTML. The Markdown is rendered by markdown-it-py (CommonMark + tables)
and the HTML is then sanitised by nh3 (Rust's ammonia): a card is text a trainer may edit, so
whatever HTML or links it holds, only a fixed set of tags and safe URL schemes reach the page.

The front matter is parsed so that it can never be larger than its text: YAML aliases (`*name`,
and `<<: *name` merges) are refused from the parser's events, before anything is composed or
built from them, as are deep nesting and an overlong block. Without aliases a few hundred bytes could
name millions of values ("billion laughs"), which the table would then spell out on every view.
Saving such a card is refused (`front_matter_check`); one saved before renders with its front
matter left out and a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nh3
import yaml
from markdown_it import MarkdownIt

from core.errors import InvalidRequest

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "strong", "em", "del", "code", "pre",
                "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
# Imprint's generated front matter is about 1 kB and a Hub card with dozens of metrics a few kB; at
# this size the largest accepted block parses in tens of milliseconds on every view. The depth limit
# also keeps the recursive composer away from Python's recursion limit.
MAX_FRONT_MATTER_CHARS = 16_000
MAX_FRONT_MATTER_DEPTH = 20
_FIRST_LINE = 2  # the front matter's first line is the card's second, after the opening `---`


class CardInvalid(InvalidRequest):
    """The card's front matter could expand beyond its text; `message` names the line."""

    code = "card_invalid"


# libyaml when built in: the pure-Python parser takes about five times as long on the largest front matter.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENS, _CLOSES = (yaml.MappingStartEvent, yaml.SequenceStartEvent), (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _refuse_expansion(source: str) -> None:
    """Walk the document's parse events, before anything is composed or built from them, and
    refuse the first alias and the first collection nested deeper than MAX_FRONT_MATTER_DEPTH.
    Raises CardInvalid naming the card's line, and yaml.YAMLError for text that is not YAML."""
    depth = 0
    for event in yaml.parse(source, Loader=_SAFE_LOADER):
        line = event.start_mark.line + _FIRST_LINE
        if isinstance(event, yaml.AliasEvent):
            raise CardInvalid(f"The card's front matter uses the YAML alias *{event.anchor} on line {line}: "
                              "aliases are not accepted, write the value out.", param="card")
        if isinstance(event, _OPENS):
            depth += 1
            if depth > MAX_FRONT_MATTER_DEPTH:
                raise CardInvalid(f"The card's front matter nests deeper than {MAX_FRONT_MATTER_DEPTH} levels "
                                  f"on line {line}.", param="card")
        elif isinstance(event, _CLOSES):
            depth -= 1


def front_matter_load(source: str):
    """The YAML document `source` (a card's front matter, without its `---` lines) as Python
    values, no larger than its text. Raises CardInvalid for an alias, nesting deeper than
    MAX_FRONT_MATTER_DEPTH or more than MAX_FRONT_MATTER_CHARS characters, and yaml.YAMLError
    for text that is not YAML."""
    if len(source) > MAX_FRONT_MATTER_CHARS:
        raise CardInvalid(f"The card's front matter is longer than {MAX_FRONT_MATTER_CHARS:,} characters.",
                          param="card")
    _refuse_expansion(source)
    return yaml.load(source, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader, checked above


@dataclass
class RenderedCard:
    html: str
    front_matter: list[tuple[str, str]] = field(default_factory=list)  # (key, display value), in order
    front_matter_refused: str = ""  # why the front matter is not shown (a card saved before the checks)


def _parts(text: str) -> tuple[str | None, str]:
    """(front matter source or None, body) of a card's text."""
    text = (text or "").replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return None, text
    end = text.find("\n---", 4)
    if end < 0:
        return None, text
    return text[4:end], text[end + 4:].lstrip("\n")


def front_matter_check(text: str) -> None:
    """Refuse a card whose front matter could expand beyond its text. Front matter that is not
    YAML at all is accepted (it is shown as part of the body). Raises CardInvalid."""
    source, _ = _parts(text)
    if source is None:
        return
    try:
        front_matter_load(source)
    except yaml.YAMLError:
        pass


def _split(text: str) -> tuple[dict, str, str]:
    """(metadata, body, why the front matter was refused or "")."""
    source, body = _parts(text)
    if source is None:
        return {}, body, ""
    try:
        meta = front_matter_load(source)
    except CardInvalid as exc:
        return {}, body, exc.message
    except yaml.YAMLError:
        return {}, (text or "").replace("\r\n", "\n"), ""
    if not isinstance(meta, dict):
        return {}, (text or "").replace("\r\n", "\n"), ""
    return meta, body, ""


def split_front_matter(text: str) -> tuple[dict, str]:
    """(metadata, body) of a card; metadata is {} when the card has no `---` block or it is not
    a YAML mapping (then the whole text is the body), and also when the block is refused by
    `front_matter_load` (then the body is what follows it)."""
    meta, body, _ = _split(text)
    return meta, body


def _display(value) -> str:
    if isinstance(value, list):
        return ", ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_display(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def render_card(text: str) -> RenderedCard:
    """The card's Markdown as sanitised HTML and its front matter as (key, value) rows. The
    front-matter values are plain text (escaped by the template); the HTML is safe to mark safe.
    Front matter refused by `front_matter_load` gives no rows and says why in
    `front_matter_refused`."""
    meta, body, refused = _split(text)
    html = nh3.clean(_MARKDOWN.render(body), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener noreferrer")
    return RenderedCard(html=html, front_matter=[(str(k), _display(v)) for k, v in meta.items()],
                        front_matter_refused=refused)
