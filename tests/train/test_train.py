"""`raysynth train` on a real local Ray: two CPU workers, a tiny BERT, a small labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysynth.config_base import CorpusRef
from raysynth.errors import ConfigError
from raysynth.train.config import TrainConfig
from raysynth.train.fit import FAULT_ENV, train
from tests.helpers import write_easy_corpus


def config(tmp_path: Path, model: Path, **overrides) -> TrainConfig:
    fields = {
        "data": CorpusRef(path=write_easy_corpus(tmp_path / "train.tsv", 192, seed=1)),
        "dev": CorpusRef(path=write_easy_corpus(tmp_path / "dev.tsv", 32, seed=2)),
        "labels": ["Disease"],
        "model": str(model),
        "epochs": 4,
        "batch_size": 8,
        "learning_rate": 5e-3,
        "early_stopping_patience": None,
        **overrides,
    }
    return TrainConfig(**fields)


def test_two_workers_survive_a_fault_and_export_a_pipeline_model(
    ray_session, tiny_bert, tmp_path, monkeypatch
):
    from transformers import pipeline

    # 192 windows / (8 x 2 workers) = 12 steps per epoch; the fault comes after the first
    # checkpoint (step 12), so the second attempt must start there, not at 0.
    monkeypatch.setenv(FAULT_ENV, "15")
    result = train(config(tmp_path, tiny_bert), tmp_path / "run")
    metrics = result.metrics
    assert (tmp_path / "run" / "fault_injected").exists()
    begins = sorted({a["train_begin_step"] for a in metrics["attempts"]})
    assert begins == [0, 12]
    assert metrics["steps"] == metrics["max_steps"] == 48
    assert [e["step"] for e in metrics["evaluations"]] == [12, 24, 36, 48]
    assert metrics["best"]["eval_f1"] > 0.5
    assert metrics["counts"]["train_windows"] == 192
    saved = json.loads(result.metrics_path.read_text())
    assert saved["best"] == metrics["best"]

    ner = pipeline(
        "token-classification", model=str(result.model_dir), aggregation_strategy="simple"
    )
    assert set(ner.model.config.id2label.values()) == {"O", "B-Disease", "I-Disease"}
    found = ner("the nurse noted asthma and gout today .")
    assert {e["entity_group"] for e in found} == {"Disease"}
    assert {e["word"] for e in found} & {"asthma", "gout"}


def test_rerun_with_the_same_name_resumes_from_the_checkpoint(
    ray_session, tiny_bert, tmp_path, monkeypatch
):
    cfg = config(tmp_path, tiny_bert, epochs=2, max_failures=0)
    monkeypatch.setenv(FAULT_ENV, "14")
    with pytest.raises(Exception, match="injected test fault"):
        train(cfg, tmp_path / "run")
    monkeypatch.delenv(FAULT_ENV)
    result = train(cfg, tmp_path / "run")
    # (step evaluated, step the attempt began at): the second run began at the checkpoint.
    attempts = [(a["step"], a["train_begin_step"]) for a in result.metrics["attempts"]]
    assert attempts == [(12, 0), (24, 12)]
    assert result.metrics["steps"] == 24


def test_bad_input_fails_before_workers_start(ray_session, tiny_bert, tmp_path):
    empty = tmp_path / "empty.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raysynth.schema import ANNOTATIONS

    pq.write_table(pa.Table.from_pylist([], schema=ANNOTATIONS), empty)
    with pytest.raises(ConfigError, match="no usable training documents"):
        train(config(tmp_path, tiny_bert, data=CorpusRef(path=empty)), tmp_path / "r1")

    with pytest.raises(ConfigError, match=r"label\(s\) \['Disease'\] are not in train.labels"):
        train(config(tmp_path, tiny_bert, labels=["Drug"]), tmp_path / "r2")

    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        train(config(tmp_path, tmp_path / "no-model"), tmp_path / "r3")

    with pytest.raises(ConfigError, match="does not exist"):
        train(config(tmp_path, tiny_bert, data=CorpusRef(path=tmp_path / "x.tsv")), tmp_path / "r4")
    assert not (tmp_path / "r1" / "checkpoints").exists()
