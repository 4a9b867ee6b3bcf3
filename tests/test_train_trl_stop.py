"""SIGTERM to a real `editjudge train --engine trl` process: checkpoint + adapter, exit 143, `--resume` continues.

The signal is sent the way job runners send it (`timeout`, SLURM, Kubernetes), to a real subprocess. Deadlines only
catch hangs (a machine twice as slow passes); the kill waits for what the run has written, never for a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_train_trl import _row, write_parquet

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
HANG = 600  # seconds: only a hang gets here


def _command(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "editjudge.cli", "train", "--engine", "trl", "--model", str(model),
            "--train-files", str(data), "--output-dir", str(out), "--max-completion-length", "8", *extra, "--",
            "actor_rollout_ref.model.lora_rank=4", "actor_rollout_ref.model.lora_alpha=8",
            "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.optim.lr=1e-2", "trainer.logger=[console]",
            "trainer.save_freq=0"]  # no interval checkpoints: the one found is SIGTERM's


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _records(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):  # not written yet, or being replaced
        return []


def _terminate_after(command: list[str], out: Path, phase: str, records: int) -> subprocess.CompletedProcess:
    """Start ``command``; SIGTERM it once ``records`` records of ``phase`` are in metrics.jsonl; wait for it."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + HANG
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if sum(r["phase"] == phase for r in _records(out)) >= records:
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        output, _ = process.communicate(timeout=HANG)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def test_sigterm_saves_a_checkpoint_and_resume_continues_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])
    out = tmp_path / "run"
    steps = "30"
    done = _terminate_after(_command(tiny_model_dir, data, out, "--max-steps", steps), out, "grpo", 2)
    assert done.returncode == 143, done.stdout[-3000:]
    assert "SIGTERM: finishing the current step" in done.stdout and "--resume" in done.stdout
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1, checkpoints  # written by the trainer on SIGTERM, not by an interval
    stopped = int(checkpoints[0].name.split("-")[1])
    assert 2 <= stopped < int(steps), done.stdout[-2000:]  # the step in progress finished; the run did not
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert (checkpoints[0] / name).is_file(), name  # a transformers checkpoint that resumes, not weights only
    assert json.loads((checkpoints[0] / "trainer_state.json").read_text())["global_step"] == stopped
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert [r["step"] for r in _records(out) if r["phase"] == "grpo"] == list(range(1, stopped + 1))

    resumed = subprocess.run(_command(tiny_model_dir, data, out, "--max-steps", steps, "--resume"), env=_env(),
                             capture_output=True, text=True, timeout=HANG)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    grpo = [r for r in _records(out) if r["phase"] == "grpo"]
    assert [r["step"] for r in grpo] == list(range(1, int(steps) + 1))  # continued, nothing repeated or lost

    # the resumed run is the run that was never stopped: same steps, same figures
    whole = tmp_path / "whole"
    straight = subprocess.run(_command(tiny_model_dir, data, whole, "--max-steps", steps), env=_env(),
                              capture_output=True, text=True, timeout=HANG)
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    assert [r for r in _records(whole) if r["phase"] == "grpo"] == grpo


def test_sigterm_in_the_warm_start_keeps_its_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])
    out = tmp_path / "run"
    done = _terminate_after(_command(tiny_model_dir, data, out, "--max-steps", "5", "--warm-start-steps", "200",
                                     "--warm-start-lr", "1e-2"), out, "warm_start", 1)
    assert done.returncode == 143, done.stdout[-3000:]
    assert "terminated (SIGTERM) after the warm start" in done.stdout
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "checkpoints").exists()
    assert len([r for r in _records(out) if r["phase"] == "warm_start"]) < 200
