"""The TRL engine on pair rows (``prepare --pairs``): a pair's two orders in one GRPO step, and GRPO end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from editjudge.train import trl as engine


def _examples(labels: list[str]) -> engine.Examples:
    """Rows in pairs (each pair's two orders adjacent, labels mirrored), as prepare --pairs writes them."""
    prompt = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    mirror = {"A": "B", "B": "A", "tie": "tie"}
    truths = [t for label in labels for t in (label, mirror[label])]
    pairs = [f"p{k}" for k in range(len(labels)) for _ in range(2)]
    images = pa.chunked_array([pa.array([[{"bytes": bytes([i])}] * 3 for i in range(len(truths))])])
    return engine.Examples([prompt] * len(truths), images, truths, ["editjudge_pairwise"] * len(truths), pairs)


def test_pair_batches_hold_whole_pairs_every_step_and_are_seeded() -> None:
    examples = _examples(["A", "B", "tie", "A", "B", "A", "tie", "B"])
    settings = engine.TrlSettings(model="m", output_dir="o", num_generations=2, per_device_batch_size=8, max_steps=10)
    order = engine.pair_batch_order(examples, settings)
    prompts = settings.batch_size // settings.num_generations
    assert order is not None and len(order) >= settings.max_steps * prompts
    assert len(order) % len(examples) == 0
    for start in range(0, len(order), len(examples)):  # every pass holds every row once
        assert sorted(order[start:start + len(examples)]) == list(range(len(examples)))
    for start in range(0, len(order) - prompts + 1, prompts):  # every step: whole pairs, both orders
        step = order[start:start + prompts]
        assert sorted(examples.pairs[i] for i in step[::2]) == sorted(examples.pairs[i] for i in step[1::2])
        assert [examples.ground_truth[i] for i in step].count("A") == [examples.ground_truth[i] for i in step].count("B")
    assert engine.pair_batch_order(examples, settings) == order
    other = engine.TrlSettings(model="m", output_dir="o", num_generations=2, per_device_batch_size=8, max_steps=10,
                               seed=3)
    assert engine.pair_batch_order(examples, other) != order


def test_rows_that_are_not_pairs_or_odd_steps_keep_trls_shuffle() -> None:
    examples = _examples(["A", "B"])
    odd = engine.TrlSettings(model="m", output_dir="o", num_generations=2, per_device_batch_size=6, max_steps=2)
    assert engine.pair_batch_order(examples, odd) is None
    plain = engine.Examples(examples.prompts, examples.images, examples.ground_truth)
    even = engine.TrlSettings(model="m", output_dir="o", num_generations=2, per_device_batch_size=4, max_steps=2)
    assert engine.pair_batch_order(plain, even) is None


@pytest.mark.slow
def test_grpo_trains_on_pair_rows_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    import torch

    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.formats import PAIRWISE
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits
    from editjudge.tiny import ANSWER_WORDS, build_tiny_model

    tiny_model_dir = build_tiny_model(tmp_path / "tiny-pairwise", answer_words=ANSWER_WORDS)

    edits = write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=3, seed=0, task="red_square")
    median, mad = RED_SQUARE_MEDIAN_MAD
    prepared = prepare(PrepareConfig(inputs=(str(edits.out_dir),), out_dir=str(tmp_path / "data"), format="pairwise",
                                     train_split=1.0, score_median=median, score_mad=mad, template="demo",
                                     processor=str(tiny_model_dir), workers=1, progress=False))
    examples = engine.read_examples(prepared.train_path)
    assert examples.pairs is not None and len(examples) == 4 * 3 * 2
    warm = engine.build_dataset(examples, with_completion=True)
    answers = {PAIRWISE.parse(c[0]["content"]).answer for c in warm["completion"]}
    assert answers == {"A", "B", "tie"}  # the warm start's targets: the pairwise format, every choice once
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = engine.TrlSettings(
            model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), lora_rank=8, lora_alpha=16,
            num_generations=4, per_device_batch_size=8, learning_rate=1e-2, max_completion_length=12, max_steps=2,
            temperature=1.0, warm_start_steps=16, warm_start_lr=2e-2)
        result = engine.train(settings, prepared.train_path)
    finally:
        torch.set_num_threads(threads)
    grpo = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    grpo = [r for r in grpo if r["phase"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2]
    for record in grpo:  # the seed's 2.0 scale: format + the right preference
        assert math.isfinite(record["reward_mean"]) and 0 <= record["reward_mean"] <= 2
        assert record["reward_mean"] == pytest.approx(record["format_rate"] + record["accuracy_rate"], abs=1e-6)
    assert (result.adapter_dir / "adapter_config.json").is_file()
