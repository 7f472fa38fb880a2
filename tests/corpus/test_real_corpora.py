"""Every reader on the real NCBI-disease and BC5CDR files: counts equal the README tables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from raysynth.corpus import ReadReport, read_documents, write_documents

CORPORA = {
    "ncbi_disease": {"train": "NCBItrainset_corpus.txt", "dev": "NCBIdevelopset_corpus.txt"},
    "bc5cdr": {"train": "CDR_TrainingSet.PubTator.txt", "dev": "CDR_DevelopmentSet.PubTator.txt"},
}
CONLL = {"train": "train.tsv", "dev": "devel.tsv"}
LABEL_MAP = {"ncbi_disease": "ncbi-disease", "bc5cdr": None}
CASES = [(corpus, split) for corpus in CORPORA for split in ("train", "dev")]


def readme_counts(folder: Path, split: str) -> dict:
    """The row of the README's Counts table for `split`, so the test follows the README."""
    for line in (folder / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == split and len(cells) == 6:
            return {
                "docs": int(cells[1]),
                "sentences": int(cells[2]),
                "tokens": int(cells[3]),
                "doc_entities": ast.literal_eval(cells[4]),
                "bio_entities": ast.literal_eval(cells[5]),
            }
    raise AssertionError(f"no counts row for {split} in {folder}/README.md")


def read_all(path: Path, fmt: str, label_map: str | None = None) -> tuple[list, ReadReport]:
    from raysynth.corpus import parse_label_map

    report = ReadReport()
    docs = list(read_documents(path, fmt, label_map=parse_label_map(label_map), report=report))
    return docs, report


@pytest.mark.parametrize(("corpus", "split"), CASES)
def test_conll_counts(shared_data, corpus, split):
    expected = readme_counts(shared_data / corpus, split)
    docs, report = read_all(shared_data / corpus / "conll" / CONLL[split], "conll")
    assert report.documents == len(docs) == expected["sentences"]
    assert report.tokens == expected["tokens"]
    assert dict(report.entities) == expected["bio_entities"]
    assert not report.warnings


@pytest.mark.parametrize(("corpus", "split"), CASES)
def test_jsonl_sentence_counts(shared_data, corpus, split):
    expected = readme_counts(shared_data / corpus, split)
    docs, report = read_all(shared_data / corpus / "jsonl" / f"{split}.sentences.jsonl", "jsonl")
    assert report.documents == expected["sentences"]
    assert report.tokens == expected["tokens"]
    assert dict(report.entities) == expected["bio_entities"]
    assert all(e.text == d.text[e.start : e.end] for d in docs for e in d.entities)


@pytest.mark.parametrize(("corpus", "split"), CASES)
def test_jsonl_document_counts(shared_data, corpus, split):
    expected = readme_counts(shared_data / corpus, split)
    docs, report = read_all(shared_data / corpus / "jsonl" / f"{split}.docs.jsonl", "jsonl")
    assert report.documents == expected["docs"]
    assert dict(report.entities) == expected["doc_entities"]
    assert not report.warnings


@pytest.mark.parametrize(("corpus", "split"), CASES)
def test_pubtator_counts_match_jsonl(shared_data, corpus, split):
    expected = readme_counts(shared_data / corpus, split)
    path = shared_data / corpus / "original" / CORPORA[corpus][split]
    docs, report = read_all(path, "pubtator", LABEL_MAP[corpus])
    assert report.documents == expected["docs"]
    assert dict(report.entities) == expected["doc_entities"]
    # The JSONL copy was made from the same originals: same ids, texts and spans.
    jsonl_docs, _ = read_all(shared_data / corpus / "jsonl" / f"{split}.docs.jsonl", "jsonl")
    assert [d.doc_id for d in docs] == [d.doc_id for d in jsonl_docs]
    assert [d.text for d in docs] == [d.text for d in jsonl_docs]
    spans = [[(e.start, e.end, e.label) for e in d.entities] for d in docs]
    assert spans == [[(e.start, e.end, e.label) for e in d.entities] for d in jsonl_docs]


@pytest.mark.parametrize(("corpus", "split"), CASES)
def test_conll_round_trip_reproduces_file(shared_data, corpus, split, tmp_path):
    source = shared_data / corpus / "conll" / CONLL[split]
    out = tmp_path / "copy.tsv"
    write_documents(read_documents(source, "conll"), out, "conll")
    assert out.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "brat", "pubtator"])
def test_pubtator_through_every_format(shared_data, fmt, tmp_path):
    """Documents survive a write and read in each format: ids, texts and spans unchanged."""
    source = shared_data / "bc5cdr" / "original" / CORPORA["bc5cdr"]["dev"]
    docs, _ = read_all(source, "pubtator")
    out = (
        tmp_path
        / {"parquet": "d.parquet", "jsonl": "d.jsonl", "brat": "brat", "pubtator": "d.pubtator"}[
            fmt
        ]
    )
    written = write_documents(docs, out, fmt)
    assert written.documents == len(docs)
    back, report = read_all(out, fmt)
    assert report.documents == len(docs)
    assert sorted(d.doc_id for d in back) == sorted(d.doc_id for d in docs)
    by_id = {d.doc_id: d for d in back}
    for doc in docs:
        assert by_id[doc.doc_id].text == doc.text
        got = [(e.start, e.end, e.label) for e in by_id[doc.doc_id].entities]
        assert got == [(e.start, e.end, e.label) for e in doc.entities]


def test_conll_through_parquet_keeps_tokens(shared_data, tmp_path):
    source = shared_data / "ncbi_disease" / "conll" / "devel.tsv"
    write_documents(read_documents(source, "conll"), tmp_path / "dev.parquet")
    write_documents(read_documents(tmp_path / "dev.parquet"), tmp_path / "dev.tsv")
    assert (tmp_path / "dev.tsv").read_bytes() == source.read_bytes()
