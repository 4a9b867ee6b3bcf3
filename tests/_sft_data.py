"""An SFT parquet made the way a user makes one: synthetic edits -> prepare (tiny processor) -> distill --traces."""

from __future__ import annotations

import json
from pathlib import Path

REASONING = "the square looks red"


_MADE: dict[Path, dict] = {}


def make_sft_data(root: Path, model_dir: Path, n_sources: int = 2) -> dict:
    """Made once per model folder and session (the files are only read by the tests that share them)."""
    if model_dir not in _MADE:
        _MADE[model_dir] = _make(root, model_dir, n_sources)
    return _MADE[model_dir]


def _make(root: Path, model_dir: Path, n_sources: int) -> dict:
    import pyarrow.parquet as pq

    from editjudge.cli import main
    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.synthetic import write_synthetic_edits

    data = write_synthetic_edits(root / "data", n_sources=n_sources, candidates_per_source=3, size=128, seed=4, faults=False)
    result = prepare(PrepareConfig(inputs=(str(data.out_dir),), out_dir=str(root / "prep"), processor=str(model_dir),
                                   max_prompt_length=400, train_split=1.0, workers=1, progress=False))
    rows = pq.read_table(result.train_path).to_pylist()
    traces = root / "traces.jsonl"
    traces.write_text("".join(json.dumps({"id": r["extra_info"]["id"], "reasoning": REASONING}) + "\n" for r in rows))
    assert main(["distill", "--data", str(result.train_path), "--traces", str(traces), "--out", str(root / "d")]) == 0
    return {"sft": root / "d" / "sft.parquet", "grpo": Path(result.train_path), "rows": len(rows)}
