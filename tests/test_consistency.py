"""The consistency vote on a teacher's labels (consistency.py): counts, decisions, case."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raysynth.consistency import Consistency, decide, vote
from raysynth.schema import ANNOTATIONS


def test_the_share_of_labelled_occurrences_decides():
    labelled = {
        ("G6PD deficiency", "Disease"): 9,
        ("bp", "Disease"): 2,
        ("CF", "Disease"): 4,
        ("CF", "Gene"): 1,
        ("rare", "Disease"): 1,
    }
    seen = {"G6PD deficiency": 10, "bp": 30, "CF": 5, "rare": 1}
    votes = decide(labelled, seen, Consistency())
    # 'rare' is seen once: too few occurrences to vote.
    assert votes.everywhere == {"G6PD deficiency": "Disease", "CF": "Disease"}
    assert votes.nowhere == {"bp"}
    strict = decide(labelled, seen, Consistency(label_all=1.0, drop_below=0.0))
    assert strict.everywhere == {} and strict.nowhere == frozenset()


def test_drop_below_cannot_exceed_label_all():
    with pytest.raises(ValueError, match="drop_below \\(0.8\\) is above label_all \\(0.7\\)"):
        Consistency(drop_below=0.8)


def row(note_id: str, text: str, *labelled: tuple[str, int]) -> dict:
    """An annotations row labelling the n-th occurrence of each string as a Disease."""
    entities = []
    for mention, nth in labelled:
        start = -1
        for _ in range(nth + 1):
            start = text.index(mention, start + 1)
        entities.append({"start": start, "end": start + len(mention), "label": "Disease",
                         "text": mention, "source": "model", "fragments": None})  # fmt: skip
    return {"note_id": note_id, "text": text, "entities": entities, "status": "ok",
            "reason": None, "annotator": "{}", "usage": None}  # fmt: skip


def test_vote_makes_each_string_one_answer_over_the_corpus(ray_session):
    import ray

    rows = [
        row("a", "G6PD deficiency was found. G6PD deficiency is common.", ("G6PD deficiency", 0)),
        row("b", "G6PD deficiency and a 300 bp deletion.", ("G6PD deficiency", 0), ("bp", 0)),
        row(
            "c",
            "Fragments of 200 bp , 100 bp and 50 bp .",
        ),
        # 'AT' is labelled in two of its three occurrences; 'at' is another word.
        row("d", "AT is rare. Patients at risk of AT were seen at home.", ("AT", 0)),
        row("e", "AT was diagnosed at birth.", ("AT", 0)),
    ]
    labels = ray.data.from_arrow(pa.Table.from_pylist(rows, schema=ANNOTATIONS))
    votes = vote(labels.materialize(), Consistency(label_all=0.6))
    out = {r["note_id"]: r for r in votes.iter_rows()}

    def mentions(note_id: str) -> list[tuple[str, str]]:
        return [(e["text"], e["source"]) for e in out[note_id]["entities"]]

    assert mentions("a") == [("G6PD deficiency", "model"), ("G6PD deficiency", "vote")]
    assert mentions("b") == [("G6PD deficiency", "model")]
    assert out["b"]["reason"] == "not labelled, rarely labelled elsewhere: bp"
    assert mentions("c") == [] and out["c"]["reason"] is None
    assert mentions("d") == [("AT", "model"), ("AT", "vote")]
    assert mentions("e") == [("AT", "model")]
    d = out["d"]
    assert [d["text"][e["start"] : e["end"]] for e in d["entities"]] == ["AT", "AT"]
