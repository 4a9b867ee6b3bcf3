"""The fault suite, resume and Ray: a resumed run never mixes two runs, an unreachable cluster is a named error in
bounded time, a SIGKILLed ``score --ray`` driver leaves no Ray process behind, and ``--ray``'s tolerance is the one
the docs state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from editjudge.cli import build_parser, main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
            **extra}


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from editjudge.synthetic import write_synthetic_edits

    folder = tmp_path_factory.mktemp("edits")
    write_synthetic_edits(folder, n_sources=4, candidates_per_source=3, size=48)
    return folder


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_model(folder: Path, weights: bytes = b"w" * 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


# ------------------------------------------------------------------------------------------- resume fingerprints


def _partial_for(argv: list[str], out: Path) -> None:
    """``OUT.partial`` as a run with ``argv`` would have started it (header + nothing scored yet)."""
    from editjudge.judge import ray_score
    from editjudge.judge.cli_score import _label_settings
    from editjudge.judge.score_items import read_items

    args = build_parser("score").parse_args(argv)
    median, mad = _label_settings(args)
    digest = ray_score.run_fingerprint(args, read_items(args.manifest), median, mad)
    ray_score.partial_path(out).write_text(json.dumps({"format": ray_score.FORMAT, "fingerprint": digest}) + "\n")


@pytest.mark.parametrize("change, named", [
    (["--score-median", "0.5"], "labels.median"),
    (["--score-mad", "0.2"], "labels.mad"),
    (["--adapter", "ADAPTER2"], "adapter"),
    (["--max-new-tokens", "64"], "max_new_tokens"),
    (["--template", "zh"], "template"),
    (["--samples", "3"], "samples"),
    (["--seed", "7"], "seed"),
    (["--max-prompt-length", "2048"], "image_sizing.max_prompt_length"),
    (["--batch-size", "4"], "batch_size"),
    (["--backend", "vllm"], "backend"),
    (["--dtype", "bfloat16"], "dtype"),
    (["--manifest", "OTHER"], "items"),
])
def test_score_ray_resume_refuses_another_run_naming_what_differs(edits: Path, tmp_path: Path, change: list[str],
                                                                  named: str, capsys) -> None:
    model = _fake_model(tmp_path / "model")
    adapters = [_fake_model(tmp_path / "a1", b"lora-1"), _fake_model(tmp_path / "a2", b"lora-2")]
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"source": "x.png", "edited": "y.png", "instruction": "z", "score": 0.5}) + "\n")
    out = tmp_path / "preds.jsonl"
    base = ["score", "--model", str(model), "--adapter", str(adapters[0]), "--manifest", str(edits), "--out", str(out),
            "--ray", "--resume"]
    _partial_for(base, out)
    change = [str(adapters[1]) if c == "ADAPTER2" else str(other) if c == "OTHER" else c for c in change]
    before = ray_score_partial(out)
    assert main([*base, *change]) == 2
    err = capsys.readouterr().err
    assert "would mix two runs" in err and named in err and "Traceback" not in err, err
    assert ray_score_partial(out) == before  # nothing touched


def ray_score_partial(out: Path) -> bytes:
    from editjudge.judge.ray_score import partial_path

    return partial_path(out).read_bytes()


def test_the_same_run_resumes_and_an_adapter_retrained_in_place_does_not(edits: Path, tmp_path: Path) -> None:
    from editjudge.judge import ray_score

    model, adapter = _fake_model(tmp_path / "model"), _fake_model(tmp_path / "adapter", b"lora-1")
    out = tmp_path / "preds.jsonl"
    argv = ["score", "--model", str(model), "--adapter", str(adapter), "--manifest", str(edits), "--out", str(out),
            "--ray", "--resume"]
    _partial_for(argv, out)
    with open(ray_score.partial_path(out), "a") as handle:
        handle.write(json.dumps({"i": 0, "record": {"id": "kept"}}) + "\n")
    args = build_parser("score").parse_args(argv)
    from editjudge.judge.score_items import read_items

    expected = ray_score.run_fingerprint(args, read_items(args.manifest), 0.9, 0.1)
    assert ray_score._read_partial(ray_score.partial_path(out), expected) == {0: {"id": "kept"}}
    (adapter / "model.safetensors").write_bytes(b"lora-9")  # retrained into the same folder, same size
    changed = ray_score.run_fingerprint(args, read_items(args.manifest), 0.9, 0.1)
    with pytest.raises(ValueError, match="adapter_files"):
        ray_score._read_partial(ray_score.partial_path(out), changed)
    ray_score.partial_path(out).write_text('{"format": "editjudge-score-partial/1", "fingerprint": "abc"}\n')
    with pytest.raises(ValueError, match="older one"):
        ray_score._read_partial(ray_score.partial_path(out), expected)


def test_bench_resume_refuses_another_judge_naming_what_differs(tmp_path: Path, capsys) -> None:
    from editjudge.judge.run_fingerprint import judge_fingerprint

    from PIL import Image

    model = _fake_model(tmp_path / "model")
    for name in ("s.png", "a.png", "b.png"):
        Image.new("RGB", (8, 8), "red").save(tmp_path / name)
    (tmp_path / "valid_set2_full.json").write_text(json.dumps([{"prompt": "p", "path_src": "s.png", "path1": "a.png",
                                                                "path2": "b.png", "model1_dim1_score": 1,
                                                                "model2_dim1_score": 0}]))
    out = tmp_path / "b"
    out.mkdir()
    argv = ["bench", "genai", "--root", str(tmp_path), "--model", str(model), "--out", str(out), "--resume"]
    args = build_parser("bench").parse_args(argv)
    (out / "bench_settings.json").write_text(json.dumps({"suite": "genai", "judge": judge_fingerprint(args)}))
    (out / "scores.jsonl").write_text("")
    assert main([*argv, "--temperature", "0.7"]) == 2
    err = capsys.readouterr().err
    assert "would mix two judges" in err and "temperature" in err


# ------------------------------------------------------------------------------------------------------- Ray


@pytest.mark.parametrize("address, named", [
    ("127.0.0.1:{port}", "nothing listens there"),
    ("ray://127.0.0.1:{port}", "nothing listens there"),
    ("no-such-host.invalid:6379", "cannot resolve"),
    ("just-a-name", "expected host:port"),
])
def test_score_ray_against_an_unreachable_cluster_stops_at_once_naming_why(edits: Path, tmp_path: Path, address: str,
                                                                          named: str, capsys) -> None:
    out = tmp_path / "p.jsonl"
    started = time.monotonic()
    code = main(["score", "--model", str(_fake_model(tmp_path / "m")), "--manifest", str(edits), "--out", str(out),
                 "--ray", "--ray-address", address.format(port=_closed_port()), "--ray-connect-timeout", "5"])
    assert code == 1 and time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert named in err and "--ray-address" in err and "Traceback" not in err
    assert not out.exists() and not Path(str(out) + ".partial").exists()  # nothing to resume, nothing half-written


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_sigkilled_score_ray_driver_leaves_no_ray_process_behind(edits: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("openai")
    from _ray_session import kill_session, session_processes
    from _slow_chat import slow_chat_server

    ray_tmp = Path(f"/tmp/ejfk-{os.getpid()}-{_closed_port()}")  # short: AF_UNIX paths stay < 108 bytes
    out = tmp_path / "p.jsonl"
    partial = Path(str(out) + ".partial")
    with slow_chat_server(30.0) as chat:  # the judge answers slowly: the pool is busy when the driver dies
        driver = subprocess.Popen(
            [sys.executable, "-m", "editjudge.cli", "score", "--model", "judge", "--backend", "openai", "--base-url",
             chat, "--no-logprobs", "--retries", "0", "--manifest", str(edits), "--out", str(out), "--ray",
             "--actors", "1", "--cpus-per-actor", "0.5", "--batch-size", "2"],
            env=_env(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled"), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and driver.poll() is None:
                workers = session_processes(ray_tmp)
                if partial.exists() and any(_is_actor(pid) for pid in workers):
                    break
                time.sleep(0.2)
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert len(session_processes(ray_tmp)) >= 3  # gcs, raylet, the judge actor, …
            driver.send_signal(signal.SIGKILL)  # the driver alone, as the OOM killer or `kill -9` would
            driver.wait(timeout=30)
            deadline = time.monotonic() + 30
            while session_processes(ray_tmp) and time.monotonic() < deadline:
                time.sleep(0.25)
            left = session_processes(ray_tmp)
            assert not left, f"{len(left)} Ray process(es) left behind after the driver was SIGKILLed"
        finally:
            if driver.poll() is None:
                driver.kill()
            kill_session(ray_tmp)
            import shutil

            shutil.rmtree(ray_tmp, ignore_errors=True)


def _is_actor(pid: int) -> bool:
    import psutil

    try:
        return "MapWorker" in " ".join(psutil.Process(pid).cmdline()) or "ChunkScorer" in psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# --------------------------------------------------------------------------------------- --ray's tolerance


def test_records_differ_across_cpu_thread_counts_only_in_expected_scores_below_1e_6(tiny_model_dir: Path,
                                                                                      edits: Path) -> None:
    """What the docs state for ``score --ray``: its actors run with ``--cpus-per-actor`` CPU threads; the records
    equal single-process ``score``'s byte for byte with the same thread count (tests/test_serve.py), and otherwise
    differ only by float rounding in ``expected_score`` (below 1e-6). Checked here on the mechanism itself: the
    same judge, the same batches, 1 and 2 threads."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parent))
    from _judge_models import build_answering_model

    from editjudge.judge.cli_common import judge_from_args
    from editjudge.judge.score_items import edit_of, judge_row, read_items, row_prediction

    model = build_answering_model(tiny_model_dir, tiny_model_dir.parent.parent / "judge-answering-model")
    args = build_parser("score").parse_args(["score", "--model", str(model), "--max-new-tokens", "12", "--device",
                                             "cpu", "--batch-size", "2"])
    judge = judge_from_args(args)
    rows = [judge_row(i, item, 0.9, 0.1) for i, item in enumerate(read_items(edits))]
    before = torch.get_num_threads()
    records = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            records[threads] = [row_prediction(r, res) for r, res in zip(rows, judge.score_many([edit_of(r) for r in rows]))]
    finally:
        torch.set_num_threads(before)
    assert any(r["expected_score"] is not None for r in records[1])
    for a, b in zip(records[1], records[2]):
        assert {k: v for k, v in a.items() if k != "expected_score"} == {k: v for k, v in b.items() if k != "expected_score"}
        if a["expected_score"] is not None:
            assert abs(a["expected_score"] - b["expected_score"]) < 1e-6
