"""Corpus statistics of the note shards, streamed one shard at a time.

Counts (rows = ok + failed + removed, with removal reasons), LLM tokens used, mean length of
the kept notes, distinct-n (unique n-grams / all n-grams) over the first DISTINCT_SAMPLE kept
notes (a bounded sample keeps memory flat; the sample size is reported), the duplicate rate,
and seed coverage per entity type: how many seeded terms each match tier found and how many
were missing.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

DISTINCT_SAMPLE = 5000
_WORD = re.compile(r"\w+")
COLUMNS = ["status", "reason", "text", "seed_matches", "usage"]


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.chars = self.words = 0
        self.ngrams: dict[int, set] = {1: set(), 2: set(), 3: set()}
        self.ngram_total: Counter[int] = Counter()
        self.sampled = 0
        self.coverage: dict[str, Counter[str]] = defaultdict(Counter)
        self.all_found = self.seeded = 0
        self.tokens: Counter[str] = Counter()  # LLM usage of every row, kept or not

    def add(self, row: dict[str, Any]) -> None:
        self.counts["rows"] += 1
        self.counts[row["status"]] += 1
        for key, value in (row["usage"] or {}).items():
            self.tokens[key] += value or 0
        if row["status"] != "ok":
            reason = (row["reason"] or "").split(" of ")[0].split(":")[0]
            self.reasons[f"{row['status']}: {reason}"] += 1
            return
        words = _WORD.findall(row["text"].lower())
        self.chars += len(row["text"])
        self.words += len(words)
        if self.sampled < DISTINCT_SAMPLE:
            self.sampled += 1
            for n, grams in self.ngrams.items():
                new = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
                grams.update(new)
                self.ngram_total[n] += len(new)
        matches = row["seed_matches"] or []
        for m in matches:
            self.coverage[m["label"]][m["match"]] += 1
        if matches:
            self.seeded += 1
            self.all_found += all(m["match"] != "missing" for m in matches)

    def result(self) -> dict[str, Any]:
        ok = self.counts["ok"]
        duplicates = sum(v for k, v in self.reasons.items() if "duplicate" in k)
        coverage = {}
        for label, tiers in sorted(self.coverage.items()):
            asked = sum(tiers.values())
            coverage[label] = {
                "seeds": asked,
                **{t: tiers[t] for t in ("exact", "case", "fuzzy", "missing")},
                "found_rate": round((asked - tiers["missing"]) / asked, 4) if asked else None,
            }
        return {
            "counts": {k: self.counts[k] for k in ("rows", "ok", "failed", "removed")},
            "reconciles": self.counts["rows"]
            == self.counts["ok"] + self.counts["failed"] + self.counts["removed"],
            "reasons": dict(sorted(self.reasons.items())),
            "tokens": {k: self.tokens[k] for k in ("prompt_tokens", "completion_tokens")},
            "mean_chars": round(self.chars / ok, 1) if ok else None,
            "mean_words": round(self.words / ok, 1) if ok else None,
            "distinct_n": {
                f"distinct_{n}": round(len(g) / self.ngram_total[n], 4)
                if self.ngram_total[n]
                else None
                for n, g in self.ngrams.items()
            },
            "distinct_sample_notes": self.sampled,
            "duplicate_rate": round(duplicates / (ok + duplicates), 4) if ok + duplicates else 0,
            "seed_coverage": coverage,
            "notes_with_all_seeds_found": round(self.all_found / self.seeded, 4)
            if self.seeded
            else None,
        }


def corpus_stats(notes_dir: Path, shards: list[str]) -> dict[str, Any]:
    """Statistics over the given note shards (those present), one shard in memory at once."""
    tally = _Tally()
    present = [name for name in shards if (notes_dir / name).is_file()]
    for name in present:
        for row in pq.read_table(notes_dir / name, columns=COLUMNS).to_pylist():
            tally.add(row)
    return {"shards": len(present), **tally.result()}
