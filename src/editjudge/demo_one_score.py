"""The dimensions demo's comparison (``editjudge demo --task dimensions --one-score``): a one-score judge trained on
the overall of the same edits, beside the dimensions judge, kind by kind.

The one-score judge is the dimensions judge's own recipe (preset ``tiny_cpu_dimensions``: its per-dimension credit
does nothing on one-score rows) on the same synthetic edits prepared without ``--dimensions`` (each edit's
``score``: the mean of its two dimensions), from the same tiny model, split and seed: only the labels differ. On the
held-out edits, grouped by kind (:data:`editjudge.synthetic.RED_SQUARE_KINDS`), the table shows what each judge
answers. An unchanged edit and one painted red all over both have the overall label 4, so even the best one-score
judge answers them alike; the dimensions judge says which dimension failed. (Measured, seed 5: the one-score judge
settled on 4 for every edit, the label of half of them, with this recipe and with the pointwise demo's.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ONE_SCORE_PRESET = "tiny_cpu_dimensions"
KIND_LABELS = {True: 7, False: 1}  # a dimension's label: 7 when it holds (the square red / the rest kept), else 1


def kind_of(labels: Mapping[str, Any]) -> str | None:
    """The synthetic kind of an edit from its ``following`` / ``preservation`` labels (None when unlabelled)."""
    from editjudge.synthetic import RED_SQUARE_KINDS

    for kind, (square_red, kept) in RED_SQUARE_KINDS.items():
        if labels.get("following") == KIND_LABELS[square_red] and labels.get("preservation") == KIND_LABELS[kept]:
            return kind
    return None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


def by_kind(dims_rows: Sequence[Mapping[str, Any]], dims_records: Sequence[Any], one_rows: Sequence[Mapping[str, Any]],
            one_records: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per kind of edit: its labels, the dimensions judge's mean answer per dimension and the one-score
    judge's mean answer, over the held-out edits that both judged (joined by sample name)."""
    from editjudge.synthetic import RED_SQUARE_KINDS

    kinds: dict[str, str] = {}
    dims_of: dict[str, dict[str, Any]] = {}
    for row, record in zip(dims_rows, dims_records):
        dims = record.dimensions or {}
        kind = kind_of({name: (dims.get(name) or {}).get("label") for name in ("following", "preservation")})
        if kind is not None and row.get("name"):
            kinds[row["name"]], dims_of[row["name"]] = kind, dims
    one_of = {row.get("name"): record for row, record in zip(one_rows, one_records)}
    table = []
    for kind, (square_red, kept) in RED_SQUARE_KINDS.items():
        names = [n for n, k in kinds.items() if k == kind and n in one_of]
        labels = {"following": KIND_LABELS[square_red], "preservation": KIND_LABELS[kept]}
        table.append({
            "kind": kind, "n": len(names), "labels": labels,
            "overall_label": (labels["following"] + labels["preservation"]) // 2,
            "dimensions_judge": {d: _mean([(dims_of[n].get(d) or {}).get("pred") for n in names]) for d in labels},
            "one_score_judge": _mean([one_of[n].pred for n in names]),
        })
    return table


def markdown(table: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side table for the report."""
    lines = ["## One score vs dimensions, kind by kind (held-out edits)", "",
             "| kind of edit | n | labels following / preservation (overall) | one-score judge (mean answer) | "
             "dimensions judge following / preservation (mean answers) |", "|---|---:|---|---:|---|"]
    for row in table:
        dims = row["dimensions_judge"]
        lines.append(f"| {row['kind']} | {row['n']} | {row['labels']['following']} / {row['labels']['preservation']} "
                     f"({row['overall_label']}) | {_fmt(row['one_score_judge'])} | {_fmt(dims['following'])} / "
                     f"{_fmt(dims['preservation'])} |")
    lines += ["", "An unchanged edit and one painted red all over share the overall label 4: a judge trained on one "
              "score can only answer them alike. The dimensions judge says which dimension failed.", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def train_and_judge(out: Path, model_dir: Path, *, seed: int, template: str, steps: int | None,
                    warm_start_steps: int | None, settings_overrides: Mapping[str, Any] | None,
                    judge_rows: Callable[[Any, Any, Path, list], list], progress: bool) -> tuple[list, list, Any]:
    """Prepare the demo's edits (``out/edits``) with one score, train the one-score judge with
    :data:`ONE_SCORE_PRESET` (and the demo's step counts and overrides) into ``out/one_score/train``, judge the
    held-out rows with it (``judge_rows(model, processor, test parquet, its rows)``); return (rows, records, the
    training result)."""
    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.demo_run import TRAIN_SPLIT, preset_settings
    from editjudge.evaluate.readers import read_test_parquet
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD
    from editjudge.train import trl as engine

    median, mad = RED_SQUARE_MEDIAN_MAD
    prepared = prepare(PrepareConfig(inputs=(str(out / "edits"),), out_dir=str(out / "one_score" / "data"),
                                     train_split=TRAIN_SPLIT, score_median=median, score_mad=mad, seed=seed,
                                     template=template, processor=str(model_dir), workers=1, progress=progress))
    settings = preset_settings(model_dir, out / "one_score" / "train", ONE_SCORE_PRESET, seed=seed, max_steps=steps,
                               warm_start_steps=warm_start_steps, **dict(settings_overrides or {}))
    processor, model = engine.load_model(model_dir)
    result = engine.train(settings, prepared.train_path, model=model, processor=processor)
    rows = read_test_parquet(prepared.test_path)
    return rows, judge_rows(result.model, processor, Path(prepared.test_path), rows), result


def write_table(report_dir: Path, table: Sequence[Mapping[str, Any]]) -> Path:
    """``report_dir/one_score_vs_dimensions.{md,json}``, and the table at the end of the report's ``report.md`` when
    there is one; the markdown's path."""
    from editjudge.data.writer import atomic_write_text

    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report_dir / "one_score_vs_dimensions.json", json.dumps(list(table), indent=2) + "\n")
    path = report_dir / "one_score_vs_dimensions.md"
    atomic_write_text(path, markdown(table))
    report = report_dir / "report.md"
    if report.is_file():
        atomic_write_text(report, report.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + markdown(table))
    return path


__all__ = ["ONE_SCORE_PRESET", "by_kind", "kind_of", "markdown", "train_and_judge", "write_table"]
