"""Bad input gives an error naming the file and line, or a counted warning; nothing is lost."""

from __future__ import annotations

import pytest

from raysynth.corpus import ReadReport, read_documents
from raysynth.errors import CorpusFormatError


def read(path, fmt, **kwargs):
    report = ReadReport()
    return list(read_documents(path, fmt, report=report, **kwargs)), report


def test_conll_missing_tag_names_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("Aspirin\tB-Drug\nhelps\tO\n\nthe\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"bad\.tsv:4: missing tag") as err:
        read(path, "conll")
    assert err.value.line == 4


def test_conll_malformed_tag_names_the_sentence(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\tO\n\nb\tO\nc\tX-Drug\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"bad\.tsv:3:.*X-Drug"):
        read(path, "conll")


def test_conll_invalid_transition_is_repaired_and_counted(tmp_path):
    path = tmp_path / "loose.tsv"
    path.write_text("the\tO\nflu\tI-Disease\n\n", encoding="utf-8")
    docs, report = read(path, "conll")
    assert [(e.text, e.label) for e in docs[0].entities] == [("flu", "Disease")]
    assert report.warnings["invalid_tag_transition_repaired"] == 1
    assert "loose.tsv:1" in report.examples[0]


def test_brat_offset_past_end_names_ann_line(tmp_path):
    (tmp_path / "n1.txt").write_text("Fever and cough.", encoding="utf-8")
    (tmp_path / "n1.ann").write_text("T1\tSymptom 0 5\tFever\nT2\tSymptom 10 40\tcough\n")
    with pytest.raises(CorpusFormatError, match=r"n1\.ann:2: offsets 10-40 outside"):
        read(tmp_path, "brat")


def test_pubtator_mention_text_mismatch_is_kept_and_counted(tmp_path):
    path = tmp_path / "c.pubtator"
    path.write_text(
        "1|t|Lithium toxicity.\n1|a|Rare.\n"
        "1\t0\t7\tLithium\tChemical\tD1\n1\t8\t16\ttoxicty\tDisease\tD2\n\n",
        encoding="utf-8",
    )
    docs, report = read(path, "pubtator")
    assert [e.text for e in docs[0].entities] == ["Lithium", "toxicity"]
    assert report.warnings["mention_text_mismatch"] == 1
    assert report.examples[0].startswith(f"{path}:4:")


def test_pubtator_offsets_past_end_are_an_error(tmp_path):
    path = tmp_path / "c.pubtator"
    path.write_text("1|t|Short.\n1|a|Text.\n1\t3\t99\tx\tDisease\tD\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"c\.pubtator:3:"):
        read(path, "pubtator")


VALID_FIRST_LINE = {"conll": "ok\tO", "pubtator": "1|t|ok", "jsonl": '{"id": "a", "text": "x"}'}


@pytest.mark.parametrize("fmt", ["conll", "pubtator", "jsonl"])
def test_non_utf8_file_names_line(tmp_path, fmt):
    path = tmp_path / "latin1.txt"
    path.write_bytes(f"{VALID_FIRST_LINE[fmt]}\n\n".encode() + "caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusFormatError, match=r"latin1\.txt:3: not valid UTF-8"):
        read(path, fmt)


@pytest.mark.parametrize("fmt", ["conll", "pubtator", "jsonl"])
def test_empty_file_is_an_error(tmp_path, fmt):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusFormatError, match=r"empty\.txt: file is empty"):
        read(path, fmt)


def test_jsonl_bad_line_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x", "entities": []}\n{"id": "b", "text": \n')
    with pytest.raises(CorpusFormatError, match=r"d\.jsonl:2: invalid JSON"):
        read(path, "jsonl")


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(CorpusFormatError, match="no such file"):
        read(tmp_path / "nope.tsv", "conll")
    with pytest.raises(CorpusFormatError, match="cannot tell the format"):
        read(tmp_path / "notes.xyz", None)


def test_parquet_without_text_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"doc_id": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(CorpusFormatError, match="missing column"):
        read(tmp_path / "x.parquet", "parquet")
