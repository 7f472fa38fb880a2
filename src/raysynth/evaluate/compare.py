"""`raysynth compare RUN...`: one table and a learning curve across runs, for example runs
that differ only in the size of the synthetic corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raysynth.errors import ConfigError


def collect(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per (run, test set): scores from the report, corpus size from training."""
    rows = []
    for run in run_dirs:
        reports = sorted((run / "report").glob("*/report.json"))
        if not reports:
            raise ConfigError(f"{run}: no report/*/report.json (run the evaluate stage first)")
        metrics_path = run / "train_metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        size = metrics.get("counts", {}).get("train_documents")
        for path in reports:
            report = json.loads(path.read_text())
            scores = report["scores"]
            rows.append(
                {
                    "run": run.name,
                    "test_set": report["test_set"],
                    "train_documents": size,
                    "f1_strict": scores["seqeval_strict"]["overall"]["f1"],
                    "f1_strict_95ci": report["f1_strict_95ci"],
                    "f1_default": scores["seqeval_default"]["overall"]["f1"],
                    "f1_span_exact": scores["span_exact"]["overall"]["f1"],
                    "f1_span_partial": scores["span_partial"]["overall"]["f1"],
                }
            )
    return rows


def write_comparison(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "compare.json",
        "markdown": out_dir / "compare.md",
        "learning_curve_png": out_dir / "learning_curve.png",
    }
    paths["json"].write_text(json.dumps(rows, indent=2), encoding="utf-8")
    lines = [
        "| run | test set | train docs | F1 strict | 95% CI | F1 default | span exact | "
        "span partial |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r["f1_strict_95ci"]
        ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"
        lines.append(
            f"| {r['run']} | {r['test_set']} | {r['train_documents'] or '-'} | "
            f"{r['f1_strict']:.4f} | {ci_text} | {r['f1_default']:.4f} | "
            f"{r['f1_span_exact']:.4f} | {r['f1_span_partial']:.4f} |"
        )
    paths["markdown"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(rows, paths["learning_curve_png"])
    return paths


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Strict F1 against training corpus size, one line per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for test in sorted({r["test_set"] for r in rows}):
        points = sorted(
            (r["train_documents"] or 0, r["f1_strict"]) for r in rows if r["test_set"] == test
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=test)
    ax.set_xlabel("training documents")
    ax.set_ylabel("F1 (seqeval strict)")
    ax.set_ylim(0, 1)
    ax.set_title("learning curve")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
