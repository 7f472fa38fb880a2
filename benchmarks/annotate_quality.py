"""How well the local annotator labels real text, per prompt strategy (`raysynth annotate
--gold`): F1 (seqeval strict), parse-failure and hallucination rates and notes/s of each
strategy (json / inline / tokens x zero-shot / kNN few-shot x with / without the dictionary
in the prompt) with SmolLM2-135M through the local llama.cpp server, on the first N sentences
of NCBI-disease dev. The baseline in the same run is the dictionary alone on those sentences.

    python benchmarks/annotate_quality.py [--quick] [--sentences N] [--formats json,inline]
        [--shots zero,knn] [--kb no,yes]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, emit, first_sentences, start_ray  # noqa: E402

from raysynth.annotate.config import AnnotateConfig  # noqa: E402
from raysynth.annotate.job import evaluate_annotator, read_corpus, results_table  # noqa: E402
from raysynth.annotate.kb import DictionaryMatcher, dictionary_baseline  # noqa: E402
from raysynth.config_base import CorpusRef  # noqa: E402

NCBI = SHARED_DATA / "ncbi_disease" / "conll"
LEXICON = SHARED_DATA / "lexicons" / "disease_terms.txt"
LABELS = {"Disease": "a disease, disorder, syndrome or abnormality, or its abbreviation"}


def strategies(formats: list[str], shots: list[str], kb: list[str]) -> list[dict]:
    return [
        {"format": fmt, "shots": shot, "k": 3, "kb_in_prompt": hints == "yes", "max_tokens": 160}
        for fmt in formats
        for shot in shots
        for hints in kb
    ]


def print_row(result) -> None:
    print(json.dumps(result.row()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 sentences, json and inline")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--formats", default="json,inline,tokens")
    # Two processes, each with its own server, share the hours of a full table on 2 CPUs.
    parser.add_argument("--shots", default="zero,knn", help="zero,knn or either")
    parser.add_argument("--kb", default="no,yes", help="dictionary in the prompt: no,yes or either")
    args = parser.parse_args()
    n = 20 if args.quick else args.sentences
    formats = ["json", "inline"] if args.quick else args.formats.split(",")
    config = AnnotateConfig.model_validate(
        {
            "labels": LABELS,
            "backend": {"kind": "local", "concurrency": 1, "max_in_flight": 2},
            "strategies": strategies(formats, args.shots.split(","), args.kb.split(",")),
            "examples": {"path": str(NCBI / "train.tsv")},
            "examples_limit": 1000,
            "kb": {"lexicons": {"Disease": [{"path": str(LEXICON)}]}},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        gold = first_sentences(NCBI / "devel.tsv", n, Path(tmp) / "dev.tsv")
        docs = read_corpus(CorpusRef(path=gold, format="conll"))
        matcher = DictionaryMatcher.from_lexicons(config.kb.lexicons, config.kb.filters)
        baseline = dictionary_baseline(docs, matcher).scores.seqeval_strict.overall
        start_ray()
        # Each strategy's row as it ends: a run of hours keeps what it measured if stopped.
        results = evaluate_annotator(config, docs, Path(tmp) / "run", on_result=print_row)
    print(results_table(results))
    print(f"dictionary alone: P {baseline.precision:.4f} R {baseline.recall:.4f} "
          f"F1 {baseline.f1:.4f}")  # fmt: skip
    rows = [r.row() for r in results]
    best = max(rows, key=lambda r: r["f1"])
    emit(
        {
            "benchmark": "annotate_quality",
            "quick": args.quick,
            "sentences": n,
            "strategies": rows,
            "dictionary_f1": round(baseline.f1, 4),
            "best_strategy": best["strategy"],
            "best_f1": best["f1"],
            "best_over_dictionary": round(best["f1"] / baseline.f1, 3) if baseline.f1 else None,
        }
    )


if __name__ == "__main__":
    main()
