"""The report (metrics.json + report.md + plots) and the `editjudge eval` verb, on real tiny-model output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from editjudge.cli import main
from editjudge.evaluate.metrics import compute_metrics
from editjudge.evaluate.records import EvalRecord, write_records
from editjudge.evaluate.report import write_report

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_judges(tiny_model_dir) -> dict[str, list[EvalRecord]]:
    """Two judges from the tiny Qwen2.5-VL's real outputs for 12 edits (two images per prompt).

    ``free``: sampled free text, parsed with the shared parser (a random model rarely answers well-formed).
    ``constrained``: the answer digit is decoded from the model's logits after a forced ``<think></think><answer>``
    prefix (argmax over the ten digit tokens), with the expected score Σ k·p(k) over those digits.
    """
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge import prompts
    from editjudge.answer import parse_response

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    colors = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "gray", "cyan", "pink", "brown"]
    texts, images = [], []
    for i, color in enumerate(colors):
        messages = prompts.to_content_parts(prompts.build_messages(f"make the circle {color}"))
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        images += [Image.new("RGB", (56, 56), "red"), Image.new("RGB", (56 + 28 * (i % 3), 56), color)]
    truth = [dict(group=f"source-{i // 4}", label=(i * 7) % 10, gt_score=((i * 7) % 10) / 9) for i in range(12)]

    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=True, temperature=1.0, top_k=0)
    responses = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    free = []
    for i, text in enumerate(responses):
        parsed = parse_response(text)
        free.append(EvalRecord(id=str(i), pred=parsed.score, raw=text, error=parsed.error, **truth[i]))

    prefix = prompts.THINK_OPEN + prompts.THINK_CLOSE + prompts.ANSWER_OPEN
    forced = processor(text=[t + prefix for t in texts], images=images, return_tensors="pt", padding=True)
    digit_ids = [processor.tokenizer.convert_tokens_to_ids(str(k)) for k in range(10)]
    with torch.no_grad():
        logits = model(**forced).logits[:, -1, digit_ids]
    probs = torch.softmax(logits.double(), dim=-1)
    constrained = []
    for i in range(12):
        digit = int(probs[i].argmax())
        raw = prefix + str(digit) + prompts.ANSWER_CLOSE
        parsed = parse_response(raw)
        constrained.append(EvalRecord(id=str(i), pred=parsed.score, raw=raw, error=parsed.error,
                                      expected_score=float((probs[i] * torch.arange(10)).sum()), **truth[i]))
    return {"free": free, "constrained": constrained}


def _images_in(page: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)


@pytest.mark.slow
def test_report_on_tiny_model_output(tmp_path, tiny_judges) -> None:
    metrics = {name: compute_metrics(recs, bootstrap=50) for name, recs in tiny_judges.items()}
    page = write_report(metrics, tiny_judges, tmp_path)
    assert page == tmp_path / "report.md"
    text = page.read_text(encoding="utf-8")
    refs = _images_in(text)
    expected = {"plots/compare.png"} | {
        f"plots/{n}_{kind}.png" for n in tiny_judges for kind in ("confusion", "pred_vs_true", "histograms")
    }
    assert set(refs) == expected
    for ref in refs:
        assert (tmp_path / ref).read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(Path(r).name for r in refs)
    saved = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["judges"] == metrics
    assert "| metric | free | constrained |" in text
    for name, recs in tiny_judges.items():
        unparsed = sum(r.pred is None for r in recs)
        assert sum(row[-1] for row in metrics[name]["confusion"]["matrix"]) == unparsed
    # the constrained judge always answers, with an expected score that ranks pairs and picks
    c = metrics["constrained"]
    assert c["format"]["parse_rate"] == 1.0 and c["pairwise"]["ranking_score"] == "expected_score"
    assert c["pairwise"]["strict"]["n_pairs"] == 18 and c["best_of_n"]["n_groups"] == 3
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def _predictions(tmp_path: Path, name: str, shift: int) -> Path:
    records = []
    for i in range(40):
        label = i % 10
        pred = None if i % 13 == 0 else min(9, max(0, label + shift * (i % 3 - 1)))
        records.append(EvalRecord(id=str(i), group=f"s{i // 5}", label=label, gt_score=label / 9 + i * 1e-3,
                                  pred=pred, raw=None if pred is None else f"<think>t</think><answer>{pred}</answer>",
                                  error="no_answer" if pred is None else None))
    path = tmp_path / f"{name}.jsonl"
    write_records(records, path)
    return path


@pytest.mark.slow
def test_cli_compare_puts_judges_side_by_side(tmp_path, capsys) -> None:
    base, trained = _predictions(tmp_path, "base", 3), _predictions(tmp_path, "trained", 1)
    out = tmp_path / "cmp"
    args = ["eval", "--predictions", str(base), str(trained), "--compare", "--bootstrap", "30", "--out", str(out)]
    assert main(args) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| metric | base | trained |" in text
    row = next(line for line in text.splitlines() if line.startswith("| accuracy, ±1 |"))
    assert len(row.strip("|").split("|")) == 3  # title + one cell per judge
    refs = _images_in(text)
    assert "plots/compare.png" in refs and "plots/base_confusion.png" in refs and "plots/trained_confusion.png" in refs
    for ref in refs:
        assert (out / ref).is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert list(saved["judges"]) == ["base", "trained"]
    assert saved["judges"]["trained"]["accuracy"]["within_1"] > saved["judges"]["base"]["accuracy"]["within_1"]
    assert "report:" in capsys.readouterr().out
    assert "## Differences to base" in text and saved["comparison"]["n_common"] == 40
    diff_row = next(line for line in text.splitlines() if line.startswith("| accuracy, ±1 |") and "+" in line)
    assert diff_row.count("**") == 2  # trained is clearly better at ±1


@pytest.mark.slow
def test_cli_without_compare_writes_one_report_per_judge(tmp_path) -> None:
    base, trained = _predictions(tmp_path, "base", 3), _predictions(tmp_path, "trained", 1)
    out = tmp_path / "sep"
    assert main(["eval", "--predictions", str(base), str(trained), "--name", "zero-shot", "grpo",
                 "--bootstrap", "0", "--out", str(out)]) == 0
    for name in ("zero-shot", "grpo"):
        text = (out / name / "report.md").read_text(encoding="utf-8")
        assert f"| metric | {name} |" in text and (out / name / "plots" / f"{name}_confusion.png").is_file()


@pytest.mark.slow
def test_report_bytes_are_reproducible(tmp_path) -> None:
    preds = _predictions(tmp_path, "j", 1)
    for out in ("a", "b"):
        assert main(["eval", "--predictions", str(preds), "--bootstrap", "40", "--bootstrap-seed", "1",
                     "--out", str(tmp_path / out)]) == 0
    for rel in ("metrics.json", "report.md", "plots/j_confusion.png", "plots/j_pred_vs_true.png"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@pytest.mark.slow
def test_cli_verl_dumps_give_training_curves(tmp_path) -> None:
    dump = tmp_path / "val"
    dump.mkdir()
    for step, good in ((5, 1), (10, 3), (15, 4)):
        lines = []
        for i in range(4):
            out = f"<think>t</think><answer>{i * 2}</answer>" if i < good else "garbage"
            lines.append(json.dumps({"input": f"prompt {i % 2}", "output": out, "gts": str(i * 2),
                                     "score": 2.0 if i < good else 0.0, "step": step}))
        (dump / f"{step}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rep"
    assert main(["eval", "--verl-dumps", str(dump), "--bootstrap", "0", "--out", str(out)]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert [row["step"] for row in saved["training_log"]] == [5, 10, 15]
    assert [row["exact"] for row in saved["training_log"]] == [0.25, 0.75, 1.0]
    assert saved["judges"]["val"]["n"] == 4 and saved["judges"]["val"]["accuracy"]["exact"] == 1.0  # last step
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "plots/training.png" in _images_in(text) and (out / "plots" / "training.png").is_file()
    assert main(["eval", "--verl-dumps", str(dump), "--step", "10", "--bootstrap", "0", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "metrics.json").read_text())["judges"]["val"]["accuracy"]["exact"] == 0.75
    assert main(["eval", "--verl-dumps", str(dump), "--step", "7", "--out", str(out), "--force"]) == 2


def test_cli_errors_are_clear(tmp_path, capsys) -> None:
    assert main(["eval", "--out", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["eval", "--predictions", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no records to evaluate" in capsys.readouterr().err
    assert main(["eval", "--data", "x.parquet", "--out", str(tmp_path)]) == 2
    assert "--data needs --model" in capsys.readouterr().err
    assert main(["eval", "--predictions", str(empty), "--name", "a", "b"]) == 2
    assert "one per input" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_eval_help_stays_light() -> None:
    code = (
        "import sys\n"
        "from editjudge.cli import main\n"
        "try:\n    main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'scipy', 'matplotlib', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--predictions" in out and "--verl-dumps" in out and "--compare" in out
    assert "HEAVY []" in out


@pytest.mark.slow
def test_cli_runs_the_judge_over_a_prepared_parquet(tmp_path, tiny_model_dir) -> None:
    """synth → prepare → eval --data with the tiny model through editjudge.judge.Judge (contract 7)."""
    pytest.importorskip("editjudge.judge")
    assert main(["synth", str(tmp_path / "edits"), "--sources", "3", "--candidates", "3"]) == 0
    assert main(["prepare", str(tmp_path / "edits"), "--out", str(tmp_path / "data"), "--processor",
                 str(tiny_model_dir), "--train-split", "0.5", "--workers", "1", "-q"]) == 0
    test_parquet = tmp_path / "data" / "test.parquet"
    out = tmp_path / "rep"
    assert main(["eval", "--data", str(test_parquet), "--model", str(tiny_model_dir), "--processor",
                 str(tiny_model_dir), "--max-new-tokens", "8", "--bootstrap", "20", "--save-predictions",
                 "--name", "tiny", "--out", str(out)]) == 0
    from editjudge.evaluate.readers import read_predictions, read_test_parquet

    rows = read_test_parquet(test_parquet)
    records = read_predictions(out / "tiny.predictions.jsonl")
    assert [r.id for r in records] == [row["id"] for row in rows]
    assert [r.label for r in records] == [int(row["label"]) for row in rows]
    assert all(r.raw is not None and (r.pred is None) == (r.error is not None) for r in records)
    saved = json.loads((out / "metrics.json").read_text())["judges"]["tiny"]
    assert saved["n"] == len(rows) and saved["n_groups"] == len({row["group"] for row in rows})
    # the saved predictions reproduce the same metrics through --predictions
    again = tmp_path / "again"
    assert main(["eval", "--predictions", str(out / "tiny.predictions.jsonl"), "--name", "tiny",
                 "--bootstrap", "20", "--out", str(again)]) == 0
    assert json.loads((again / "metrics.json").read_text())["judges"]["tiny"] == saved


def test_write_report_accepts_a_trainer_log_history(tmp_path) -> None:
    """TRL's ``trainer.state.log_history``: ``reward``, ``rewards/<f>/mean``, ``loss``, a summary row, NaN."""
    records = [EvalRecord(id=str(i), group="g", label=i, pred=i) for i in range(4)]
    log = [{"step": s, "reward": 0.5 + s / 10, "rewards/format_reward/mean": s / 10, "loss": float("nan") if s == 2
            else 0.1, "epoch": s / 4} for s in range(1, 4)]
    log.append({"step": 3, "train_runtime": 1.5, "train_loss": 0.2})
    page = write_report({"j": compute_metrics(records, bootstrap=0)}, {"j": records}, tmp_path, training_log=log)
    text = page.read_text(encoding="utf-8")
    assert "plots/training.png" in _images_in(text) and (tmp_path / "plots" / "training.png").is_file()
    assert "| step | mean reward | loss |" in text and "| 3 | 0.800 | 0.100 |" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["training_log"][1]["loss"] is None and len(saved["training_log"]) == 4


