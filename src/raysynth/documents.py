"""The one in-memory form every corpus is read into and written from.

A `Document` is text with character-offset entities (0-based, end-exclusive, so
`text[start:end]` is the mention), plus tokens and tags where the source was token-level.
Readers fill it, writers consume it, and the Arrow rows of `raysynth.schema` mirror it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Entity:
    """A labelled mention. `fragments` is set only for discontinuous mentions (BRAT): the
    pieces as (start, end) pairs, with `start`/`end` spanning from the first to the last."""

    start: int
    end: int
    label: str
    text: str | None = None
    source: str | None = None
    fragments: tuple[tuple[int, int], ...] | None = None

    @property
    def discontinuous(self) -> bool:
        return self.fragments is not None and len(self.fragments) > 1

    def to_row(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "text": self.text,
            "source": self.source,
            "fragments": [list(f) for f in self.fragments] if self.fragments else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Entity:
        fragments = row.get("fragments")
        return cls(
            start=int(row["start"]),
            end=int(row["end"]),
            label=str(row["label"]),
            text=row.get("text"),
            source=row.get("source"),
            fragments=tuple((int(s), int(e)) for s, e in fragments) if fragments else None,
        )


@dataclass(slots=True)
class Document:
    """A text and its entities; `tokens`, `token_spans` and `tags` (IOB2) are set together
    when the source gave a tokenization, and are None otherwise."""

    doc_id: str
    text: str
    entities: list[Entity] = field(default_factory=list)
    tokens: list[str] | None = None
    token_spans: list[tuple[int, int]] | None = None
    tags: list[str] | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "text": self.text,
            "entities": [e.to_row() for e in self.entities],
            "tokens": self.tokens,
            "token_spans": [list(s) for s in self.token_spans] if self.token_spans else None,
            "tags": self.tags,
            "meta": list(self.meta.items()) if self.meta else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        spans = row.get("token_spans")
        meta = row.get("meta")
        return cls(
            doc_id=str(row["doc_id"]),
            text=row["text"],
            entities=[Entity.from_row(e) for e in row.get("entities") or []],
            tokens=list(row["tokens"]) if row.get("tokens") is not None else None,
            token_spans=[(int(s), int(e)) for s, e in spans] if spans is not None else None,
            tags=list(row["tags"]) if row.get("tags") is not None else None,
            meta=dict(meta) if meta else {},
        )
