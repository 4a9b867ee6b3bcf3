"""`editjudge demo` end to end at reduced size: synthetic edits -> prepare -> tiny model -> GRPO -> report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")


@pytest.mark.slow
def test_demo_runs_the_whole_path(tmp_path: Path, capsys) -> None:
    from editjudge.cli import main

    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--sources", "4", "--candidates", "4", "--warm-start-steps", "12",
                 "--grpo-steps", "2", "--prompts-per-step", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "[6/6]" in printed and str(out / "report" / "report.md") in printed

    summary = json.loads((out / "summary.json").read_text())
    # Every stage left its output where the summary says.
    assert (out / "edits").is_dir() and (out / "data" / "train.parquet").is_file()
    assert (out / "tiny-qwen2_5-vl" / "config.json").is_file()
    assert (Path(summary["adapter"]) / "adapter_model.safetensors").is_file()
    report = Path(summary["report"]).read_text()
    for judge in ("untrained", "warm start", "after GRPO"):
        assert judge in report and judge in summary["test"]
    assert (out / "report" / "plots" / "training.png").is_file()

    # GRPO rewards were logged per step.
    grpo = [json.loads(line) for line in Path(summary["metrics_jsonl"]).read_text().splitlines()]
    grpo = [r for r in grpo if r["phase"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2]
    assert all(math.isfinite(r["reward_mean"]) and 0 <= r["format_rate"] <= 1 for r in grpo)

    # The random model never answers in format; the warm start teaches it (judged greedily on held-out edits).
    assert summary["test"]["untrained"]["format_rate"] == 0
    assert summary["test"]["warm start"]["format_rate"] >= 0.75


def test_demo_rejects_bad_sizes(tmp_path: Path, capsys) -> None:
    from editjudge.cli import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--grpo-steps", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().out
