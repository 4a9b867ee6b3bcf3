"""scripts/gpu_check.sh: the CPU smoke run of the whole GPU check, the wheel list and size logic (offline)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
MIB = 2**20


def _lib():
    spec = importlib.util.spec_from_file_location("gpu_check_lib", ROOT / "scripts" / "gpu_check_lib.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lib = _lib()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"), TMPDIR=str(tmp_path),
               PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _lines(tmp_path: Path) -> dict[str, dict]:
    lines = (tmp_path / "out" / "gpu_check.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return {r["check"]: r for r in records}


@pytest.mark.slow
def test_cpu_smoke_runs_every_benchmark_and_writes_one_line_each(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "run", "--cpu-smoke"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=1500)  # the script's own budget (1200 s) ends it first; hangs only
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = _lines(tmp_path)
    assert list(records) == ["env", "grpo_step", "judge_throughput", "serve"]
    assert all(r["mode"] == "cpu-smoke" for r in records.values())
    assert records["env"]["packages"]["torch"]["version"]

    grpo = records["grpo_step"]
    assert grpo["status"] == "ok", grpo.get("log_tail")
    results = grpo["result"]["results"]
    assert grpo["result"]["complete"] and grpo["result"]["lora_rank"] == 128 and grpo["result"]["lora_alpha"] == 32
    # off then on, on the same model: what the trained model really had, not just what was asked for
    assert [r["gradient_checkpointing"] for r in results] == [False, True]
    assert all(r["steps_per_s"] > 0 and r["samples_per_s"] == pytest.approx(4 * r["steps_per_s"]) for r in results)

    judge = records["judge_throughput"]
    assert judge["status"] == "ok", judge.get("log_tail")
    assert judge["result"]["modes"] == ["batch_1", "batch_2"]
    assert all(judge["result"][m]["pairs_per_s"] > 0 and judge["result"][m]["errors"] == 0 for m in ("batch_1", "batch_2"))

    serve = records["serve"]  # benchmarks/bench_serve.py comes from another branch: absent, or it runs
    assert serve["status"] in ("ok", "not present"), serve.get("log_tail")
    assert "--no-ray" in serve["command"] and "no Ray" in serve["note"]
    assert (tmp_path / "out" / "gpu_check.log").stat().st_size > 0


def _fake_wheel(folder: Path, name: str = "gpucheckprobe", version: str = "0.0.1") -> Path:
    """A minimal valid pure-Python wheel (pip installs it into the private target like the carried ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: numpy>=1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in files) + f"{info}/RECORD,,\n")
    return path


def test_gpu_run_installs_carried_wheels_and_writes_a_line_per_check_when_out_of_time(tmp_path):
    """The device path: install into the private target, env line naming it, every check gets a line (budget 0)."""
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels)
    site = tmp_path / "site"
    done = subprocess.run(["bash", str(SCRIPT), "run"], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, GPU_CHECK_WHEELS=str(wheels), GPU_CHECK_SITE=str(site),
                                   GPU_CHECK_BUDGET_S="0"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (site / "gpucheckprobe" / "__init__.py").is_file()
    records = _lines(tmp_path)
    assert list(records) == ["env", "grpo_step", "judge_throughput", "serve"]
    assert records["env"]["site"] == str(site) and records["env"]["carried"] == ["gpucheckprobe"]
    assert records["env"]["unmet_requirements"] == []  # numpy>=1 is met
    assert records["grpo_step"]["status"] == "skipped" and records["judge_throughput"]["status"] == "skipped"
    assert records["serve"]["status"] in ("skipped", "not present")
    assert "--image-size 1024" in records["grpo_step"]["command"]
    assert "--batch-sizes 1 8 32" in records["judge_throughput"]["command"]


def test_gpu_run_without_wheels_says_to_prepare(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "run"], capture_output=True, text=True, timeout=60,
                          env=_env(tmp_path, GPU_CHECK_WHEELS=str(tmp_path / "none")))
    assert done.returncode == 2
    assert "gpu_check.sh prepare" in done.stdout + done.stderr


@pytest.mark.parametrize("argv", [["bogus"], ["run", "--gpu"], ["prepare", "--now"], []])
def test_usage_mistakes_exit_2(tmp_path, argv):
    done = subprocess.run(["bash", str(SCRIPT), *argv], capture_output=True, text=True, timeout=30, env=_env(tmp_path))
    assert done.returncode == 2


