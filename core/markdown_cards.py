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

import re
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
# Imprint's own section markers: HTML comments on a line of their own, which a Hub renderer hides.
# Raw HTML in a card stays visible text here, so exactly these lines are taken out before rendering.
_SECTION_MARKER = re.compile(r"^<!-- /?imprint:[a-z-]+ -->[ \t]*\n?", re.MULTILINE)


def section_markers(name: str) -> tuple[str, str]:
    """The comments that open and close the section `name` Imprint regenerates in a card; the card
    renders without them."""
    return f"<!-- imprint:{name} -->", f"<!-- /imprint:{name} -->"


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


@dataclass(frozen=True)
class EvaluationResult:
    """One row of the Hub's evaluation table, from a card's `model-index`."""

    model: str
    task: str
    dataset: str
    metric: str
    metric_type: str
    value: str


@dataclass
class RenderedCard:
    html: str
    front_matter: list[tuple[str, str]] = field(default_factory=list)  # (key, display value), in order
    front_matter_refused: str = ""  # why the front matter is not shown (a card saved before the checks)
    evaluation: list[EvaluationResult] = field(default_factory=list)  # `model-index`, as a table


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


def _named(value) -> str:
    """A `model-index` field that the Hub gives as {name, type} or as a plain string."""
    if isinstance(value, dict):
        return _display(value.get("name") or value.get("type"))
    return _display(value)


def _metric_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _display(value)


def _evaluation(model_index) -> list[EvaluationResult] | None:
    """The rows of a `model-index` in the Hub's shape (models with results, each a task, a dataset
    and metrics), or None when it is not in that shape (then it shows as a plain row)."""
    if not isinstance(model_index, list):
        return None
    rows = []
    for model in model_index:
        if not isinstance(model, dict) or not isinstance(model.get("results", []), list):
            return None
        for result in model.get("results") or []:
            if not isinstance(result, dict) or not isinstance(result.get("metrics", []), list):
                return None
            for metric in result.get("metrics") or []:
                if not isinstance(metric, dict):
                    return None
                rows.append(EvaluationResult(
                    model=_display(model.get("name")), task=_named(result.get("task")),
                    dataset=_named(result.get("dataset")), metric=_display(metric.get("name") or metric.get("type")),
                    metric_type=_display(metric.get("type")), value=_metric_value(metric.get("value"))))
    return rows


def _facts(meta: dict) -> tuple[list[tuple[str, str]], list[EvaluationResult]]:
    """(front-matter rows with a value, evaluation rows): `model-index` becomes the evaluation
    table when it has the Hub's shape, and keys with nothing to show are left out."""
    evaluation = _evaluation(meta.get("model-index"))
    rows = [(str(k), _display(v)) for k, v in meta.items() if not (k == "model-index" and evaluation is not None)]
    return [(k, v) for k, v in rows if v.strip()], evaluation or []


def render_card(text: str) -> RenderedCard:
    """The card's Markdown as sanitised HTML (Imprint's section markers left out), its front matter
    as (key, value) rows and its `model-index` as evaluation rows. The front-matter values are plain
    text (escaped by the template); the HTML is safe to mark safe. Front matter refused by
    `front_matter_load` gives no rows and says why in `front_matter_refused`."""
    meta, body, refused = _split(text)
    html = nh3.clean(_MARKDOWN.render(_SECTION_MARKER.sub("", body)), tags=ALLOWED_TAGS,
                     attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="nofollow noopener noreferrer")
    front_matter, evaluation = _facts(meta)
    return RenderedCard(html=html, front_matter=front_matter, front_matter_refused=refused, evaluation=evaluation)
