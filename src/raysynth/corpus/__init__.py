"""Reading and writing annotated corpora in one document form (`raysynth.documents`).

Formats: CoNLL (IOB1 / IOB2 / BIOES), PubTator, BRAT standoff, JSON Lines and Parquet. Readers
stream documents and fill a `ReadReport`; a row that cannot be kept raises `CorpusFormatError`
naming the file and line, a row that can be kept with a repair is counted as a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from raysynth.alignment import Scheme
from raysynth.corpus import brat, conll, jsonl, parquet, pubtator
from raysynth.corpus.report import ReadReport
from raysynth.documents import Document, Entity
from raysynth.errors import CorpusFormatError

FORMATS = ("conll", "pubtator", "brat", "jsonl", "parquet")

_EXTENSIONS = {
    ".conll": "conll",
    ".tsv": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".pubtator": "pubtator",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
    ".ann": "brat",
}

# Label mappings for corpora whose fine-grained labels are usually scored as one type.
LABEL_MAPS: dict[str, dict[str, str]] = {
    "ncbi-disease": {
        "SpecificDisease": "Disease",
        "DiseaseClass": "Disease",
        "CompositeMention": "Disease",
        "Modifier": "Disease",
    },
}

__all__ = [
    "FORMATS",
    "LABEL_MAPS",
    "ReadReport",
    "guess_format",
    "parse_label_map",
    "read_documents",
    "write_documents",
]


def guess_format(path: str | Path) -> str:
    """The format a path's name implies: a folder is BRAT unless it holds Parquet shards."""
    text = str(path)
    if "://" not in text and Path(text).is_dir():
        return "parquet" if any(Path(text).glob("*.parquet")) else "brat"
    name = Path(text).name.lower()
    if name.endswith(".pubtator.txt") or name.endswith("_corpus.txt"):
        return "pubtator"
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise CorpusFormatError(
        path, f"cannot tell the format from the name; give it explicitly ({', '.join(FORMATS)})"
    )


def parse_label_map(spec: str | None) -> dict[str, str]:
    """A preset name from LABEL_MAPS, or `FROM=TO,FROM=TO`."""
    if not spec:
        return {}
    if spec in LABEL_MAPS:
        return dict(LABEL_MAPS[spec])
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        presets = ", ".join(LABEL_MAPS)
        raise ValueError(f"label map {spec!r}: expected FROM=TO,FROM=TO or one of: {presets}")
    return {a.strip(): b.strip() for a, b in pairs}


def read_documents(
    path: str | Path,
    fmt: str | None = None,
    *,
    scheme: Scheme = "IOB2",
    label_map: dict[str, str] | None = None,
    report: ReadReport | None = None,
) -> Iterator[Document]:
    """Stream the documents of one corpus file (or BRAT / Parquet folder)."""
    fmt = _checked(path, fmt or guess_format(path))
    report = report if report is not None else ReadReport()
    readers = {
        "conll": lambda: conll.read(path, report, scheme),
        "pubtator": lambda: pubtator.read(path, report),
        "brat": lambda: brat.read(path, report),
        "jsonl": lambda: jsonl.read(path, report),
        "parquet": lambda: parquet.read(path, report),
    }
    return _counted(readers[fmt](), label_map or {}, report)


def _counted(
    docs: Iterator[Document], label_map: dict[str, str], report: ReadReport
) -> Iterator[Document]:
    """Counting happens here, after relabelling, so every reader's counts mean the same."""
    for doc in docs:
        if label_map:
            doc = _relabel(doc, label_map)
        report.count(doc)
        yield doc


def _relabel(doc: Document, label_map: dict[str, str]) -> Document:
    doc.entities = [
        Entity(e.start, e.end, label_map.get(e.label, e.label), e.text, e.source, e.fragments)
        for e in doc.entities
    ]
    if doc.tags is not None:
        doc.tags = [_relabel_tag(tag, label_map) for tag in doc.tags]
    return doc


def _relabel_tag(tag: str, label_map: dict[str, str]) -> str:
    prefix, _, label = tag.partition("-")
    return f"{prefix}-{label_map.get(label, label)}" if label else tag


def write_documents(
    docs: Iterable[Document],
    path: str | Path,
    fmt: str | None = None,
    *,
    scheme: Scheme = "IOB2",
) -> ReadReport:
    """Write documents; the returned report counts what was written and what tagging had to
    resolve (overlapping entities in CoNLL, for example)."""
    path = Path(path)
    fmt = _checked(path, fmt or guess_format(path))
    report = ReadReport()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("brat", "parquet"):
        {"brat": brat, "parquet": parquet}[fmt].write(docs, path, report)
        return report
    with path.open("w", encoding="utf-8") as handle:
        if fmt == "conll":
            conll.write(docs, handle, report, scheme)
        else:
            {"pubtator": pubtator, "jsonl": jsonl}[fmt].write(docs, handle, report)
    return report


def _checked(path: str | Path, fmt: str) -> str:
    if fmt not in FORMATS:
        raise CorpusFormatError(path, f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return fmt
