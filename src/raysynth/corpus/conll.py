"""CoNLL-style token files: one `token<TAB>tag` line per token, a blank line between sentences.

Extra columns are allowed: the token is the first column and the tag the last (the CoNLL-2003
and BioNLP convention). Columns are split on tabs when the line has one, else on whitespace.
`-DOCSTART-` lines are kept as a marker on the next sentence so writing reproduces them.
Each sentence becomes one document whose text is its tokens joined by single spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from raysynth.alignment import (
    Scheme,
    convert_scheme,
    default_tokenize,
    entities_to_tags,
    tags_to_entities,
    tags_to_token_spans,
)
from raysynth.corpus.report import ReadReport
from raysynth.corpus.textfile import read_lines
from raysynth.documents import Document
from raysynth.errors import AlignmentError, CorpusFormatError

DOCSTART = "-DOCSTART-"


def read(path: str | Path, report: ReadReport, scheme: Scheme = "IOB2") -> Iterator[Document]:
    path = Path(path)
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    docstart: str | None = None
    index = 0
    for number, line in read_lines(path):
        if not line.strip():
            if tokens:
                yield _sentence(path, index, first_line, tokens, tags, scheme, docstart, report)
                index, tokens, tags, docstart = index + 1, [], [], None
            continue
        if line.startswith(DOCSTART):
            docstart = line
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if len(columns) < 2 or not columns[-1].strip():
            raise CorpusFormatError(path, "missing tag: expected token<TAB>tag", number)
        if not tokens:
            first_line = number
        tokens.append(columns[0])
        tags.append(columns[-1].strip())
    if tokens:
        yield _sentence(path, index, first_line, tokens, tags, scheme, docstart, report)


def _sentence(
    path: Path,
    index: int,
    first_line: int,
    tokens: list[str],
    tags: list[str],
    scheme: Scheme,
    docstart: str | None,
    report: ReadReport,
) -> Document:
    spans, offset = [], 0
    for token in tokens:
        spans.append((offset, offset + len(token)))
        offset += len(token) + 1
    text = " ".join(tokens)
    try:
        tags_to_token_spans(tags, scheme)  # validates every tag before decoding
        entities, repaired = tags_to_entities(tags, spans, text, scheme)
    except AlignmentError as err:
        raise CorpusFormatError(path, str(err), first_line) from None
    if repaired:
        report.warn(
            "invalid_tag_transition_repaired", path, first_line, f"{repaired} in this sentence"
        )
    meta = {"source_line": str(first_line)}
    if docstart is not None:
        meta["docstart"] = docstart
    doc = Document(
        doc_id=f"{path.stem}-s{index:06d}",
        text=text,
        entities=entities,
        tokens=list(tokens),
        token_spans=spans,
        tags=convert_scheme(tags, scheme, "IOB2") if scheme != "IOB2" else list(tags),
        meta=meta,
    )
    return doc


def write(
    docs: Iterable[Document], handle: TextIO, report: ReadReport, scheme: Scheme = "IOB2"
) -> None:
    """Tags are recomputed from the entities (not copied from `doc.tags`), so a corpus read
    from any format writes the same way; conflicts the tagging had to resolve are counted."""
    for doc in docs:
        spans = doc.token_spans or default_tokenize(doc.text)
        tokens = doc.tokens or [doc.text[s:e] for s, e in spans]
        tags, alignment = entities_to_tags(doc.entities, spans, scheme)
        for kind, n in alignment.to_dict().items():
            if n:
                report.warn(f"alignment_{kind}", doc.doc_id, None, f"{n} entities")
        if "docstart" in doc.meta:
            handle.write(doc.meta["docstart"] + "\n\n")
        handle.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags, strict=True))
        handle.write("\n")
        report.count(doc)
