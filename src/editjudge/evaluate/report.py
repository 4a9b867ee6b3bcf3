"""Write an evaluation report: ``metrics.json`` plus ``report.md`` with PNG plots under ``plots/``.

``write_report(metrics_by_judge, records_by_judge, out_dir, training_log=None)`` is the one entry point (the demo
calls it). Several judges are shown side by side; the figures come from :mod:`editjudge.evaluate.plots`. Every file
is written atomically and the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from editjudge.data.writer import atomic_write_bytes
from editjudge.evaluate.failures import describe as describe_reasons
from editjudge.evaluate.metrics import json_safe
from editjudge.evaluate.plots import (
    ACCURACY_KEYS,
    _get,
    _interval,
    _reward_key,
    _run_of,
    plot_compare,
    plot_confusion,
    plot_histograms,
    plot_learning_curve,
    plot_pred_vs_true,
    plot_training,
)
from editjudge.evaluate.records import EvalRecord, as_records

# (metric path in the metrics dict, row title, bootstrap name or None)
SUMMARY_ROWS: list[tuple[str, str, str | None]] = [
    ("n", "records", None),
    ("format.parse_rate", "parse rate", "parse_rate"),
    ("format.format_rate", "format rate (think + answer)", None),
    ("accuracy.exact", "accuracy, exact", "accuracy.exact"),
    ("accuracy.within_1", "accuracy, ±1", "accuracy.within_1"),
    ("accuracy.within_2", "accuracy, ±2", "accuracy.within_2"),
    ("mae.value", "MAE (parsed)", "mae.value"),
    ("correlation.pred_vs_label.spearman.value", "Spearman vs label", "correlation.pred_vs_label.spearman"),
    ("correlation.pred_vs_label.kendall.value", "Kendall τ-b vs label", "correlation.pred_vs_label.kendall"),
    ("correlation.pred_vs_label.pearson.value", "Pearson vs label", "correlation.pred_vs_label.pearson"),
    ("correlation.pred_vs_gt_score.spearman.value", "Spearman vs raw score", None),
    ("pairwise.strict.value", "pairwise acc., strict (EditScore)", "pairwise.strict"),
    ("pairwise.with_ties.value", "pairwise acc., with ties (EditReward)", "pairwise.with_ties"),
    ("best_of_n.pick", "best-of-N: value of pick", None),
    ("best_of_n.oracle", "best-of-N: oracle", None),
    ("best_of_n.random", "best-of-N: random pick", None),
    ("best_of_n.regret", "best-of-N: regret", "best_of_n.regret"),
    ("best_of_n.win_rate_vs_random", "best-of-N: win rate vs random", "best_of_n.win_rate_vs_random"),
    ("reward.mean", "mean reward (verl)", None),
]
def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def slug(name: str) -> str:
    """A file-name-safe version of a judge name."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return s or "judge"


# ---------------------------------------------------------------------------------------------------- page


def _cell(m: Mapping[str, Any], path: str, ci_name: str | None) -> str:
    text = _fmt(_get(m, path))
    if ci_name is not None:
        ci = _interval(m, ci_name)
        if ci and ci.get("low") is not None:
            text += f" [{ci['low']:.3f}, {ci['high']:.3f}]"
    return text


def _md(text: str) -> str:
    """Text that cannot break a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _summary_table(metrics_by_judge: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = list(metrics_by_judge)
    lines = ["| metric | " + " | ".join(_md(n) for n in names) + " |", "|---|" + "---:|" * len(names)]
    for path, title, ci_name in SUMMARY_ROWS:
        cells = [_cell(metrics_by_judge[n], path, ci_name) for n in names]
        if all(c == "–" for c in cells):
            continue
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def _dimension_section(metrics_by_judge: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One table per dimension judge: every summary metric for the overall and for each dimension."""
    from editjudge.evaluate.dimensions import columns

    lines: list[str] = []
    for name, m in metrics_by_judge.items():
        if not m.get("dimensions"):
            continue
        lines += [f"## {name}: per dimension" if len(metrics_by_judge) > 1 else "## Per dimension", "",
                  "The overall is the set's rule over the dimensions (of the answer's digits; of the labels where "
                  "a row labels every dimension). A dimension a row leaves unlabelled is not counted there.", "",
                  *_summary_table(columns(m)), ""]
    return lines


