"""Self-training on real text nobody labelled: a model trained on synthetic notes labels the
hospital's own notes (with the lexicons and the abbreviation step, as `evaluate` runs it),
and a new model trains on those labels beside the synthetic notes.

Why: the synthetic sentences are not the real notes' language. A model that has only read
SmolLM2's prose meets, in real text, abbreviations used far from their definition, gene
symbols, long coordinations and the corpus's own spelling; labelled by the teacher, the real
text shows it those contexts. No human label is used, and the text never leaves the machine:
what a hospital has plenty of (notes no one annotated) is what this step consumes.

The labels are written as an `annotations` table (source `model`), so the train stage reads
them like any annotation, and a folder of links to them and to the teacher's synthetic
annotation shards is the student's training set.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from raysynth.annotate.config import KnowledgeBase
from raysynth.config_base import CorpusRef
from raysynth.consistency import VOTED_OUT, Consistency, vote
from raysynth.dataset import load_documents
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.schema import ANNOTATIONS, STATUS_OK
from raysynth.storage import clear

SOURCE = "model"
NEGATIVES = "negatives"


@dataclass(frozen=True)
class Labelled:
    """What the teacher labelled: documents, the mentions kept in them, and the documents
    where a label was dropped as a negative or by the consistency vote (their `reason` names
    the terms)."""

    out_dir: Path
    documents: int
    mentions: int
    with_negatives: int = 0
    with_voted_out: int = 0


def label_real_text(
    cfg: EvaluateConfig,
    model_dir: str,
    text: CorpusRef,
    out_dir: Path,
    kb: KnowledgeBase | None = None,
    limit: int | None = None,
    negatives: frozenset[str] = frozenset(),
    consistency: Consistency | None = None,
) -> Labelled:
    """Label the documents of `text` (its first `limit`) with the model in `model_dir`,
    combined with `kb` as `cfg.dictionary` says, into an annotations table in `out_dir`; a
    label whose text is one of `negatives` (lower-cased) is dropped, and with `consistency`
    each labelled string is made to have one answer over the whole text. Labels the file
    already holds are dropped before the model sees a row: this step must never learn from a
    human annotation, whatever file it is given."""
    from raysynth.evaluate.job import predict

    if cfg.dictionary != "off" and kb is None:
        raise ConfigError(f"self-training: dictionary {cfg.dictionary!r} needs lexicons (a kb)")
    docs, _ = load_documents(text, block_rows=cfg.batch_size)
    if docs is None:
        raise ConfigError(f"self-training: {text.path} has no documents")
    if limit is not None:
        docs = docs.limit(limit)
    docs = docs.map_batches(_without_labels, batch_format="pyarrow")
    clear(str(out_dir))
    annotator = json.dumps(
        {
            "model": model_dir,
            "strategy": "self-training",
            "dictionary": cfg.dictionary,
            "abbreviations": cfg.abbreviations,
        }
    )
    predictions = predict(cfg, model_dir, text, docs, kb)
    labels = predictions.map_batches(
        _as_annotations,
        fn_kwargs={"annotator": annotator, "negatives": negatives},
        batch_format="pyarrow",
    )
    if consistency is not None:
        labels = vote(labels.materialize(), consistency)
    labels.write_parquet(str(out_dir))
    return _counted(out_dir)


def _without_labels(batch: pa.Table) -> pa.Table:
    empty = pa.array([[]] * len(batch), batch.schema.field("entities").type)
    return batch.set_column(batch.schema.get_field_index("entities"), "entities", empty)


def _as_annotations(batch: pa.Table, annotator: str, negatives: frozenset[str]) -> pa.Table:
    """`predictions` rows -> `annotations` rows: the predicted spans are the labels, but for
    the negatives, which the row's `reason` names."""
    rows = []
    for row in batch.select(["doc_id", "text", "pred"]).to_pylist():
        text = row["text"]
        kept, dropped = [], []
        for e in row["pred"] or []:
            mention = text[e["start"] : e["end"]]
            if mention.lower() in negatives:
                dropped.append(mention)
            else:
                kept.append({**e, "source": SOURCE})
        reason = f"not labelled, {NEGATIVES}: {'; '.join(dropped)}" if dropped else None
        rows.append(
            {
                "note_id": row["doc_id"],
                "text": text,
                "entities": kept,
                "status": STATUS_OK,
                "reason": reason,
                "annotator": annotator,
                "usage": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=ANNOTATIONS)


def _counted(out_dir: Path) -> Labelled:
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    columns = ["entities", "reason"]
    table = pads.dataset(str(out_dir), format="parquet").to_table(columns=columns)
    mentions = pc.sum(pc.list_value_length(table.column("entities"))).as_py() or 0

    def mentioning(words: str) -> int:
        return pc.sum(pc.match_substring(table.column("reason"), f"{words}:")).as_py() or 0

    return Labelled(out_dir, len(table), mentions, mentioning(NEGATIVES), mentioning(VOTED_OUT))


def link_training_set(folder: Path, sources: list[Path]) -> Path:
    """`folder` made anew with relative links to every Parquet file of `sources` (folders of
    annotation shards, or of links to them): one training set, without copying a row."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for source in sources:
        for shard in sorted(Path(source).glob("*.parquet")):
            target = shard.resolve()
            link = folder / shard.name
            if link.exists():
                raise ConfigError(f"self-training: two training shards named {shard.name}")
            link.symlink_to(os.path.relpath(target, folder))
    return folder
