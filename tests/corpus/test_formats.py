"""Format details on small hand-made files: schemes, extra columns, BRAT fragments."""

from __future__ import annotations

from raysynth.corpus import ReadReport, read_documents, write_documents


def spans(doc):
    return [(doc.text[e.start : e.end], e.label) for e in doc.entities]


def test_conll_extra_columns_and_docstart(tmp_path):
    path = tmp_path / "c.conll"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n",
        encoding="utf-8",
    )
    docs = list(read_documents(path))
    assert spans(docs[0]) == [("EU", "ORG"), ("German", "MISC")]
    assert docs[0].meta["docstart"] == "-DOCSTART- -X- -X- O"
    write_documents(docs, tmp_path / "out.tsv")
    assert (tmp_path / "out.tsv").read_text().startswith("-DOCSTART- -X- -X- O\n\nEU\tB-ORG\n")


def test_conll_iob1_and_bioes_read_to_the_same_entities(tmp_path):
    iob1 = tmp_path / "a.tsv"
    iob1.write_text("acute\tI-D\nrenal\tI-D\nfailure\tI-D\nasthma\tB-D\nand\tO\nflu\tI-D\n\n")
    bioes = tmp_path / "b.tsv"
    bioes.write_text("acute\tB-D\nrenal\tI-D\nfailure\tE-D\nasthma\tS-D\nand\tO\nflu\tS-D\n\n")
    got1 = spans(next(read_documents(iob1, scheme="IOB1")))
    got2 = next(read_documents(bioes, scheme="BIOES"))
    assert got1 == spans(got2) == [("acute renal failure", "D"), ("asthma", "D"), ("flu", "D")]
    assert got2.tags == ["B-D", "I-D", "I-D", "B-D", "O", "B-D"]
    write_documents([got2], tmp_path / "out.tsv", scheme="BIOES")
    assert (tmp_path / "out.tsv").read_text() == bioes.read_text()


def test_brat_discontinuous_entities_kept_and_flagged(tmp_path):
    text = "Pain in left and right knee.\nNo fever."
    (tmp_path / "n.txt").write_text(text, encoding="utf-8")
    (tmp_path / "n.ann").write_text(
        "T1\tSymptom 0 4;23 27\tPain knee\nT2\tSymptom 32 37\tfever\n"
        "R1\tRel Arg1:T1 Arg2:T2\n#1\tAnnotatorNotes T1\tnote\n",
        encoding="utf-8",
    )
    report = ReadReport()
    doc = next(read_documents(tmp_path, report=report))
    pain, fever = doc.entities
    assert pain.discontinuous and pain.fragments == ((0, 4), (23, 27))
    assert (pain.start, pain.end, pain.text) == (0, 27, "Pain knee")
    assert not fever.discontinuous and fever.text == "fever"
    assert report.warnings == {"discontinuous_entity": 1, "non_entity_annotation_skipped": 2}
    write_documents([doc], tmp_path / "out", "brat")
    again = next(read_documents(tmp_path / "out"))
    assert again.entities == doc.entities


def test_conll_writer_counts_overlaps_it_had_to_resolve(tmp_path):
    from raysynth.documents import Document, Entity

    doc = Document(
        "d1",
        "breast and ovarian cancer",
        [Entity(0, 25, "Disease"), Entity(11, 25, "Disease")],
    )
    report = write_documents([doc], tmp_path / "o.tsv")
    assert report.warnings["alignment_conflicts"] == 1
    lines = (tmp_path / "o.tsv").read_text().splitlines()
    assert lines[:2] == ["breast\tB-Disease", "and\tI-Disease"]