def _notes(name: str, m: Mapping[str, Any]) -> list[str]:
    """Why some numbers are missing, and what went into the others."""
    out: list[str] = []
    fmt = m.get("format", {})
    if fmt.get("errors"):
        errs = ", ".join(f"{k}: {v}" for k, v in fmt["errors"].items())
        out.append(f"- unparsed answers ({fmt['n'] - fmt['n_parsed']} of {fmt['n']}): {errs}; top reasons:")
        out += [f"  - {line}" for line in describe_reasons(fmt.get("reasons") or [])]
    pw = m.get("pairwise", {})
    for kind in ("strict", "with_ties"):
        if _get(pw, f"{kind}.reason"):
            out.append(f"- pairwise {kind}: {pw[kind]['reason']}")
    if _get(pw, "with_ties.epsilon") is not None:
        out.append(
            f"- pairwise with ties: {pw['with_ties']['n_pairs']} pairs in groups, tie threshold ε* = "
            f"{pw['with_ties']['epsilon']:.3g} on the {pw.get('ranking_score')}; at ε = 0: "
            f"{pw['with_ties']['value_at_epsilon_0']:.3f}"
        )
    if _get(m, "best_of_n.reason"):
        out.append(f"- best-of-N: {m['best_of_n']['reason']}")
    elif _get(m, "best_of_n.n_groups"):
        b = m["best_of_n"]
        ranked = b["ranking_score"] or "nothing (no answer parsed: picks are random)"
        out.append(f"- best-of-N over {b['n_groups']} groups (mean size {b['mean_group_size']:.1f}), "
                   f"truth = {b['truth']}, ranked by {ranked}")
    corr = _get(m, "correlation.pred_vs_label.spearman.reason")
    if corr:
        out.append(f"- correlations: {corr}")
    boot = m.get("bootstrap")
    if boot:
        out.append(f"- intervals: {boot['confidence_level']:.0%} {boot['method']} bootstrap, {boot['n_resamples']} "
                   f"resamples of {boot['n_groups']} {boot['resample']}")
    return [f"**{name}**", *out] if out else []


def _per_label_table(m: Mapping[str, Any]) -> list[str]:
    per = m.get("per_label") or {}
    if not per:
        return []
    lines = ["| label | n | exact | ±1 | ±2 | parse rate | mean answer | MAE |", "|---:" * 8 + "|"]
    for k, row in per.items():
        lines.append(
            f"| {k} | {row['n']} | {_fmt(row['exact'])} | {_fmt(row['within_1'])} | {_fmt(row['within_2'])} | "
            f"{_fmt(row['parse_rate'])} | {_fmt(row['mean_pred'])} | {_fmt(row['mae'])} |"
        )
    return lines


