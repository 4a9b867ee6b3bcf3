"""Every path an output records resolves the same from any working folder (docs/prepare.md, "Paths in outputs").

Outputs record local paths absolute (``editjudge.model_path.recorded_path``); a relative one (hand-written, or from
an older version) is read against the folder of the file that records it, and one that does not resolve is refused
before any model loads, naming the fix. Each check runs from a working folder other than the one that wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from editjudge.cli import main
from editjudge.model_path import absolute_adapter_base, absolute_path, recorded_path, resolve_recorded
from editjudge.synthetic import write_synthetic_edits


def test_recorded_path_is_absolute_for_local_paths_and_keeps_hub_ids(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    assert recorded_path("models/m") == str(tmp_path / "models" / "m")
    assert recorded_path("runs/not-yet/adapter") == str(tmp_path / "runs" / "not-yet" / "adapter")  # outputs too
    assert recorded_path("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"  # a hub id stays one
    assert absolute_path("runs/trl") == str(tmp_path / "runs" / "trl")  # an output folder is never a hub id
    assert resolve_recorded("/abs/x", tmp_path / "data" / "r.json") == Path("/abs/x")
    assert resolve_recorded("../m", tmp_path / "data" / "r.json") == tmp_path / "m"  # the file's folder, not the cwd


def test_prepare_records_absolute_paths_and_score_reads_them_from_another_folder(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """prepare run with relative paths in one folder; score --prepare-report run from another folder."""
    writer, user = tmp_path / "writer", tmp_path / "elsewhere" / "user"
    writer.mkdir()
    user.mkdir(parents=True)
    write_synthetic_edits(writer / "edits", n_sources=3, candidates_per_source=2, size=48, seed=1, task="red_square")
    monkeypatch.chdir(writer)
    processor = os.path.relpath(tiny_model_dir, writer)
    assert main(["prepare", "edits", "-o", "data", "--processor", processor, "--template", "demo",
                 "--train-split", "0.5", "--workers", "1"]) == 0
    report = json.loads((writer / "data" / "prepare_report.json").read_text())
    settings = report["settings"]
    assert settings["processor"] == str(tiny_model_dir)
    assert settings["inputs"] == [str(writer / "edits")] and settings["out_dir"] == str(writer / "data")
    assert all(Path(p).is_absolute() and Path(p).exists() for p in report["outputs"].values())
    extra = pq.read_table(writer / "data" / "test.parquet").column("extra_info").to_pylist()
    assert extra and all(Path(e["source_path"]).is_absolute() and Path(e["edited_path"]).is_file() for e in extra)

    monkeypatch.chdir(user)  # the processor was recorded relative to `writer` before: every row failed from here
    capsys.readouterr()
    rel = os.path.relpath(writer, user)
    assert main(["score", "--model", os.path.relpath(tiny_model_dir, user), "--manifest", f"{rel}/data/test.parquet",
                 "--prepare-report", f"{rel}/data/prepare_report.json", "--out", "preds.jsonl",
                 "--max-new-tokens", "4", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in (user / "preds.jsonl").read_text().splitlines()]
    assert lines and all(not (r.get("error") or "").startswith("input_error") for r in lines)


def test_a_recorded_processor_that_does_not_resolve_is_refused_before_any_model_loads(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    report = data / "prepare_report.json"
    report.write_text(json.dumps({"settings": {"processor": "editjudge_demo/tiny-qwen2_5-vl", "template": "demo"}}))
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=1, candidates_per_source=2, size=48).out_dir
    not_a_model = tmp_path / "empty-folder"  # loading it would fail differently: the refusal must come first
    not_a_model.mkdir()
    monkeypatch.chdir(tmp_path)
    for verb in (["score", "--manifest", str(edits), "--out", str(tmp_path / "p.jsonl")],
                 ["best-of-n", "--folder", str(edits)]):
        assert main([*verb, "--model", str(not_a_model), "--prepare-report", str(report)]) == 2
        err = capsys.readouterr().err
        assert "records the processor 'editjudge_demo/tiny-qwen2_5-vl'" in err and "--processor" in err, err
    assert not (tmp_path / "p.jsonl").exists()

    # relative to the report it resolves (a hand-written report, or a folder moved with its data)
    report.write_text(json.dumps({"settings": {"processor": os.path.relpath(tiny_model_dir, data)}}))
    from editjudge.judge.request import ImageSizing

    assert ImageSizing.from_prepare_report(report).processor == str(tiny_model_dir)


def test_adapters_record_an_absolute_base_model(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """The TRL engine's and the SFT stage's save (one function), loading the base by a relative path."""
    pytest.importorskip("peft")
    from peft import get_peft_model

    from editjudge.train.trl import TrlSettings, load_model, lora_config, save_adapter

    monkeypatch.chdir(tiny_model_dir.parent)
    processor, model = load_model(tiny_model_dir.name)
    settings = TrlSettings(model=tiny_model_dir.name, output_dir="out", lora_rank=4)
    adapter = save_adapter(get_peft_model(model, lora_config(settings)), processor, tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)

    config["base_model_name_or_path"] = tiny_model_dir.name  # as an older version wrote it
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    absolute_adapter_base(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
