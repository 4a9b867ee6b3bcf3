"""``editjudge bench`` through the OpenAI-compatible backend, against test_judge_openai's loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")

from editjudge.cli import main  # noqa: E402
from test_bench_suites import write_tiger  # noqa: E402
from test_judge_openai import EXPECTED, ChatServer, server  # noqa: E402,F401 - `server` is the fixture


def test_openai_backend_judges_each_distinct_edit_once(server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_TEST_KEY", "test")
    root = write_tiger(tmp_path / "suite")
    out = tmp_path / "out"
    args = ["bench", "tiger", "--root", str(root), "--model", "served-judge", "--backend", "openai",
            "--base-url", server.url, "--api-key-env", "BENCH_TEST_KEY", "--retries", "0", "--max-new-tokens", "32",
            "--bootstrap", "20", "--out", str(out)]
    assert main(args) == 0
    assert len(server.requests) == 10  # 11 candidates in 4 items, 10 distinct (source, edited, instruction)
    report = json.loads((out / "bench.json").read_text())
    score, expected = report["results"]["score"], report["results"]["expected_score"]
    # The server answers 7 to everything: every pair is a judge tie. TIGER's ranking check then passes only the
    # human tie (|Δ| = 0 <= ε); A>B fails (equal scores rank B first), as do the 3- and 4-way orders.
    assert score["n_judge_ties"] == 11 and score["numbers"]["ranking/overall"] == pytest.approx(1 / 4)
    assert score["numbers"]["pairwise/3pair"] == 0.0
    assert expected["numbers"] == score["numbers"]  # the same expected score everywhere: the same ties
    lines = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and all(x["expected_score"] == pytest.approx(EXPECTED) for x in lines)
    assert main([*args, "--resume"]) == 0
    assert len(server.requests) == 10  # all from the cache


def test_avg_at_k_compares_the_mean_of_the_samples(server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_TEST_KEY", "test")
    root = write_tiger(tmp_path / "suite")
    out = tmp_path / "out"
    assert main(["bench", "tiger", "--root", str(root), "--model", "served-judge", "--backend", "openai",
                 "--base-url", server.url, "--api-key-env", "BENCH_TEST_KEY", "--retries", "0", "--samples", "3",
                 "--temperature", "0.7", "--bootstrap", "0", "--out", str(out)]) == 0
    assert {r["n"] for r in server.requests} == {3}
    lines = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert {(x["score"], x["mean_score"]) for x in lines} == {(6, 5.5)}  # samples 7, 4 and one unparsable
    settings = json.loads((out / "bench_settings.json").read_text())
    assert settings["judge"]["flags"]["samples"] == 3  # the judge's fingerprint (resume never mixes two runs)
