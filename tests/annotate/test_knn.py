"""In-context example selection: the k most similar examples, most similar last, chosen
deterministically; the fixed few-shot set; and reading a labelled pool."""

from __future__ import annotations

import numpy as np
import pytest

from raysynth.annotate.knn import Embedder, ExamplePool, load_examples
from raysynth.config_base import CorpusRef
from raysynth.documents import Document, Entity


def _doc(i: int, text: str, labelled: bool = True) -> Document:
    entities = [Entity(0, 1, "Disease", text[:1])] if labelled else []
    return Document(doc_id=f"d{i}", text=text, entities=entities)


def _unit(angle_degrees: float) -> list[float]:
    angle = np.radians(angle_degrees)
    return [float(np.cos(angle)), float(np.sin(angle))]


@pytest.fixture
def angle_pool() -> ExamplePool:
    """Unit vectors at known angles from the query direction (0 degrees): cosine order is
    the angle order. Examples 1 and 3 are at +-30 degrees, an exact tie."""
    angles = [90, 30, 10, -30, 60, 0]
    docs = [_doc(i, f"example {i}") for i in range(len(angles))]
    return ExamplePool(docs, np.array([_unit(a) for a in angles], dtype=np.float32))


def _ids(selection: list[list[Document]]) -> list[list[str]]:
    return [[d.doc_id for d in docs] for docs in selection]


def test_knn_orders_most_similar_last_and_breaks_ties_by_pool_index(angle_pool):
    query = np.array([_unit(0)], dtype=np.float32)
    chosen = angle_pool.select(query, 4, query_texts=["a new note"])
    # 0 deg (d5), 10 deg (d2), then the +-30 deg tie: the lower index (d1) ranks higher.
    assert _ids(chosen) == [["d3", "d1", "d2", "d5"]]
    assert _ids(angle_pool.select(query, 3, query_texts=["x"])) == [["d1", "d2", "d5"]]
    # Several queries at once, each with its own neighbours; k above the pool size gives all.
    two = np.array([_unit(0), _unit(90)], dtype=np.float32)
    assert _ids(angle_pool.select(two, 2, exclude_identical=False)) == [
        ["d2", "d5"],
        ["d4", "d0"],
    ]
    assert len(angle_pool.select(query, 50, query_texts=["x"])[0]) == 6
    again = angle_pool.select(query, 4, query_texts=["a new note"])
    assert _ids(again) == _ids(chosen)


def test_an_example_identical_to_the_query_is_excluded(angle_pool):
    query = np.array([_unit(0)], dtype=np.float32)
    assert _ids(angle_pool.select(query, 2, query_texts=["example 5"])) == [["d1", "d2"]]
    kept = angle_pool.select(query, 2, query_texts=["example 5"], exclude_identical=False)
    assert _ids(kept) == [["d2", "d5"]]
    with pytest.raises(ValueError, match="query_texts"):
        angle_pool.select(query, 2)


def test_fixed_examples_are_the_first_labelled_ones_plus_one_negative():
    docs = [
        _doc(0, "no entity here", labelled=False),
        _doc(1, "asthma"),
        _doc(2, "gout"),
        _doc(3, "nothing", labelled=False),
        _doc(4, "lupus"),
        _doc(5, "anemia"),
    ]
    pool = ExamplePool(docs, np.zeros((len(docs), 2), dtype=np.float32))
    assert [d.doc_id for d in pool.fixed(2)] == ["d1", "d2"]
    assert [d.doc_id for d in pool.fixed(3)] == ["d0", "d1", "d2"]
    assert [d.doc_id for d in pool.fixed(4)] == ["d0", "d1", "d2", "d4"]
    # Not enough negatives or positives: the next examples in pool order fill in.
    only_labelled = ExamplePool(docs[1:3], np.zeros((2, 2), dtype=np.float32))
    assert [d.doc_id for d in only_labelled.fixed(3)] == ["d1", "d2"]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_minilm_neighbours_are_about_the_same_thing(embedder):
    pool_texts = [
        "The weather was sunny and warm all week.",
        "She fractured her left wrist after a fall.",
        "Type 2 diabetes mellitus was diagnosed last year.",
        "He takes metformin for his diabetes.",
        "It rained heavily in the afternoon.",
        "The X-ray showed a fracture of the femur.",
        "The patient has type 2 diabetes.",
    ]
    docs = [_doc(i, t) for i, t in enumerate(pool_texts)]
    pool = ExamplePool.build(docs, embedder)
    assert pool.vectors.dtype == np.float32 and pool.vectors.shape == (7, 384)
    np.testing.assert_allclose(np.linalg.norm(pool.vectors, axis=1), 1.0, rtol=1e-5)
    queries = ["The patient has type 2 diabetes.", "Her wrist fracture is healing."]
    chosen = pool.select(embedder.encode(queries), 2, query_texts=queries)
    # The identical pool sentence (d6) is excluded; the diabetes sentences remain, the
    # closer one last.
    assert {d.doc_id for d in chosen[0]} == {"d2", "d3"}
    assert chosen[0][-1].doc_id == "d2"
    assert {d.doc_id for d in chosen[1]} == {"d1", "d5"}
    np.testing.assert_array_equal(embedder.encode(queries), embedder.encode(queries))
    assert embedder.encode([]).shape == (0, 384)


def test_load_examples_keeps_the_wanted_labels_and_a_seeded_subset(shared_data, tmp_path):
    ref = CorpusRef(path=shared_data / "ncbi_disease" / "conll" / "devel.tsv", format="conll")
    first = load_examples(ref, ["Disease"], limit=50, seed=7)
    again = load_examples(ref, ["Disease"], limit=50, seed=7)
    other = load_examples(ref, ["Disease"], limit=50, seed=8)
    assert len(first) == 50
    assert [d.doc_id for d in first] == [d.doc_id for d in again]
    assert [d.doc_id for d in first] != [d.doc_id for d in other]
    assert any(d.entities for d in first) and any(not d.entities for d in first)
    assert len(load_examples(ref, ["Disease"], limit=None, seed=7)) == 923
    # A label not asked for is dropped from entities and tags alike.
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("aspirin\tB-Drug\nfor\tO\ngout\tB-Disease\n\n", encoding="utf-8")
    (doc,) = load_examples(CorpusRef(path=mixed), ["Disease"], limit=None, seed=0)
    assert [(e.text, e.label) for e in doc.entities] == [("gout", "Disease")]
    assert doc.tags == ["O", "O", "B-Disease"]
