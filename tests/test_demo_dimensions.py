"""`editjudge demo --task dimensions`: the two-dimension demo runs the whole path and reports each dimension.

The learning claim (each dimension from chance to >= 0.9 on three seeds) is not met yet (docs/demo.md); this checks
the path end to end on a small run, and the demo's argument checks.
"""

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


@pytest.mark.slow
def test_the_dimensions_demo_runs_the_whole_path_and_reports_each_dimension(tmp_path: Path, capsys) -> None:
    pytest.importorskip("trl")
    from editjudge.demo_dimensions import print_summary, run_dimensions_demo

    summary = run_dimensions_demo(tmp_path / "demo", sources=8, warm_start_steps=2, grpo_steps=2, eval_every=1,
                                  progress=False, settings_overrides={"per_device_batch_size": 16})
    print_summary(summary)
    printed = capsys.readouterr().out
    assert "following" in printed and "preservation" in printed and "[6/6]" in printed
    assert set(summary["stages"]) == {"untrained", "warm start", "after GRPO"}
    for figures in summary["stages"].values():
        assert {"following_within_2", "preservation_within_2", "overall_within_2"} <= set(figures)
    assert [p["step"] for p in summary["learning_curve"]] == [0, 1, 2]
    written = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert written["format"] == "dimensions:follow_preserve" and Path(written["report"]).exists()
    assert (Path(written["adapter"]) / "adapter_config.json").is_file()