def _training_table(log: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [row for row in log if row.get("step") is not None]
    reward = _reward_key(rows)
    runs = any("run" in row or "phase" in row for row in rows)
    columns = [("step", "step"), ("n", "n")] + ([(reward, "mean reward")] if reward else [])
    columns += [*ACCURACY_KEYS, ("frac_reward_zero_std", "groups with equal rewards"), ("loss", "loss")]
    columns = [(k, t) for k, t in columns if any(row.get(k) is not None for row in rows)]
    shown = [k for k, _ in columns if k != "step"]
    lines = ["| " + " | ".join(["run"] * runs + [t for _, t in columns]) + " |", "|---:" * (len(columns) + runs) + "|"]
    for row in rows:
        if any(row.get(k) is not None for k in shown):
            cells = [_md(_run_of(row))] * runs + [_fmt(row.get(k)) for k, _ in columns]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


HEADLINE_TITLES = {
    "parse_rate": "parse rate",
    "accuracy.exact": "accuracy, exact",
    "accuracy.within_1": "accuracy, ±1",
    "accuracy.within_2": "accuracy, ±2",
    "mae.value": "MAE (lower is better)",
    "correlation.pred_vs_label.spearman": "Spearman vs label",
    "correlation.pred_vs_label.kendall": "Kendall τ-b vs label",
    "correlation.pred_vs_label.pearson": "Pearson vs label",
    "pairwise.strict": "pairwise acc., strict",
    "pairwise.with_ties": "pairwise acc., with ties",
    "best_of_n.regret": "best-of-N regret (lower is better)",
    "best_of_n.win_rate_vs_random": "best-of-N win rate vs random",
}


def _comparison_section(comparison: Mapping[str, Any]) -> list[str]:
    base = comparison["baseline"]
    lines = [f"## Differences to {base}", ""]
    if comparison.get("reason"):
        return lines + [f"Not computed: {comparison['reason']}.", ""]
    others = list(comparison["differences"])
    lines += [
        f"Judge minus {base} on the {comparison['n_common']} items all judges scored; brackets: paired bootstrap "
        "interval (the same resampled groups for every judge); **bold** = the interval excludes 0.",
        "",
        "| metric | " + " | ".join(_md(n) for n in others) + " |",
        "|---|" + "---:|" * len(others),
    ]
    for key, title in HEADLINE_TITLES.items():
        cells = []
        for name in others:
            d = comparison["differences"][name].get(key) or {}
            if d.get("value") is None:
                cells.append("–")
                continue
            text = f"{d['value']:+.3f}"
            if d.get("low") is not None:
                text += f" [{d['low']:+.3f}, {d['high']:+.3f}]"
            cells.append(f"**{text}**" if d.get("clear") else text)
        if any(c != "–" for c in cells):
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines + [""]


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_report(
    metrics_by_judge: Mapping[str, Mapping[str, Any]],
    records_by_judge: Mapping[str, Sequence[EvalRecord | Mapping[str, Any]]],
    out_dir: str | Path,
    training_log: Sequence[Mapping[str, Any]] | None = None,
    *,
    comparison: Mapping[str, Any] | None = None,
    title: str = "editjudge evaluation",
    learning_curve: Sequence[Mapping[str, Any]] | None = None,
    appendix: Sequence[str] | None = None,
) -> Path:
    """Write ``metrics.json``, ``report.md`` and ``plots/*.png`` into ``out_dir``; return the page's path.

    ``metrics_by_judge`` maps a judge name to :func:`compute_metrics` output; ``records_by_judge`` holds the same
    judges' records (for the plots). ``training_log`` is a list of per-step dicts (``step`` plus ``reward_mean``,
    ``exact``, ``within_1``, ``within_2``, ``parse_rate``; see :func:`editjudge.evaluate.metrics.per_step`).
    ``comparison`` is :func:`editjudge.evaluate.compare.compare_judges` output (paired differences to a baseline).
    ``learning_curve``: held-out figures at intervals during training (rows with ``step``, ``accuracy_within_2``,
    ``best_of_n_regret``, optionally ``accuracy_exact`` / ``pairwise_accuracy``), plotted beside the training reward.
    ``appendix``: Markdown lines the caller adds after the summary (e.g. the demo's side-by-side of two judges).
    """
    if not metrics_by_judge:
        raise ValueError("write_report needs the metrics of at least one judge")
    unknown = set(records_by_judge) - set(metrics_by_judge)
    if unknown:
        raise ValueError(f"records given for judges without metrics: {sorted(unknown)}")
    slugs = [slug(n) for n in metrics_by_judge]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"judge names must stay distinct as file names: {list(metrics_by_judge)}")
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)

    payload: dict[str, Any] = {"judges": {n: metrics_by_judge[n] for n in metrics_by_judge}}
    if training_log:
        payload["training_log"] = json_safe(list(training_log))  # trainer logs may hold NaN
    if comparison:
        payload["comparison"] = dict(comparison)
    if learning_curve:
        payload["learning_curve"] = json_safe(list(learning_curve))
    atomic_write_bytes(out / "metrics.json", _json_bytes(payload))

    page = [f"# {title}", ""]
    names = list(metrics_by_judge)
    page += [
        "Metric definitions: `docs/evaluate.md` in the editjudge repository. "
        "Numbers in brackets are bootstrap confidence intervals; – means undefined (see the notes).",
        "",
        "## Summary" if len(names) == 1 else "## Judges side by side",
        "",
        *_summary_table(metrics_by_judge),
        "",
    ]
    if len(names) > 1:
        plot_compare(metrics_by_judge, plots / "compare.png")
        page += ["![judges side by side](plots/compare.png)", ""]
    page += _dimension_section(metrics_by_judge)
    page += list(appendix or [])
    if comparison:
        page += _comparison_section(comparison)
    notes = [line for n in names for line in _notes(n, metrics_by_judge[n]) + [""]]
    if notes:
        page += ["### Notes", "", *notes]
    if training_log:
        plot_training(training_log, plots / "training.png")
        page += ["## Training", "", "![reward and accuracy over training steps](plots/training.png)", ""]
    if learning_curve:
        plot_learning_curve(learning_curve, training_log, plots / "learning_curve.png")
        page += ["## Learning curve on held-out edits", "",
                 "![held-out accuracy and best-of-N regret during training](plots/learning_curve.png)", "",
                 "| step | ±2 | exact | pairwise | best-of-N regret |", "|---:|---:|---:|---:|---:|",
                 *(f"| {p['step']} | {_fmt(p.get('accuracy_within_2'))} | {_fmt(p.get('accuracy_exact'))} | "
                   f"{_fmt(p.get('pairwise_accuracy'))} | {_fmt(p.get('best_of_n_regret'))} |" for p in learning_curve),
                 ""]
    if training_log:
        page += ["### Training log", "", *_training_table(training_log), ""]
    for name, s in zip(names, slugs):
        m = metrics_by_judge[name]
        page += [f"## {name}", ""]
        plot_confusion(m, name, plots / f"{s}_confusion.png")
        page += [f"![{name}: confusion matrix](plots/{s}_confusion.png)", ""]
        if name in records_by_judge:
            recs = as_records(records_by_judge[name])
            plot_pred_vs_true(recs, name, plots / f"{s}_pred_vs_true.png")
            plot_histograms(recs, name, plots / f"{s}_histograms.png")
            page += [f"![{name}: predicted vs true](plots/{s}_pred_vs_true.png)", "",
                     f"![{name}: score histograms](plots/{s}_histograms.png)", ""]
        table = _per_label_table(m)
        if table:
            page += ["### Per label", "", *table, ""]
    path = out / "report.md"
    atomic_write_bytes(path, ("\n".join(page).rstrip() + "\n").encode("utf-8"))
    return path
