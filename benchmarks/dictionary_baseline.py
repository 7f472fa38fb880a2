"""The dictionary baseline: greedy longest-match of the shared lexicons (raysynth.annotate.kb,
generation's default lexicon filters) scored like a model (seqeval strict, IOB2) on the dev
splits, with and without spelling variants, and how fast it matches. FINDINGS.md measured
F1 0.46 (P 0.67, R 0.36) with variants and 0.42 without on NCBI-disease dev.

    python benchmarks/dictionary_baseline.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, emit, first_sentences  # noqa: E402

from raysynth.annotate.kb import DictionaryMatcher, dictionary_baseline  # noqa: E402
from raysynth.corpus import read_documents  # noqa: E402
from raysynth.generate.recipe import LexiconFile, LexiconFilters  # noqa: E402

LEXICONS = SHARED_DATA / "lexicons"
# Corpus -> (CoNLL dev file, label -> lexicon file); the label order is the precedence.
CORPORA = {
    "ncbi_disease": ("ncbi_disease/conll/devel.tsv", {"Disease": "disease_terms.txt"}),
    "bc5cdr": (
        "bc5cdr/conll/devel.tsv",
        {"Chemical": "drug_terms.txt", "Disease": "disease_terms.txt"},
    ),
}


def _run(corpus: str, dev: Path, lexicons: dict[str, str], variants: bool) -> dict:
    per_label = {label: [LexiconFile(path=LEXICONS / name)] for label, name in lexicons.items()}
    started = time.perf_counter()
    matcher = DictionaryMatcher.from_lexicons(per_label, LexiconFilters(), variants)
    built = time.perf_counter() - started
    docs = list(read_documents(dev))
    result = dictionary_baseline(docs, matcher)
    strict = result.scores.seqeval_strict
    figures = {
        "precision": round(strict.overall.precision, 4),
        "recall": round(strict.overall.recall, 4),
        "f1": round(strict.overall.f1, 4),
        "f1_default": round(result.scores.seqeval_default.overall.f1, 4),
        "f1_span_partial": round(result.scores.span_partial.overall.f1, 4),
        "sentences": len(docs),
        "keys": len(matcher),
        "label_conflicts": matcher.label_conflicts,
        "build_seconds": round(built, 2),
        "match_seconds": round(result.match_seconds, 3),
        "sentences_per_second": round(len(docs) / max(result.match_seconds, 1e-9)),
    }
    if len(strict.per_type) > 1:
        figures["f1_per_type"] = {k: round(v.f1, 4) for k, v in strict.per_type.items()}
    name = f"{corpus}/{'variants' if variants else 'plain'}"
    print(f"{name}: {result.scores.summary()}\n", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 200 sentences of each")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raysynth-dictionary-"))
    results: dict[str, dict] = {}
    for corpus, (dev, lexicons) in CORPORA.items():
        sample = first_sentences(
            SHARED_DATA / dev, 200 if args.quick else None, work / f"{corpus}.tsv"
        )
        for variants in (True, False):
            key = f"{corpus}_{'variants' if variants else 'plain'}"
            results[key] = _run(corpus, sample, lexicons, variants)
    ncbi = results["ncbi_disease_variants"]
    emit(
        {
            "benchmark": "dictionary_baseline",
            "quick": args.quick,
            "ncbi_dev_f1": ncbi["f1"],
            "ncbi_dev_precision": ncbi["precision"],
            "ncbi_dev_recall": ncbi["recall"],
            "ncbi_dev_f1_plain": results["ncbi_disease_plain"]["f1"],
            "bc5cdr_dev_f1": results["bc5cdr_variants"]["f1"],
            "bc5cdr_dev_f1_plain": results["bc5cdr_plain"]["f1"],
            "sentences_per_second": results["bc5cdr_variants"]["sentences_per_second"],
            "findings_ncbi_f1": 0.46,
            "findings_ncbi_f1_plain": 0.42,
            "runs": results,
        }
    )


if __name__ == "__main__":
    main()
