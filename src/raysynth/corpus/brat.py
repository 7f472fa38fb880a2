"""BRAT standoff: a folder of `NAME.txt` (raw text) and `NAME.ann` (annotations) pairs.

Text-bound lines `T1<TAB>Label start end[;start end...]<TAB>mention` become entities;
discontinuous ones keep their fragments and are flagged (`Entity.discontinuous`). Relations,
events, attributes, normalizations and notes are counted, not kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from raysynth.corpus.report import ReadReport
from raysynth.corpus.textfile import read_lines, read_text
from raysynth.documents import Document, Entity
from raysynth.errors import CorpusFormatError


def read(path: str | Path, report: ReadReport) -> Iterator[Document]:
    """`path` is a folder of pairs, or one `.ann` / `.txt` file of a pair."""
    path = Path(path)
    if path.is_dir():
        texts = sorted(path.glob("*.txt"))
        if not texts:
            raise CorpusFormatError(path, "no .txt files in this BRAT folder")
    else:
        texts = [path.with_suffix(".txt")]
    for txt in texts:
        yield _document(txt, report)


def _document(txt: Path, report: ReadReport) -> Document:
    text = read_text(txt)
    ann = txt.with_suffix(".ann")
    entities = []
    if not ann.exists():
        report.warn("missing_ann_file", txt, None, "read as a document with no entities")
    elif ann.stat().st_size:
        for number, line in read_lines(ann):
            if line.startswith("T"):
                entities.append(_text_bound(ann, number, line, text, report))
            elif line.strip():
                report.warn("non_entity_annotation_skipped", ann, number, line.split("\t")[0])
    doc = Document(doc_id=txt.stem, text=text, entities=entities)
    return doc


def _text_bound(ann: Path, number: int, line: str, text: str, report: ReadReport) -> Entity:
    columns = line.split("\t")
    if len(columns) < 2 or " " not in columns[1]:
        raise CorpusFormatError(ann, "text-bound line needs ID<TAB>Label start end", number)
    label, _, offsets = columns[1].partition(" ")
    try:
        fragments = tuple(
            (int(a), int(b)) for a, b in (piece.split() for piece in offsets.split(";"))
        )
    except ValueError:
        raise CorpusFormatError(ann, f"malformed offsets {offsets!r}", number) from None
    for start, end in fragments:
        if not 0 <= start < end <= len(text):
            raise CorpusFormatError(
                ann, f"offsets {start}-{end} outside the text (length {len(text)})", number
            )
    # BRAT writes a mention's newlines as spaces and joins fragments with a space.
    mention = " ".join(text[s:e] for s, e in fragments).replace("\n", " ")
    if len(columns) > 2 and columns[2] != mention:
        report.warn("mention_text_mismatch", ann, number, f"offsets {offsets}")
    if len(fragments) > 1:
        report.warn("discontinuous_entity", ann, number, f"{len(fragments)} fragments kept")
    return Entity(
        start=fragments[0][0],
        end=fragments[-1][1],
        label=label,
        text=mention,
        fragments=fragments if len(fragments) > 1 else None,
    )


def write(docs: Iterable[Document], folder: Path, report: ReadReport) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        name = doc.doc_id.replace("/", "_")
        (folder / f"{name}.txt").write_text(doc.text, encoding="utf-8")
        lines = []
        for i, e in enumerate(doc.entities, start=1):
            pieces = e.fragments or ((e.start, e.end),)
            offsets = ";".join(f"{s} {t}" for s, t in pieces)
            mention = " ".join(doc.text[s:t] for s, t in pieces).replace("\n", " ")
            lines.append(f"T{i}\t{e.label} {offsets}\t{mention}\n")
        (folder / f"{name}.ann").write_text("".join(lines), encoding="utf-8")
        report.count(doc)
