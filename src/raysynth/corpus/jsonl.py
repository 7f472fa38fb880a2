"""JSON Lines, one document per line, in the form of ../shared/data/*/jsonl:
`{"id", "text", "entities": [{"start", "end", "label", "text"?}], "tokens"?, "tags"?,
"token_spans"?}`. `doc_id` is accepted for `id`; other scalar fields (pmid, title_end, ...)
are kept in `Document.meta` and written back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from raysynth.corpus.report import ReadReport
from raysynth.corpus.textfile import read_lines
from raysynth.documents import Document, Entity
from raysynth.errors import CorpusFormatError

_KNOWN = {"id", "doc_id", "text", "entities", "tokens", "tags", "token_spans"}


def read(path: str | Path, report: ReadReport) -> Iterator[Document]:
    path = Path(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(path, f"invalid JSON ({err.msg})", number) from None
        if not isinstance(record, dict):
            raise CorpusFormatError(path, "each line must be a JSON object", number)
        doc = _document(path, number, record, report)
        yield doc


def _document(path: Path, number: int, record: dict[str, Any], report: ReadReport) -> Document:
    doc_id = record.get("id", record.get("doc_id"))
    text = record.get("text")
    if doc_id is None or not isinstance(text, str):
        raise CorpusFormatError(path, "a document needs 'id' and a string 'text'", number)
    entities = [_entity(path, number, text, e, report) for e in record.get("entities") or []]
    tokens, tags, spans = record.get("tokens"), record.get("tags"), record.get("token_spans")
    lengths = {len(x) for x in (tokens, tags, spans) if x is not None}
    if len(lengths) > 1:
        raise CorpusFormatError(path, "tokens, tags and token_spans differ in length", number)
    meta = {k: str(v) for k, v in record.items() if k not in _KNOWN and _scalar(v)}
    return Document(
        doc_id=str(doc_id),
        text=text,
        entities=entities,
        tokens=tokens,
        token_spans=[(int(s), int(e)) for s, e in spans] if spans is not None else None,
        tags=tags,
        meta=meta,
    )


def _entity(path: Path, number: int, text: str, raw: Any, report: ReadReport) -> Entity:
    try:
        start, end, label = int(raw["start"]), int(raw["end"]), str(raw["label"])
    except (KeyError, TypeError, ValueError):
        raise CorpusFormatError(
            path, "each entity needs integer 'start', 'end' and a 'label'", number
        ) from None
    if not 0 <= start < end <= len(text):
        raise CorpusFormatError(
            path, f"entity offsets {start}-{end} outside the text (length {len(text)})", number
        )
    if raw.get("text") is not None and raw["text"] != text[start:end]:
        report.warn("mention_text_mismatch", path, number, f"offsets {start}-{end}")
    return Entity(start=start, end=end, label=label, text=text[start:end], source=raw.get("source"))


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def write(docs: Iterable[Document], handle: TextIO, report: ReadReport) -> None:
    for doc in docs:
        record: dict[str, Any] = {"id": doc.doc_id, **doc.meta, "text": doc.text}
        record["entities"] = [
            {k: v for k, v in e.to_row().items() if v is not None} for e in doc.entities
        ]
        if doc.tokens is not None:
            record["tokens"] = doc.tokens
            record["tags"] = doc.tags
            record["token_spans"] = [list(s) for s in doc.token_spans or ()]
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        report.count(doc)
