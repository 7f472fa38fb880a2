"""The experiment's results: one row per (cell or baseline, test set) in results.json and
results.md, F1 against synthetic corpus size (learning_curve.png) and per-type F1
(per_type.png). Rows are read back from the jobs' markers and evaluation reports, so the
table always covers every finished job of the grid, whichever run finished it."""

from __future__ import annotations

import json
from collections import defaultdict
from math import isnan, nan
from pathlib import Path
from typing import Any

from raysynth.experiment.plan import Cell, Plan, ScoredBaseline
from raysynth.experiment.runner import MARKER

KIND_ORDER = {"synthetic": 0, "self-trained": 1, "dictionary": 2, "llm": 3, "supervised": 4}
# Kinds trained from a synthetic corpus of a given size: drawn as learning curves.
CURVE_KINDS = ("synthetic", "self-trained")
BASELINE_STYLES = {"dictionary": "--", "llm": "-.", "supervised": ":"}


def _stored(run_dir: Path, digest: str) -> dict[str, Any] | None:
    """A finished job's result, if it finished with these settings (read only)."""
    path = run_dir / MARKER
    if not path.is_file():
        return None
    marker = json.loads(path.read_text(encoding="utf-8"))
    return marker.get("result") if marker.get("digest") == digest else None


def summarize_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """Overall and per-type scores. A type the test set has no gold for (PROCEDURE on
    BC5CDR) has no F1: it is listed under `no_gold` with its predictions, which count as false
    positives in the overall scores; a 0.0 beside the others would read as a type the model
    cannot find."""
    strict = scores["seqeval_strict"]
    per_type = strict["per_type"].items()
    return {
        "documents": scores["n_docs"],
        "precision": round(strict["overall"]["precision"], 4),
        "recall": round(strict["overall"]["recall"], 4),
        "f1": round(strict["overall"]["f1"], 4),
        "per_type_f1": {t: round(v["f1"], 4) for t, v in per_type if v["n_gold"]},
        "no_gold": {t: v["n_pred"] for t, v in per_type if not v["n_gold"]},
    }


def _command(plan: Plan, name: str) -> str:
    return f"raysynth experiment {plan.grid.path} --only {name}"


def _cell_rows(plan: Plan, cell: Cell) -> list[dict[str, Any]]:
    stored = _stored(cell.run_dir, cell.digest)
    if stored is None:
        return []
    rows = []
    for test, path in stored["reports"].items():
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        rows.append(
            {
                "name": cell.name,
                "kind": cell.kind,
                "rounds": cell.rounds,
                "recipe": cell.recipe,
                "seed": cell.seed,
                "size": cell.size,
                "annotator": cell.annotator,
                "backbone": cell.backbone,
                "test_set": test,
                "train_documents": stored["train_documents"],
                **summarize_scores(report["scores"]),
                "f1_95ci": report["f1_strict_95ci"],
                "command": _command(plan, cell.name),
            }
        )
    return rows


def _baseline_rows(plan: Plan, baseline: ScoredBaseline) -> list[dict[str, Any]]:
    stored = _stored(baseline.run_dir, baseline.digest)
    if stored is None:
        return []
    rows = []
    for test, variants in stored["scores"].items():
        for variant, scores in variants.items():
            annotator = f"{baseline.annotator}/{variant}" if baseline.kind == "llm" else None
            rows.append(
                {
                    "name": baseline.name,
                    "kind": baseline.kind,
                    "rounds": 0,
                    "recipe": None,
                    "seed": None,
                    "size": None,
                    "annotator": annotator,
                    "backbone": None,
                    "test_set": test,
                    "train_documents": None,
                    **summarize_scores(scores),
                    "f1_95ci": None,
                    "command": _command(plan, baseline.name),
                }
            )
    return rows


def collect_rows(plan: Plan) -> list[dict[str, Any]]:
    """Every finished cell and baseline of the plan, in table order."""
    rows = [r for cell in plan.cells for r in _cell_rows(plan, cell)]
    rows += [r for baseline in plan.baselines for r in _baseline_rows(plan, baseline)]
    return sorted(
        rows,
        key=lambda r: (
            r["test_set"],
            KIND_ORDER[r["kind"]],
            r["recipe"] or "",
            r["annotator"] or "",
            r["backbone"] or "",
            r["size"] or 0,
            r["seed"] or 0,
            r["rounds"],
        ),
    )


def write_results(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "learning_curve": out_dir / "learning_curve.png",
        "per_type": out_dir / "per_type.png",
    }
    paths["json"].write_text(json.dumps(rows, indent=2), encoding="utf-8")
    paths["markdown"].write_text(markdown(rows, out_dir.name), encoding="utf-8")
    plot_learning_curve(rows, paths["learning_curve"])
    plot_per_type(rows, paths["per_type"])
    return paths


