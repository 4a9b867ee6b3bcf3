"""The evaluation report's figures: matplotlib's object API on the Agg canvas (no pyplot, no global backend switch).

Every figure is written atomically (:func:`editjudge.data.writer.atomic_write_bytes`) and the same inputs give the same
bytes. :mod:`editjudge.evaluate.report` lays them out on the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from editjudge.data.writer import atomic_write_bytes
from editjudge.evaluate.records import EvalRecord
from editjudge.prompts import SCORE_MAX, SCORE_MIN

LABELS = list(range(SCORE_MIN, SCORE_MAX + 1))

COMPARE_BARS = [
    ("accuracy.exact", "exact"),
    ("accuracy.within_1", "±1"),
    ("accuracy.within_2", "±2"),
    ("correlation.pred_vs_label.spearman", "Spearman"),
    ("pairwise.strict", "pairwise strict"),
    ("pairwise.with_ties", "pairwise ties"),
]


def _get(d: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(d, Mapping) or key not in d:
            return None
        d = d[key]
    return d


def _interval(m: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A bootstrap interval by its dotted name (the names contain dots, so no path lookup)."""
    return ((m.get("bootstrap") or {}).get("intervals") or {}).get(name)


def _save(fig: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ----------------------------------------------------------------------------------------------------- plots


def plot_confusion(metrics: Mapping[str, Any], title: str, path: Path) -> None:
    """Rows: true label; columns: predicted label and 'unparsed'. Colour = share of the row, text = count."""
    conf = metrics["confusion"]
    matrix = np.asarray(conf["matrix"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig = _figure(7.0, 5.6)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=0)
    ax.set_yticks(range(len(LABELS)), [str(k) for k in LABELS])
    ax.set_xlabel("judge's answer")
    ax.set_ylabel("true label")
    ax.set_title(f"{title}: confusion matrix (colour = share of row)")
    fig.colorbar(image, ax=ax, label="share of the true label's records")
    _save(fig, path)


UNPARSED_Y = SCORE_MIN - 1.2  # where unparsed answers sit on the predicted-vs-true y axis


def plot_pred_vs_true(records: Sequence[EvalRecord], title: str, path: Path) -> None:
    """The judge's answer against the true label, jittered, with per-label means; unparsed answers on their own row.

    Every judge's figure has the same y axis (the answer, 0..9 plus "unparsed"), so figures compare side by side;
    when the judge gives an expected score (Σ k·p(k)) its per-label mean is drawn as a second line.
    """
    labelled = [r for r in records if r.label is not None]
    fig = _figure(6.0, 5.6)
    ax = fig.add_subplot()
    ax.plot([SCORE_MIN, SCORE_MAX], [SCORE_MIN, SCORE_MAX], color="grey", lw=1, ls="--", label="perfect")
    if labelled:
        t = np.array([r.label for r in labelled], dtype=float)
        p = np.array([UNPARSED_Y if r.pred is None else r.pred for r in labelled], dtype=float)
        jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=(2, len(t)))
        parsed = p != UNPARSED_Y
        present = sorted(set(t[parsed].tolist()))
        if present:
            ax.plot(present, [p[parsed & (t == k)].mean() for k in present], color="crimson", marker="D", ms=5,
                    lw=1.5, alpha=0.8, label="mean answer per label")
        expected = [(r.label, r.expected_score) for r in labelled if r.expected_score is not None]
        if expected:
            et, ev = np.asarray(expected, dtype=float).T
            ks = sorted(set(et.tolist()))
            ax.plot(ks, [ev[et == k].mean() for k in ks], color="darkorange", marker="s", ms=4, lw=1.2, ls="-.",
                    label="mean expected score per label")
        ax.scatter(t + jitter[0], p + jitter[1], s=14, alpha=0.5, zorder=3, label="records (jittered)")
    else:
        ax.text(0.5, 0.5, "no record has a label", ha="center", transform=ax.transAxes)
    ax.axhline((UNPARSED_Y + SCORE_MIN) / 2, color="black", lw=0.6)
    ax.set_xlim(SCORE_MIN - 0.6, SCORE_MAX + 0.6)
    ax.set_ylim(UNPARSED_Y - 0.6, SCORE_MAX + 0.6)
    ax.set_xticks(LABELS)
    ax.set_yticks([UNPARSED_Y, *LABELS], ["unparsed", *(str(k) for k in LABELS)])
    ax.set_xlabel("true label")
    ax.set_ylabel("judge's answer")
    ax.set_title(f"{title}: predicted vs true")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_histograms(records: Sequence[EvalRecord], title: str, path: Path) -> None:
    """How often each score occurs: true labels next to the judge's answers (plus unparsed answers)."""
    labels = np.bincount([r.label for r in records if r.label is not None], minlength=len(LABELS))
    preds = np.bincount([r.pred for r in records if r.pred is not None], minlength=len(LABELS))
    unparsed = sum(r.pred is None for r in records)
    x = np.arange(len(LABELS) + 1)
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    ax.bar(x[:-1] - 0.2, labels, width=0.4, label="true label")
    ax.bar(x[:-1] + 0.2, preds, width=0.4, label="judge's answer")
    ax.bar(x[-1], unparsed, width=0.4, color="grey", label="unparsed answer")
    ax.set_xticks(x, [str(k) for k in LABELS] + ["unparsed"])
    ax.set_xlabel("score")
    ax.set_ylabel("records")
    ax.set_title(f"{title}: score histograms")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


REWARD_KEYS = ("reward_mean", "reward")  # editjudge's per_step rows / TRL's log_history
ACCURACY_KEYS = (
    ("exact", "exact"),
    ("within_1", "±1"),
    ("within_2", "±2"),
    ("parse_rate", "parse rate"),
    ("format_rate", "format rate"),  # TRL engine's metrics.jsonl: share of rewards with the format point
    ("accuracy_rate", "reward accuracy term"),  # … and its accuracy term (±2, binary or graded)
)

# GRPO's signal: the share of prompt groups whose rewards were all equal (zero advantage, no gradient), and of those,
# the groups stuck below the best reward vs solved at it; with dynamic sampling, the flat share of what was trained on
SIGNAL_KEYS = (
    ("frac_reward_zero_std", "groups with equal rewards (no signal)"),
    ("groups/flat_stuck", "… all below the best reward (stuck)"),
    ("groups/flat_solved", "… all at the best reward (solved)"),
    ("groups/flat_trained", "flat groups trained on (after dynamic sampling)"),
)


def _run_of(row: Mapping[str, Any]) -> str:
    return str(row.get("run", row.get("phase", "")))


def _reward_key(rows: Sequence[Mapping[str, Any]]) -> str | None:
    return next((k for k in REWARD_KEYS if any(row.get(k) is not None for row in rows)), None)


def plot_training(training_log: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Up to four distinct panels over training steps: the mean reward, the rates (format / accuracy / parse), GRPO's
    signal (the share of prompt groups whose rewards were all equal, :data:`SIGNAL_KEYS`) and the loss (e.g. the
    supervised warm start's); raw values faint, a moving average bold; one line per run.

    Rows are editjudge's :func:`~editjudge.evaluate.metrics.per_step` rows, the TRL engine's ``metrics.jsonl`` (its
    ``warm_start`` and ``grpo`` phases) or a trainer's log history. Rows with a ``run`` (or a training ``phase``)
    are drawn as separate lines.
    """
    from matplotlib.ticker import MaxNLocator

    runs: dict[str, list[Mapping[str, Any]]] = {}
    for row in training_log:
        if row.get("step") is not None:
            runs.setdefault(_run_of(row), []).append(row)

    def has(key: str) -> bool:
        return any(row.get(key) is not None for rows in runs.values() for row in rows)

    rate_keys = [(k, n) for k, n in ACCURACY_KEYS if has(k)]
    signal_keys = [(k, n) for k, n in SIGNAL_KEYS if has(k)]
    reward_runs = {run: _reward_key(rows) for run, rows in runs.items() if _reward_key(rows)}
    loss_runs = [run for run, rows in runs.items() if run not in reward_runs and any(r.get("loss") is not None for r in rows)]
    panels = [name for name, shown in (("reward", reward_runs), ("rates", rate_keys), ("signal", signal_keys),
                                       ("loss", loss_runs)) if shown]
    if not panels:
        panels = ["reward"]
    fig = _figure(5.0 * len(panels), 4.0)
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels)))))
    colours = iter(f"C{i}" for i in range(100))

    def draw(ax: Any, rows: Sequence[Mapping[str, Any]], key: str, label: str) -> None:
        pts = [(row["step"], float(row[key])) for row in rows if row.get(key) is not None]
        if not pts:
            return
        x, y = np.asarray(pts, dtype=float).T
        colour = next(colours)
        smooth = _smooth(y)
        if len(y) >= 10:
            ax.plot(x, y, color=colour, alpha=0.25, lw=1)
            ax.plot(x, smooth, color=colour, lw=2, label=f"{label} (moving average)")
        else:
            ax.plot(x, y, color=colour, marker="o", label=label)

    for run, rows in runs.items():
        prefix = f"{run}: " if run else ""
        if "reward" in axes and run in reward_runs:
            draw(axes["reward"], rows, reward_runs[run], f"{prefix}mean reward")
        if "rates" in axes:
            for key, name in rate_keys:
                draw(axes["rates"], rows, key, prefix + name)
        if "signal" in axes:
            for key, name in signal_keys:
                draw(axes["signal"], rows, key, prefix + name)
        if "loss" in axes and run in loss_runs:
            draw(axes["loss"], rows, "loss", f"{prefix}loss")
    titles = {"reward": ("mean reward over training steps", "mean reward"),
              "rates": ("rates over training steps", "share of responses"),
              "signal": ("GRPO signal: prompt groups with equal rewards", "share of prompt groups"),
              "loss": ("loss over training steps", "loss")}
    for name, ax in axes.items():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(titles[name][0])
        ax.set_xlabel("step")
        ax.set_ylabel(titles[name][1])
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    for name in ("rates", "signal"):
        if name in axes:
            axes[name].set_ylim(-0.02, 1.02)
    _save(fig, path)


def plot_learning_curve(curve: Sequence[Mapping[str, Any]], training_log: Sequence[Mapping[str, Any]] | None,
                        path: Path) -> None:
    """Held-out ±2 accuracy (left axis) and best-of-N regret (right panel) at intervals during GRPO, beside the
    training reward (smoothed) — what the judge learnt on edits it never trained on, against what it was paid."""
    fig = _figure(11.0, 4.0)
    left, right = fig.subplots(1, 2)
    steps = [p["step"] for p in curve]

    def col(key: str) -> list[float]:
        return [np.nan if p.get(key) is None else float(p[key]) for p in curve]

    left.plot(steps, col("accuracy_within_2"), marker="o", color="tab:blue", label="held-out accuracy ±2 (greedy)")
    if any(p.get("accuracy_exact") is not None for p in curve):
        left.plot(steps, col("accuracy_exact"), marker="s", ms=4, color="tab:cyan", label="held-out exact (greedy)")
    if any(p.get("pairwise_accuracy") is not None for p in curve):
        left.plot(steps, col("pairwise_accuracy"), marker="^", ms=4, color="tab:purple",
                  label="held-out pairwise accuracy")
    grpo = [r for r in (training_log or []) if r.get("phase", "grpo") == "grpo" and r.get("accuracy_rate") is not None]
    if grpo:
        x = [r["step"] for r in grpo]
        y = np.array([float(r["accuracy_rate"]) for r in grpo])
        left.plot(x, y, color="tab:orange", alpha=0.25, lw=1)
        left.plot(x, _smooth(y), color="tab:orange", lw=2, label="training reward: accuracy term (smoothed)")
    left.axhline(0.5, color="grey", ls=":", lw=1, label="constant answer (chance)")
    left.set_ylim(-0.02, 1.02)
    left.set_xlabel("GRPO step")
    left.set_ylabel("share")
    left.set_title("held-out accuracy during GRPO")
    left.legend(fontsize=7, loc="lower right")
    left.grid(alpha=0.3)
    right.plot(steps, col("best_of_n_regret"), marker="o", color="tab:red", label="held-out best-of-N regret")
    right.set_ylim(bottom=0)
    right.set_xlabel("GRPO step")
    right.set_ylabel("regret (oracle − pick; lower is better)")
    right.set_title("best-of-N regret during GRPO")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    _save(fig, path)


def _smooth(values: np.ndarray, window: int | None = None) -> np.ndarray:
    """A centred moving average (window ~ 1/10 of the series, odd, at least 1) that ignores NaNs."""
    n = len(values)
    window = window or max(1, (n // 10) | 1)
    if window <= 1 or n == 0:
        return np.asarray(values, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    kernel = np.ones(window)
    num = np.convolve(np.where(ok, v, 0.0), kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    return np.divide(num, den, out=np.full(n, np.nan), where=den > 0)


def plot_compare(metrics_by_judge: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Grouped bars of the headline metrics (left) and best-of-N regret (right), one colour per judge, with
    bootstrap intervals when present. A value of 0 gets a visible mark and an undefined metric says so (n/a)."""
    names = list(metrics_by_judge)
    x = np.arange(len(COMPARE_BARS))
    width = 0.8 / max(1, len(names))
    fig = _figure(max(9.0, 1.4 * len(COMPARE_BARS) + 2.5), 4.4)
    ax, bon = fig.subplots(1, 2, width_ratios=[len(COMPARE_BARS), 2.2])
    for i, name in enumerate(names):
        m = metrics_by_judge[name]
        values, low, high = [], [], []
        for key, _ in COMPARE_BARS:
            v = _get(m, key) if key.startswith("accuracy") else _get(m, key + ".value")
            values.append(np.nan if v is None else v)
            ci = _interval(m, key)
            lo, hi = (ci or {}).get("low"), (ci or {}).get("high")
            low.append(0 if v is None or lo is None else v - lo)
            high.append(0 if v is None or hi is None else hi - v)
        pos = x + (i - (len(names) - 1) / 2) * width
        bars = ax.bar(pos, values, width, yerr=[low, high], capsize=3, label=name)
        _mark_zero_and_missing(ax, pos, values, width, bars.patches[0].get_facecolor())
        regret = _get(m, "best_of_n.regret")
        ci = _interval(m, "best_of_n.regret") or {}
        err = [[0 if regret is None or ci.get("low") is None else regret - ci["low"]],
               [0 if regret is None or ci.get("high") is None else ci["high"] - regret]]
        value = np.nan if regret is None else regret
        bon.bar([i], [value], 0.7, yerr=err, capsize=3, color=f"C{i}")
        _mark_zero_and_missing(bon, [i], [value], 0.7, f"C{i}")
    ax.set_xticks(x, [t for _, t in COMPARE_BARS])
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("judges side by side (bars: 95% bootstrap intervals when computed)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    bon.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    top = np.nanmax([_get(metrics_by_judge[n], "best_of_n.regret") or 0.0 for n in names] + [0.0])
    bon.set_ylim(0, max(top * 1.35, 1e-3))
    bon.axhline(0, color="black", lw=0.8)
    bon.set_title("best-of-N regret (lower is better)")
    bon.grid(axis="y", alpha=0.3)
    _save(fig, path)


def _mark_zero_and_missing(ax: Any, positions: Sequence[float], values: Sequence[float], width: float,
                           colour: Any) -> None:
    """A bar of height 0 reads as missing: draw a thick stub and '0' there; write 'n/a' where the value is undefined."""
    for pos, value in zip(positions, values):
        if not np.isfinite(value):
            ax.text(pos, 0.02, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="dimgrey",
                    transform=ax.get_xaxis_transform())
        elif value == 0:
            ax.plot([pos - width / 2, pos + width / 2], [0, 0], color=colour, lw=4, solid_capstyle="butt", zorder=4)
            ax.text(pos, 0.02, "0", ha="center", va="bottom", fontsize=7, color="black",
                    transform=ax.get_xaxis_transform())
