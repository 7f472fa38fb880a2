"""The report of one evaluation: `report.json` (everything), `report.md` (tables a person
reads) and PNG plots (per-type P/R/F1, error breakdown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raysynth.evaluate.tally import ERROR_KINDS, Tally
from raysynth.scoring import Scores

MODE_TITLES = {
    "seqeval_strict": "seqeval strict (IOB2)",
    "seqeval_default": "seqeval default (conlleval)",
    "span_exact": "character spans, exact",
    "span_partial": "character spans, partial overlap",
}


def build_report(name: str, tally: Tally, meta: dict[str, Any]) -> dict[str, Any]:
    scores = tally.scores()
    interval = tally.f1_interval()
    return {
        "test_set": name,
        **meta,
        "scores": scores.to_dict(),
        "f1_strict_95ci": list(interval) if interval else None,
        "documents": {
            "total": tally.docs,
            "empty": tally.empty_docs,
            "without_gold_entities": tally.docs_without_gold,
        },
        "not_scored": {
            "gold_of_types_the_model_lacks": tally.unscored_gold,
            "words_no_window_reached": tally.unseen_words,
            "overlapping_gold_spans_left_out_of_tags": tally.gold_conflicts,
        },
        "errors": {kind: tally.errors.get(kind, 0) for kind in ERROR_KINDS},
        "error_examples": tally.examples,
    }


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "per_type_png": out_dir / "per_type.png",
        "errors_png": out_dir / "errors.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2), encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    scores = Scores.from_dict(report["scores"])
    _plot_per_type(scores, report["test_set"], paths["per_type_png"])
    _plot_errors(report["errors"], report["test_set"], paths["errors_png"])
    return paths


def markdown(report: dict[str, Any]) -> str:
    scores = Scores.from_dict(report["scores"])
    ci = report["f1_strict_95ci"]
    lines = [f"# Evaluation: {report['test_set']}", ""]
    lines += [f"- model: `{report.get('model')}`", f"- test set: `{report.get('path')}`"]
    if "abbreviations" in report:
        step = "on" if report["abbreviations"] else "off"
        lines.append(f"- abbreviation step (evaluate.abbreviations): {step}")
    if report.get("dictionary", "off") != "off":
        lines.append(f"- combined with the lexicons (evaluate.dictionary): {report['dictionary']}")
    if ci:
        lines.append(
            f"- strict F1 95% interval (bootstrap over documents): {ci[0]:.4f} to {ci[1]:.4f}"
        )
    lines += ["", "| scoring | P | R | F1 | gold | predicted |", "|---|---|---|---|---|---|"]
    for mode, title in MODE_TITLES.items():
        o = getattr(scores, mode).overall
        lines.append(
            f"| {title} | {o.precision:.4f} | {o.recall:.4f} | {o.f1:.4f} | "
            f"{o.n_gold} | {o.n_pred} |"
        )
    lines += [
        "",
        "## Per type (seqeval strict)",
        "",
        "| type | P | R | F1 | gold |",
        "|---|---|---|---|---|",
    ]
    for label, prf in scores.seqeval_strict.per_type.items():
        lines.append(
            f"| {label} | {prf.precision:.4f} | {prf.recall:.4f} | {prf.f1:.4f} | {prf.n_gold} |"
        )
    lines += ["", "## Errors (character spans)", "", "| kind | count |", "|---|---|"]
    lines += [f"| {kind} | {n} |" for kind, n in report["errors"].items()]
    for kind, rows in report["error_examples"].items():
        lines += ["", f"Examples, {kind}:", ""]
        lines += [f"- `{r['doc_id']}`: gold {r['gold']!r}, predicted {r['pred']!r}" for r in rows]
    lines += [
        "",
        "## Counts",
        "",
        f"- documents: {report['documents']}",
        f"- not scored: {report['not_scored']}",
        "",
    ]
    return "\n".join(lines)


def _plot_per_type(scores: Scores, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(scores.seqeval_strict.per_type) or ["(none)"]
    per_type = scores.seqeval_strict.per_type
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(labels)), 3.2))
    width = 0.25
    for k, metric in enumerate(("precision", "recall", "f1")):
        values = [getattr(per_type[label], metric) if label in per_type else 0 for label in labels]
        ax.bar([i + (k - 1) * width for i in range(len(labels))], values, width, label=metric)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: per type (seqeval strict)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_errors(errors: dict[str, int], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(list(errors), list(errors.values()), color="tab:red")
    ax.set_title(f"{title}: errors by kind")
    ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