def _cell_text(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(rows: list[dict[str, Any]], name: str) -> str:
    lines = [
        f"# Experiment {name}",
        "",
        "Entity-level seqeval strict scores (IOB2). `size`: synthetic notes generated; "
        "`train docs`: notes the model was trained on (kept by generation and annotation). "
        "LLM rows are scored on `docs` test documents only.",
        "",
        "| kind | recipe | size | annotator | backbone | test set | docs | train docs | P | R "
        "| F1 (95% CI) | per-type F1 | reproduce |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r["f1_95ci"]
        f1 = f"{r['f1']:.4f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        scored = [f"{t} {v:.3f}" for t, v in r["per_type_f1"].items()]
        unscored = [f"{t} no gold ({n} predicted)" for t, n in r["no_gold"].items()]
        per_type = ", ".join(scored + unscored) or "-"
        recipe = r["recipe"] if r["seed"] is None else f"{r['recipe']} (seed {r['seed']})"
        kind = r["kind"] + (f" (round {r['rounds']})" if r["rounds"] else "")
        cells = [kind, recipe, r["size"], r["annotator"], r["backbone"], r["test_set"],
                 r["documents"], r["train_documents"]]  # fmt: skip
        lines.append(
            "| " + " | ".join(_cell_text(c) for c in cells)
            + f" | {r['precision']:.4f} | {r['recall']:.4f} | {f1} | {per_type} "
            f"| `{r['command']}` |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(rows: list[dict[str, Any]], test: str) -> dict[str, list[tuple[int, float]]]:
    """(size, F1) points per recipe/annotator/backbone line on one test set, and one line
    more for the self-trained students of its cells; several seeds of a size are averaged."""
    backbones = {r["backbone"] for r in rows if r["kind"] == "synthetic"}
    points: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] in CURVE_KINDS and r["test_set"] == test:
            label = f"{r['recipe']} / {r['annotator']}"
            label += f" / {r['backbone']}" if len(backbones) > 1 else ""
            label += _self_training(r)
            points[label][r["size"]].append(r["f1"])
    return {
        label: sorted((size, sum(f1s) / len(f1s)) for size, f1s in by_size.items())
        for label, by_size in points.items()
    }


def plot_learning_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """F1 against synthetic corpus size, one panel per test set; the dictionary and the
    supervised baselines, and the LLM on (part of) the test text, as horizontal lines."""
    plt = _pyplot()
    tests = sorted({r["test_set"] for r in rows}) or ["(no results)"]
    fig, axes = plt.subplots(1, len(tests), figsize=(6 * len(tests), 4), squeeze=False)
    for ax, test in zip(axes[0], tests, strict=True):
        sizes: set[int] = set()
        for label, points in learning_curves(rows, test).items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
            sizes.update(p[0] for p in points)
        for r in rows:
            if r["test_set"] == test and r["kind"] in BASELINE_STYLES:
                label = _row_label(r) + (f" ({r['documents']} docs)" if r["kind"] == "llm" else "")
                ax.axhline(r["f1"], linestyle=BASELINE_STYLES[r["kind"]], color="grey", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sizes), [str(s) for s in sorted(sizes)])
        ax.minorticks_off()
        ax.set_xlabel("synthetic notes")
        ax.set_ylabel("F1 (seqeval strict)")
        ax.set_ylim(0, 1.03)
        ax.set_title(test)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _self_training(r: dict[str, Any]) -> str:
    rounds = r["rounds"]
    return "" if not rounds else " + self-training" + (f" x{rounds}" if rounds > 1 else "")


def _row_label(r: dict[str, Any]) -> str:
    if r["kind"] in CURVE_KINDS:
        seed = f" s{r['seed']}" if r["seed"] is not None else ""
        return f"{r['recipe']}/{r['annotator']}/{r['backbone']}{seed}{_self_training(r)}"
    return r["annotator"] if r["kind"] == "llm" else r["name"]


def per_type_rows(rows: list[dict[str, Any]], test: str) -> list[dict[str, Any]]:
    """The rows the per-type plot shows for one test set: cells at their largest size (the
    best the grid trained) and every baseline."""
    largest = max((r["size"] for r in rows if r["kind"] == "synthetic"), default=None)
    return [
        r
        for r in rows
        if r["test_set"] == test and (r["kind"] not in CURVE_KINDS or r["size"] == largest)
    ]


def plot_per_type(rows: list[dict[str, Any]], path: Path) -> None:
    """Per-type F1 as a table of shaded cells (rows x entity types), one panel per test
    set: readable with a dozen rows, where grouped bars are not."""
    plt = _pyplot()
    tests = sorted({r["test_set"] for r in rows}) or ["(no results)"]
    shown = {test: per_type_rows(rows, test) for test in tests}
    height = max([len(v) for v in shown.values()] + [1]) * 0.4 + 1.5
    fig, axes = plt.subplots(1, len(tests), figsize=(7 * len(tests), height), squeeze=False)
    for ax, test in zip(axes[0], tests, strict=True):
        chosen = shown[test]
        types = sorted({t for r in chosen for t in [*r["per_type_f1"], *r["no_gold"]]})
        # A type without gold in this test set is NaN (drawn blank, labelled); a type the
        # row never predicted is 0.0.
        grid = [[r["per_type_f1"].get(t, nan if t in r["no_gold"] else 0.0) for t in types]
                for r in chosen]  # fmt: skip
        if grid and types:
            ax.imshow(grid, vmin=0, vmax=1, cmap="Blues", aspect="auto")
            for i, values in enumerate(grid):
                for j, value in enumerate(values):
                    text = "no gold" if isnan(value) else f"{value:.2f}"
                    color = "white" if value > 0.6 else "black"
                    ax.text(j, i, text, ha="center", va="center", color=color)
        ax.set_xticks(range(len(types)), types)
        ax.set_yticks(range(len(chosen)), [_row_label(r) for r in chosen], fontsize="small")
        ax.set_title(f"{test}: per-type F1 (seqeval strict)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