def test_cli_plots_the_trl_engines_metrics_log(tmp_path, capsys) -> None:
    """``--training-log`` takes the TRL engine's metrics.jsonl (reward_mean, format/accuracy rates, phases)."""
    preds = _predictions(tmp_path, "judge", 1)
    log = tmp_path / "metrics.jsonl"
    rows = [{"phase": "sft", "step": s, "loss": 1.0 / s} for s in (1, 2)]
    rows += [{"phase": "grpo", "step": s, "reward_mean": 0.4 + s / 10, "format_rate": 0.5 + s / 10,
              "accuracy_rate": 0.2 + s / 20, "loss": 0.01} for s in (1, 2, 3)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rep"
    assert main(["eval", "--predictions", str(preds), "--training-log", str(log), "--bootstrap", "0",
                 "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "plots/training.png" in _images_in(text) and (out / "plots" / "training.png").is_file()
    assert "| run | step | mean reward | format rate | reward accuracy term | loss |" in text
    assert "| grpo | 3 | 0.700 | 0.800 | 0.350 | 0.010 |" in text and "| sft | 1 | – | – | – | 1.000 |" in text
    assert json.loads((out / "metrics.json").read_text())["training_log"] == rows
    log.write_text('{"loss": 1}\n')
    assert main(["eval", "--predictions", str(preds), "--training-log", str(log), "--out", str(out), "--force"]) == 2
    assert "needs an integer 'step'" in capsys.readouterr().err


def test_learning_curve_and_training_panels(tmp_path) -> None:
    """The learning curve is plotted and tabled; the training figure smooths and keeps the warm-start loss."""
    import numpy as np

    from editjudge.evaluate.plots import _smooth

    preds = [EvalRecord(id=str(i), group=f"g{i // 2}", label=1 + 6 * (i % 2), gt_score=0.8 + 0.1 * (i % 2),
                        pred=1 + 6 * (i % 2), raw="<think>ok</think><answer>1</answer>") for i in range(8)]
    curve = [{"step": s, "accuracy_within_2": a, "accuracy_exact": a, "pairwise_accuracy": a, "best_of_n_regret": r}
             for s, a, r in ((0, 0.5, 0.13), (10, 1.0, 0.0))]
    log = [{"phase": "warm_start", "step": s, "loss": 2.0 / s} for s in range(1, 6)]
    log += [{"phase": "grpo", "step": s, "reward_mean": 1.5, "format_rate": 1.0, "accuracy_rate": 0.5} for s in range(1, 12)]
    page = write_report({"j": compute_metrics(preds, bootstrap=0)}, {"j": preds}, tmp_path, training_log=log,
                        learning_curve=curve).read_text(encoding="utf-8")
    assert "plots/learning_curve.png" in _images_in(page) and "| 10 | 1.000 | 1.000 | 1.000 | 0.000 |" in page
    assert (tmp_path / "plots" / "learning_curve.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((tmp_path / "metrics.json").read_text())["learning_curve"] == curve
    smooth = _smooth(np.array([0.0, 1.0, np.nan, 1.0, 0.0] * 4))
    assert np.isfinite(smooth).all() and smooth[2] == 1.0 and smooth[0] == 0.5  # NaN-aware moving average (window 3)


def test_training_figure_and_table_show_the_groups_with_no_reward_variance(tmp_path) -> None:
    """The share of GRPO groups whose rewards were all equal (TRL's frac_reward_zero_std; from verl's rollout dumps
    through per_step) gets a panel of the training figure and a column of the training table."""
    preds = [EvalRecord(id=str(i), group="g", label=1, pred=1, raw="<answer>1</answer>") for i in range(2)]
    log = [{"phase": "grpo", "step": s, "reward_mean": 1.0, "accuracy_rate": 0.5, "frac_reward_zero_std": z,
            "groups/flat_stuck": z / 2, "groups/flat_solved": z / 2} for s, z in ((1, 0.25), (2, 0.75))]
    plain = [{k: v for k, v in row.items() if "groups" not in k and "zero" not in k} for row in log]
    widths = []
    for out, rows in ((tmp_path / "signal", log), (tmp_path / "plain", plain)):
        page = write_report({"j": compute_metrics(preds, bootstrap=0)}, {"j": preds}, out,
                            training_log=rows).read_text(encoding="utf-8")
        png = (out / "plots" / "training.png").read_bytes()
        widths.append(int.from_bytes(png[16:20], "big"))  # the PNG header's width: 500 px per panel
    assert widths == [1500, 1000]  # reward, rates and the signal panel; without the figure, no signal panel
    page = (tmp_path / "signal" / "report.md").read_text(encoding="utf-8")
    assert "| run | step | mean reward | reward accuracy term | groups with equal rewards |" in page
    assert "| grpo | 2 | 1.000 | 0.500 | 0.750 |" in page
