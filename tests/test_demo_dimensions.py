"""`editjudge demo --task dimensions`: the two-dimension demo runs the whole path, reports each dimension and puts
a one-score judge beside it; the demo's argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.cli import main


def test_demo_task_dimensions_rejects_bad_sizes(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    assert main(["demo", "--task", "dimensions", "--sources", "1", "--out", str(tmp_path / "d")]) == 2
    assert "--sources 1: must be at least 2" in capsys.readouterr().err


def test_stage_figures_read_each_dimension_and_the_overall() -> None:
    from editjudge.demo_dimensions import stage_figures

    metrics = {"n": 8, "format": {"format_rate": 1.0}, "accuracy": {"within_2": 0.75},
               "dimensions": {"following": {"accuracy": {"within_2": 1.0, "exact": 0.5}},
                              "preservation": {"accuracy": {"within_2": 0.5, "exact": 0.25}}}}
    assert stage_figures(metrics) == {"n": 8, "format_rate": 1.0, "following_within_2": 1.0, "following_exact": 0.5,
                                      "preservation_within_2": 0.5, "preservation_exact": 0.25,
                                      "overall_within_2": 0.75}


def test_one_score_vs_dimensions_groups_the_held_out_edits_by_kind() -> None:
    from editjudge.demo_one_score import by_kind, kind_of, markdown
    from editjudge.evaluate.records import EvalRecord

    assert kind_of({"following": 1, "preservation": 7}) == "unchanged"
    assert kind_of({"following": 7, "preservation": 1}) == "all_red"
    assert kind_of({"following": None, "preservation": 7}) is None

    def dims(f_label: int, p_label: int, f_pred: int | None, p_pred: int) -> dict:
        return {"following": {"label": f_label, "pred": f_pred}, "preservation": {"label": p_label, "pred": p_pred}}

    dims_records = [EvalRecord(id="0", dimensions=dims(1, 7, 2, 6)), EvalRecord(id="1", dimensions=dims(7, 1, 8, 0)),
                    EvalRecord(id="2", dimensions=dims(7, 1, None, 2)), EvalRecord(id="3", dimensions=dims(7, 7, 7, 7))]
    dims_rows = [{"name": n} for n in ("a", "b", "c", "d")]
    # the one-score parquet holds the same samples in another order, and one the dimensions judge did not see
    one_rows = [{"name": n} for n in ("c", "a", "b", "x")]
    one_records = [EvalRecord(id=str(i), label=4, pred=p) for i, p in enumerate((5, 4, 3, 9))]
    table = {row["kind"]: row for row in by_kind(dims_rows, dims_records, one_rows, one_records)}
    assert list(table) == ["unchanged", "square_red", "all_red", "background_red"]
    assert table["unchanged"] == {"kind": "unchanged", "n": 1, "labels": {"following": 1, "preservation": 7},
                                  "overall_label": 4, "dimensions_judge": {"following": 2.0, "preservation": 6.0},
                                  "one_score_judge": 4.0}
    assert table["all_red"]["n"] == 2 and table["all_red"]["overall_label"] == 4
    assert table["all_red"]["dimensions_judge"] == {"following": 8.0, "preservation": 1.0}  # an unparsed digit skipped
    assert table["all_red"]["one_score_judge"] == 4.0  # (3 + 5) / 2
    assert table["square_red"]["n"] == 0 and table["square_red"]["one_score_judge"] is None  # "d" has no one-score
    text = markdown(list(table.values()))
    assert "| unchanged | 1 | 1 / 7 (4) | 4.00 | 2.00 / 6.00 |" in text and "| square_red | 0 |" in text


@pytest.mark.slow
def test_the_dimensions_demo_runs_the_whole_path_and_reports_each_dimension(tmp_path: Path, capsys) -> None:
    pytest.importorskip("trl")
    from editjudge.demo_dimensions import print_summary, run_dimensions_demo

    summary = run_dimensions_demo(tmp_path / "demo", sources=8, warm_start_steps=2, grpo_steps=2, eval_every=1,
                                  progress=False, settings_overrides={"per_device_batch_size": 16}, one_score=True)
    print_summary(summary)
    printed = capsys.readouterr().out
    assert "following" in printed and "preservation" in printed and "[7/7]" in printed
    assert "One score vs dimensions" in printed
    kinds = summary["one_score_vs_dimensions"]
    assert [k["kind"] for k in kinds] == ["unchanged", "square_red", "all_red", "background_red"]
    assert sum(k["n"] for k in kinds) == summary["n_heldout"]  # every held-out edit judged by both, joined
    assert (tmp_path / "demo" / "report" / "one_score_vs_dimensions.md").is_file()
    assert "One score vs dimensions" in (tmp_path / "demo" / "report" / "report.md").read_text()
    assert (tmp_path / "demo" / "one_score" / "train" / "adapter" / "adapter_config.json").is_file()
    assert set(summary["stages"]) == {"untrained", "warm start", "after GRPO"}
    for figures in summary["stages"].values():
        assert {"following_within_2", "preservation_within_2", "overall_within_2"} <= set(figures)
    assert [p["step"] for p in summary["learning_curve"]] == [0, 1, 2]
    written = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert written["format"] == "dimensions:follow_preserve" and Path(written["report"]).exists()
    assert (Path(written["adapter"]) / "adapter_config.json").is_file()


@pytest.mark.slow
def test_grpo_teaches_each_dimension(tmp_path: Path) -> None:
    """The demo as a user runs it (64 sources, the preset's 40 warm-start and 60 GRPO steps, seed 3): each dimension
    from chance after the format-only warm start to >= 0.85 within ±2 on the held-out edits (measured: 1.00 on
    both; docs/demo.md). Fails when learning stops on either dimension: a reward that stops crediting one, credit
    that mixes them up (preservation stayed at chance with one advantage per answer), a learning rate decayed before
    the second dimension is learnt (0.58 on seeds 0 and 2), answer heads the warm start cannot teach (format 0)."""
    pytest.importorskip("trl")
    from editjudge.demo_dimensions import DIMENSIONS, run_dimensions_demo

    summary = run_dimensions_demo(tmp_path / "demo", seed=3, eval_every=0, progress=False)
    warm, grpo = summary["stages"]["warm start"], summary["stages"]["after GRPO"]
    assert warm["format_rate"] >= 0.9 and grpo["format_rate"] >= 0.9
    for name in DIMENSIONS:
        assert warm[f"{name}_within_2"] <= 0.6, name  # chance: labels 1 and 7 on each dimension
        assert grpo[f"{name}_within_2"] >= max(0.85, warm[f"{name}_within_2"] + 0.3), name
