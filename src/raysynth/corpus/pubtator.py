"""PubTator: `PMID|t|title`, `PMID|a|abstract`, then one tab-separated mention line
(`PMID start end text type ids [extra]`) per entity; blank lines separate documents.

The document text is title + " " + abstract, which is what PubTator's offsets index.
Relation lines (`PMID<TAB>CID<TAB>...`) are counted, not kept: raysynth scores mentions only.
A repeated PMID (NCBI-disease's train file has one) gets `#2`, `#3`... so ids stay unique.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from raysynth.corpus.report import ReadReport
from raysynth.corpus.textfile import read_lines
from raysynth.documents import Document, Entity
from raysynth.errors import CorpusFormatError


class _Builder:
    """One document being assembled, with the line it started on for error messages."""

    def __init__(self, pmid: str, line: int) -> None:
        self.pmid = pmid
        self.line = line
        self.title: str | None = None
        self.abstract: str | None = None
        self.mentions: list[tuple[int, list[str]]] = []

    @property
    def text(self) -> str:
        title = self.title or ""
        return f"{title} {self.abstract}" if self.abstract is not None else title


def read(path: str | Path, report: ReadReport) -> Iterator[Document]:
    path = Path(path)
    seen: Counter[str] = Counter()
    current: _Builder | None = None
    for number, line in read_lines(path):
        if not line.strip():
            continue
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
            if current is not None and (head[0] != current.pmid or head[1] == "t"):
                yield _finish(path, current, seen, report)
                current = None
            current = current or _Builder(head[0], number)
            setattr(current, "title" if head[1] == "t" else "abstract", head[2])
            continue
        columns = line.split("\t")
        if current is None or columns[0] != current.pmid:
            raise CorpusFormatError(
                path, "annotation line does not follow its document's title/abstract", number
            )
        if len(columns) >= 3 and not columns[1].isdigit():
            report.warn("relation_lines_skipped", path, number, columns[1])
            continue
        if len(columns) < 5:
            raise CorpusFormatError(
                path, "mention line needs PMID, start, end, text and type", number
            )
        current.mentions.append((number, columns))
    if current is not None:
        yield _finish(path, current, seen, report)


def _finish(path: Path, doc: _Builder, seen: Counter[str], report: ReadReport) -> Document:
    text = doc.text
    entities = [_mention(path, text, number, cols, report) for number, cols in doc.mentions]
    seen[doc.pmid] += 1
    doc_id = doc.pmid if seen[doc.pmid] == 1 else f"{doc.pmid}#{seen[doc.pmid]}"
    if seen[doc.pmid] > 1:
        report.warn("duplicate_id_renamed", path, doc.line, f"{doc.pmid} -> {doc_id}")
    meta = {"pmid": doc.pmid, "title_end": str(len(doc.title or ""))}
    document = Document(doc_id=doc_id, text=text, entities=entities, meta=meta)
    return document


def _mention(path: Path, text: str, number: int, cols: list[str], report: ReadReport) -> Entity:
    try:
        start, end = int(cols[1]), int(cols[2])
    except ValueError:
        raise CorpusFormatError(path, "start and end must be integers", number) from None
    if not 0 <= start < end <= len(text):
        raise CorpusFormatError(
            path, f"offsets {start}-{end} outside the document text (length {len(text)})", number
        )
    if text[start:end] != cols[3]:
        # Offsets are what scoring uses, so the entity is kept by them; the mismatch is counted.
        report.warn("mention_text_mismatch", path, number, f"offsets {start}-{end}")
    return Entity(start=start, end=end, label=cols[4], text=text[start:end])


def write(docs: Iterable[Document], handle: TextIO, report: ReadReport) -> None:
    """Title and abstract are split at `meta['title_end']` when known, else the whole text is
    written as the title, which keeps every offset valid."""
    for doc in docs:
        pmid = doc.meta.get("pmid", doc.doc_id)
        cut = int(doc.meta.get("title_end", len(doc.text)))
        handle.write(f"{pmid}|t|{doc.text[:cut]}\n")
        if cut < len(doc.text):
            handle.write(f"{pmid}|a|{doc.text[cut + 1 :]}\n")
        for e in doc.entities:
            handle.write(f"{pmid}\t{e.start}\t{e.end}\t{doc.text[e.start : e.end]}\t{e.label}\t\n")
        handle.write("\n")
        report.count(doc)