def test_record_keeps_a_partial_result_and_the_log_tail_of_a_failed_benchmark(tmp_path):
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"complete": False, "results": [{"samples_per_s": 1.5}]}))
    log = tmp_path / "r.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)) + "\r progress\nTraceback: boom\n")
    out = tmp_path / "lines.jsonl"
    for status in ("timeout", "ok"):
        assert lib.main(["record", "--out", str(out), "--check", "grpo_step", "--status", status, "--rc", "124",
                         "--seconds", "240", "--cap", "240", "--result", str(result), "--log", str(log)]) == 0
    timeout, ok = [json.loads(line) for line in out.read_text().splitlines()]
    assert timeout["result"]["results"] == [{"samples_per_s": 1.5}] and timeout["status"] == "timeout"
    assert timeout["log_tail"].endswith("Traceback: boom") and "line 0\n" not in timeout["log_tail"]
    assert "log_tail" not in ok
    assert lib.main(["record", "--out", str(out), "--check", "x", "--status", "failed", "--result",
                     str(tmp_path / "missing.json")]) == 0
    assert json.loads(out.read_text().splitlines()[-1])["result"] is None


# ------------------------------------------------------------------------------------------------ wheels (offline)
def test_pins_are_exact_and_inside_the_projects_own_ranges():
    pytest.importorskip("packaging")
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    pins = dict(pin.split("==") for pin in lib.read_pins())
    assert {"trl", "transformers", "peft", "datasets", "qwen-vl-utils"} <= set(pins)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in ("trl", "judge") for r in project["optional-dependencies"][extra]]
    checked = 0
    for line in declared:
        requirement = Requirement(line)
        if requirement.name in pins:
            assert requirement.specifier.contains(pins[requirement.name]), f"{requirement} vs {pins[requirement.name]}"
            checked += 1
    assert checked >= 5


def test_read_pins_refuses_loose_or_repeated_pins(tmp_path):
    loose = tmp_path / "loose.txt"
    loose.write_text("trl>=1.16  # not exact\n")
    with pytest.raises(ValueError, match="name==version"):
        lib.read_pins(loose)
    twice = tmp_path / "twice.txt"
    twice.write_text("Foo_Bar==1.0\nfoo-bar==1.1\n")
    with pytest.raises(ValueError, match="more than once"):
        lib.read_pins(twice)


def _touch(folder: Path, name: str, size: int = 1000) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "wb") as handle:
        handle.truncate(size)  # sparse: no disk used


def test_check_wheels_finds_two_versions_missing_pins_and_the_carry_limit(tmp_path):
    folder = tmp_path / "w"
    _touch(folder, "trl-1.16.0-py3-none-any.whl")
    _touch(folder, "Foo_Bar-1.0-py3-none-any.whl")
    problems, summary = lib.check_wheels(folder, tree_bytes=10, pins=["trl==1.16.0"])
    assert problems == [] and summary["total_bytes"] == 2010
    _touch(folder, "foo.bar-1.1-py3-none-any.whl")
    problems, _ = lib.check_wheels(folder, pins=["trl==1.17.0", "peft==0.21.2"])
    assert any("foo-bar: 2 versions" in p for p in problems)
    assert any(p.startswith("trl==1.17.0") and "holds 1.16.0" in p for p in problems)
    assert any(p.startswith("peft==0.21.2: missing") for p in problems)
    _touch(folder, "big-1.0-py3-none-any.whl", 60 * MIB)
    problems, _ = lib.check_wheels(folder, tree_bytes=5 * MIB)
    assert any("over the device's 64 MiB carry limit" in p for p in problems)
    problems, _ = lib.check_wheels(tmp_path / "empty")
    assert problems and "prepare" in problems[0]


def test_prepare_dry_run_checks_the_folder_and_prints_the_device_call(tmp_path):
    folder = tmp_path / "w"
    _touch(folder, "editjudge-0.1.0-py3-none-any.whl")
    for pin in lib.read_pins():
        name, version = pin.split("==")
        _touch(folder, f"{name.replace('-', '_')}-{version}-py3-none-any.whl")
    done = subprocess.run(["bash", str(SCRIPT), "prepare", "--dry-run"], capture_output=True, text=True, timeout=60,
                          env=_env(tmp_path, GPU_CHECK_WHEELS=str(folder)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "command:   bash scripts/gpu_check.sh run" in done.stdout and f'carry:     ["{folder}"]' in done.stdout
    assert "of the 64 MiB carry limit" in done.stdout
    _touch(folder, "huge-1.0-py3-none-any.whl", 70 * MIB)
    done = subprocess.run(["bash", str(SCRIPT), "prepare", "--dry-run"], capture_output=True, text=True, timeout=60,
                          env=_env(tmp_path, GPU_CHECK_WHEELS=str(folder)))
    assert done.returncode == 1 and "carry limit" in done.stderr
    assert "command:" not in done.stdout
