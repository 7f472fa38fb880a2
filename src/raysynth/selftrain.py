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
from typing import Any

import pyarrow as pa
from pydantic import Field, PositiveInt, field_validator

from raysynth.annotate.config import KnowledgeBase
from raysynth.config_base import CorpusRef, Strict, resolve_path
from raysynth.consistency import VOTED_OUT, Consistency, vote
from raysynth.dataset import load_documents
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.dictionary import DictionaryMode
from raysynth.generate.recipe import LexiconFile
from raysynth.schema import ANNOTATIONS, STATUS_OK
from raysynth.storage import clear

SOURCE = "model"
NEGATIVES = "negatives"


class SelfTrainingConfig(Strict):
    """How a trained model's labels of real, unlabelled text become a student's training
    set: shared by `raysynth run` (`self_training:`) and experiment grids. A plain path for
    `text` is short for `{path: ...}`."""

    text: CorpusRef = Field(
        description="Real text without labels (labels the file holds are dropped unread): "
        "the notes the model is for, e.g. a hospital's own notes or a corpus's train split."
    )
    dictionary: DictionaryMode = Field(
        default="union",
        description="How the teacher uses the annotate.kb lexicons on the text "
        "(evaluate.dictionary): 'union' labels the lexicons' matches it misses too.",
    )
    synthetic: bool = Field(
        default=True,
        description="The student also trains on the teacher's synthetic notes; false: on the "
        "labelled real text alone.",
    )
    limit: PositiveInt | None = Field(
        default=None, description="The first N documents of the text only."
    )
    # Left out of dumps while empty, so that students trained before the field existed keep
    # their digests.
    negatives: list[LexiconFile] = Field(
        default_factory=list,
        exclude_if=lambda files: not files,
        description="Terms never labelled: a teacher's label whose text is one of them (in "
        "any case) is dropped, and its document's `reason` names it; e.g. the recipe's "
        "unlabelled negatives (gene symbols, genetics words). Read as written (no filter).",
    )
    consistency: Consistency | None = Field(
        default=None,
        exclude_if=lambda vote: vote is None,
        description="A vote per labelled string over the whole text (raysynth/consistency.py): "
        "labelled everywhere when the teacher mostly labels it, nowhere when it rarely does "
        "(`{}` for the defaults).",
    )

    @field_validator("text", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def resolved(self, base: Path) -> SelfTrainingConfig:
        """Text and negatives paths taken relative to `base` (the config file's folder)."""
        text = self.text.model_copy(update={"path": resolve_path(base, self.text.path)})
        files = [f.model_copy(update={"path": resolve_path(base, f.path)}) for f in self.negatives]
        return self.model_copy(update={"text": text, "negatives": files})

    def check(self, kb: KnowledgeBase | None, where: str = "self_training") -> None:
        """The errors a run would meet after its teacher trained, raised when the config
        loads: no text, a missing negatives file, a dictionary without lexicons."""
        if "://" not in str(self.text.path) and not Path(self.text.path).exists():
            raise ConfigError(f"{where}.text: {self.text.path} does not exist")
        self.negative_terms(where)
        if self.dictionary != "off" and not kb:
            raise ConfigError(
                f"{where}.dictionary: {self.dictionary!r} needs lexicons (annotate.kb); "
                "or set dictionary: off"
            )

    def negative_terms(self, where: str = "self_training") -> frozenset[str]:
        """The lower-cased terms of `negatives`, read as written; a missing file is an error
        naming its field (`load_terms`)."""
        from raysynth.generate.lexicon import load_terms

        if not self.negatives:
            return frozenset()
        terms = load_terms(self.negatives, None, field=f"{where}.negatives")
        return frozenset(t.lower() for t in terms)


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


def student_training_set(
    config: SelfTrainingConfig,
    evaluate: EvaluateConfig,
    teacher: Path,
    kb: KnowledgeBase | None,
    labels_dir: Path,
    synthetic: Path | None,
    train_dir: Path,
) -> Labelled:
    """The teacher's labels of `config.text` written to `labels_dir`, and `train_dir` made a
    folder of links to them and (with `config.synthetic`) to the synthetic annotation shards
    in `synthetic`: the student's `train.data`."""
    cfg = evaluate.model_copy(update={"dictionary": config.dictionary})
    labelled = label_real_text(
        cfg, str(teacher), config.text, labels_dir, kb, config.limit,
        config.negative_terms(), config.consistency,
    )  # fmt: skip
    sources = [labelled.out_dir]
    if config.synthetic and synthetic is not None:
        sources.append(synthetic)
    link_training_set(train_dir, sources)
    return labelled


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
