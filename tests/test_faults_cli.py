"""Hostile use of the verbs: Ctrl-C, bad settings, outputs in the way, bad prediction files, failing judges.

Each test asserts what a user sees: the exit code (2 for a usage mistake, 1 when nothing could be done), a message
naming the fix, no traceback, no model loaded for an input mistake, previous outputs left intact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from editjudge.cli import main

PY = [sys.executable, "-m", "editjudge.cli"]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from editjudge.synthetic import write_synthetic_edits

    folder = tmp_path_factory.mktemp("edits")
    write_synthetic_edits(folder, n_sources=3, candidates_per_source=3, size=64)
    return folder


# ------------------------------------------------------------------------------------------------- prepare


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT")
def test_ctrl_c_on_prepare_with_two_workers_ends_at_once_and_keeps_the_previous_output(tmp_path: Path) -> None:
    from editjudge.synthetic import write_synthetic_edits

    data = write_synthetic_edits(tmp_path / "big", n_sources=64, candidates_per_source=4, size=320, photo_like=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.parquet").write_bytes(b"previous run")
    for trial in range(2):
        proc = subprocess.Popen([*PY, "prepare", str(data.out_dir), "-o", str(out), "--workers", "2", "-q", "--force"],
                                env=_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        # the run is under way: its spill folder (made as the workers start) or an output being written
        while time.time() < deadline and not (list(out.glob(".prepare-spill-*")) or list(out.glob(".*.tmp"))):
            time.sleep(0.02)
        time.sleep(0.2 * trial)
        assert proc.poll() is None, "prepare ended before it could be interrupted: make the input larger"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("prepare --workers 2 hung after Ctrl-C")
        err = proc.stderr.read().decode()
        # 130, or killed by SIGINT itself (-2: a shell reports both as 130) when Python re-raises it at exit
        assert code in (130, -signal.SIGINT) and "interrupted" in err and "Traceback" not in err, (code, err[-2000:])
        assert (out / "train.parquet").read_bytes() == b"previous run"
        assert not list(out.glob(".*.tmp"))  # no temporary file left behind


def test_bad_template_and_processor_exit_2_before_any_work(edits: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("system: [unclosed\nuser: x\n")
    assert main(["prepare", str(edits), "-o", str(tmp_path / "o1"), "--template", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "prompt template file" in err and "not readable YAML" in err
    proc = subprocess.run([*PY, "prepare", str(edits), "-o", str(tmp_path / "o2"), "--processor", "/nonexistent",
                           "--workers", "2", "-q"], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "/nonexistent" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o2").exists()  # failed before writing anything


def test_outputs_are_not_replaced_without_force(edits: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "train.parquet").write_bytes(b"another dataset")
    assert main(["prepare", str(edits), "-o", str(out), "--workers", "1", "-q"]) == 2
    assert "--force" in capsys.readouterr().err and (out / "train.parquet").read_bytes() == b"another dataset"
    assert main(["prepare", str(edits), "-o", str(out), "--workers", "1", "-q", "--force"]) == 0
    # train --engine trl: an output dir with a previous run is refused before anything loads (--resume continues)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    code = main(["train", "--engine", "trl", "--model", str(tmp_path), "--train-files", str(out / "train.parquet"),
                 "--output-dir", str(run)])
    assert code == 2 and "--resume" in capsys.readouterr().out
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


# ---------------------------------------------------------------------------------------------------- eval


def test_eval_names_what_a_wrong_predictions_file_is(tmp_path: Path, capsys) -> None:
    cases = {
        "foo.jsonl": ('{"foo": 1}\n', "not a predictions line"),
        "manifest.jsonl": ('{"source": "a.jpg", "edited": "b.jpg", "instruction": "x"}\n', "editjudge score --manifest"),
        "dump.jsonl": ('{"input": "p", "output": "o", "gts": "3"}\n', "--verl-dumps"),
        "data.parquet": (None, "--data PARQUET --model M"),
        "preds.csv": ("id,pred\na,3\n", "--out preds.jsonl"),
    }
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, (text, hint) in cases.items():
        path = tmp_path / name
        if text is None:
            pq.write_table(pa.table({"x": [1, 2]}), path)
        else:
            path.write_text(text)
        assert main(["eval", "--predictions", str(path), "--out", str(tmp_path / "r")]) == 2, name
        err = capsys.readouterr().err
        assert hint in err and "Traceback" not in err, (name, err)
    assert not (tmp_path / "r").exists()


def test_failed_rows_keep_their_label_and_count_as_wrong(tmp_path: Path) -> None:
    from editjudge.evaluate.metrics import compute_metrics

    records = [
        {"id": "a", "label": 5, "pred": 5},
        {"id": "b", "label": 3, "pred": None, "error": "input_error: truncated_image: edited image: …"},
    ]
    m = compute_metrics(records, bootstrap=0)
    assert m["accuracy"]["n"] == 2 and m["accuracy"]["exact"] == 0.5 and m["accuracy"]["n_failed"] == 1


# ---------------------------------------------------------------------------------- judge: inputs and outputs


def test_csv_cells_that_would_be_formulas_are_neutralised(tmp_path: Path) -> None:
    from editjudge.judge.output import PredictionSink, prediction
    from editjudge.judge.result import JudgeResult

    path = tmp_path / "p.csv"
    with PredictionSink(path) as sink:
        sink.add(prediction(id="=1+1", source="@SUM(A1)", edited="e.jpg", instruction='=HYPERLINK("http://x","y")',
                            group=None, result=JudgeResult(score=3), gt_score=-0.5, label=2))
    (row,) = csv.DictReader(io.StringIO(path.read_text()))
    assert row["instruction"] == '\'=HYPERLINK("http://x","y")' and row["id"] == "'=1+1" and row["source"] == "'@SUM(A1)"
    assert row["gt_score"] == "-0.5" and row["pred"] == "3"  # numbers stay numbers


def test_the_judge_refuses_special_tokens_and_non_regular_files_per_item(tmp_path: Path) -> None:
    from editjudge import prompts
    from editjudge.data.images import ImageRejected
    from editjudge.judge.request import build_request, image_bytes

    for text in ("a <image> b", "x <|image_pad|>", "<|im_start|>user"):
        with pytest.raises(ValueError, match="special tokens"):
            prompts.build_messages(text)
        with pytest.raises(ValueError, match="special tokens"):
            build_request(b"", b"", text)
    assert prompts.check_instruction("make the <b>sky</b> blue") == "make the <b>sky</b> blue"  # HTML-ish is fine
    start = time.perf_counter()
    with pytest.raises(ImageRejected) as info:
        image_bytes("/dev/zero", "source")
    assert info.value.reason == "not_a_regular_file" and time.perf_counter() - start < 1


def test_a_missing_model_or_adapter_fails_at_once(tmp_path: Path, capsys) -> None:
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(image)
    pair = ["--source", str(image), "--edited", str(image), "--instruction", "x"]
    start = time.perf_counter()
    assert main(["score", "--model", str(tmp_path), "--adapter", "runs/nope", *pair]) == 2
    assert main(["score", "--model", "repo/nope", *pair]) == 2
    assert time.perf_counter() - start < 5  # no hub retries
    err = capsys.readouterr().err
    assert "--adapter 'runs/nope' is neither a local directory nor in the Hugging Face cache" in err
    assert "--model 'repo/nope'" in err and "hf download repo/nope" in err


def test_score_and_eval_check_their_inputs_before_loading_a_model(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "m.jsonl"
    bad.write_bytes(b"\xff\xfe")
    (tmp_path / "p.jsonl").write_text("x\n")
    calls = [
        (["score", "--model", str(tiny_model_dir), "--source", str(tmp_path / "nope.jpg"), "--edited",
          str(tmp_path / "nope.jpg"), "--instruction", "x"], "--source"),
        (["eval", "--data", str(tmp_path / "nope.parquet"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "r")],
         "editjudge prepare"),
        (["score", "--model", str(tiny_model_dir), "--manifest", str(bad), "--out", str(tmp_path / "p.jsonl")],
         "already exists"),
    ]
    for argv, message in calls:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Loading weights" not in err  # refused before any model was loaded


def test_a_hostile_prepare_report_is_named_before_a_model_loads(tiny_model_dir: Path, edits: Path, tmp_path: Path,
                                                                 capsys, time_limit) -> None:
    """--prepare-report reads like prepare reads: a regular file (a FIFO is refused, not waited on), UTF-8 JSON text
    of bounded depth, an object with 'settings'; each problem exits 2 naming the file, before any weights load."""
    source, edited = sorted(edits.rglob("*_input.jpg"))[0], sorted(edits.rglob("*_output.jpg"))[0]
    reports = {
        "fifo.json": None,
        "latin1.json": b'{"settings": {"template": "caf\xe9"}}',
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "surrogate.json": b'{"settings": {"template": "x \\ud800"}}',
        "digits.json": b'{"settings": {"max_pixels": ' + b"9" * 5000 + b"}}",
        "list.json": b"[1, 2]",
    }
    expected = {"fifo.json": "not a regular file", "latin1.json": "not UTF-8", "deep.json": "nested too deep",
                "surrogate.json": "lone surrogate", "digits.json": "invalid JSON", "list.json": "no 'settings'"}
    for name, data in reports.items():
        path = tmp_path / name
        if data is None:
            os.mkfifo(path)
        else:
            path.write_bytes(data)
        argv = ["score", "--model", str(tiny_model_dir), "--source", str(source), "--edited", str(edited),
                "--instruction", "make it red", "--prepare-report", str(path)]
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert f"--prepare-report {path}" in err and expected[name] in err, (name, err)
        assert "Traceback" not in err and "Loading weights" not in err, name


@pytest.fixture(scope="session")
def answering_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught to answer (the same folder tests/test_judge_cli.py uses: built once per session)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _judge_models import build_answering_model

    return build_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-answering-model")


@pytest.mark.slow
def test_score_eval_and_best_of_n_on_hostile_rows(answering_model_dir: Path, edits: Path, tmp_path: Path, capsys) -> None:
    """Unreadable rows keep their label (eval counts them wrong, names how many), reruns give the same bytes, one
    source under two instructions is two rankings, eval --data where every row fails exits 1."""
    model = ["--model", str(answering_model_dir), "--max-new-tokens", "12", "--device", "cpu"]
    sources, outputs = sorted(edits.rglob("*_input.jpg")), sorted(edits.rglob("*_output.jpg"))
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    rows = [
        {"id": "ok", "source": str(sources[0]), "edited": str(outputs[0]), "instruction": "make it red", "score": 0.9},
        {"id": "bad", "source": str(sources[0]), "edited": "text.jpg", "instruction": "make it red", "score": 0.7},
        {"id": "gone", "source": str(sources[0]), "edited": "missing.jpg", "instruction": "make it red", "score": 0.8},
        {"id": "tok", "source": str(sources[0]), "edited": str(outputs[1]), "instruction": "a <image>", "score": 0.8},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        assert main(["score", *model, "--manifest", str(manifest), "--out", str(tmp_path / name)]) == 0
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]  # byte-identical reruns, errors included
    preds = {p["id"]: p for p in map(json.loads, outs[0].decode().splitlines())}
    for rid in ("bad", "gone", "tok"):
        assert preds[rid]["error"].startswith("input_error") and preds[rid]["label"] is not None, preds[rid]
    assert main(["eval", "--predictions", str(tmp_path / "a.jsonl"), "--bootstrap", "0",
                 "--out", str(tmp_path / "rep")]) == 0
    assert "failed=3 (counted as wrong)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())["judges"]["a"]
    assert metrics["accuracy"]["n"] == 4 and metrics["accuracy"]["n_failed"] == 3

    # best-of-n: one source picture, two instructions -> two rankings, each a table; known scores -> oracle check
    folder = tmp_path / "bon.jsonl"
    folder.write_text("".join(json.dumps({"source": str(sources[0]), "edited": str(outputs[k]), "score": 0.5 + k / 10,
                                          "instruction": "make it red" if k < 2 else "make it blue"}) + "\n"
                              for k in range(3)))
    assert main(["best-of-n", *model, "--folder", str(folder), "--out", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    rankings = json.loads((tmp_path / "r.json").read_text())
    assert [len(r["candidates"]) for r in rankings] == [2, 1]
    assert printed.count("rank  score") == 2 and ("the pick is the oracle's" in printed or "the oracle would pick" in printed)
    assert all(r["oracle"] is not None for r in rankings)

    # eval --data where no row can be judged: the report is written, the exit code says it
    import pyarrow.parquet as pq
    from editjudge.data.writer import SCHEMA

    row = {"data_source": "x", "prompt": [], "images": [{"bytes": b"junk"}, {"bytes": b"junk"}], "ability": "x",
           "reward_model": {"style": "rule", "ground_truth": "4"},
           "extra_info": {"split": "test", "index": 0, "id": "r", "instruction": "make it red", "score": 0.5,
                          "label": 4, "group": "image:x", "source_path": "", "edited_path": "", "prompt_tokens": 0,
                          "image_tokens": [0, 0], "image_hw": [[0, 0], [0, 0]]}}
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist([row, {**row, "extra_info": {**row["extra_info"], "index": 1}}], schema=SCHEMA),
                   tmp_path / "t.parquet")
    assert main(["eval", "--data", str(tmp_path / "t.parquet"), *model, "--bootstrap", "0",
                 "--out", str(tmp_path / "rep2")]) == 1
    assert "could not judge a single row" in capsys.readouterr().err


def test_rejected_edits_keep_their_score_for_the_judge(tmp_path: Path) -> None:
    """`score` turns a rejected row into a prediction with an input_error: its truth must come along (eval counts it)."""
    from editjudge.data.sources import Rejected, read_sources

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a_input.jpg").write_bytes(b"x")
    (folder / "a_meta.json").write_text('{"instruction": "make it red"}')
    (folder / "a_score.json").write_text('{"score": 0.75}')  # no a_output.*: rejected as missing_edited
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"source": "nope.jpg", "edited": "nope.jpg", "instruction": "x", "score": 0.5, "group": "g"}\n')
    (folder_item,) = read_sources(folder, require_score=False)
    (manifest_item,) = read_sources(manifest, require_score=False)
    assert isinstance(folder_item, Rejected) and folder_item.reason == "missing_edited" and folder_item.score == 0.75
    assert isinstance(manifest_item, Rejected) and (manifest_item.score, manifest_item.group) == (0.5, "g")


# ------------------------------------------------------------------------------------------- numeric flags


def _minimal_argv(verb: str, parser) -> list[str]:  # noqa: ANN001
    """``verb`` with dummy values for its required arguments (enough to get past argparse)."""
    argv = [verb]
    for action in parser._actions:
        if not action.option_strings and action.dest not in ("help",) and action.nargs not in ("?", "*"):
            argv.append("dummy")
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], "dummy"]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            first = group._group_actions[0]
            argv += [first.option_strings[0], "dummy"]
    return argv


def _bad_values(verb: str, action) -> list[str]:  # noqa: ANN001
    from editjudge.numeric_flags import bound_of

    bound = bound_of(verb, action)
    bad = ["1e999" if action.type is int else "nan", "-1e999" if action.type is int else "inf"]
    if action.type is float:
        bad.append("-inf")
    if bound.low is not None:
        below = bound.low if bound.low_open else bound.low - (1 if action.type is int else 0.5)
        bad.append(str(int(below)) if action.type is int else str(below))
    if bound.high is not None:
        above = bound.high if bound.high_open else bound.high + 1
        bad.append(str(int(above)) if action.type is int else str(above))
    return bad


def test_every_numeric_flag_of_every_verb_refuses_nonsense_with_exit_2(capsys) -> None:
    """One rule (editjudge.numeric_flags) for every verb: walk each verb's parser, give each int/float flag nan, inf,
    a value below its least and above its most; each must exit 2 naming the flag, before the verb runs."""
    from editjudge.cli import VERBS, build_parser, verb_parser
    from editjudge.numeric_flags import numeric_actions

    checked = 0
    for verb in VERBS:
        parser = verb_parser(build_parser(verb), verb)
        base = _minimal_argv(verb, parser)
        for action in numeric_actions(parser):
            flag = action.option_strings[0]
            for value in _bad_values(verb, action):
                try:
                    code = main([*base, flag, value])
                except SystemExit as exc:  # argparse itself refuses what int() cannot read ("1e999" for an int)
                    code = exc.code
                err = capsys.readouterr().err
                assert code == 2, (verb, flag, value, err)
                assert flag in err or "invalid int value" in err, (verb, flag, value, err)
                checked += 1
    assert checked >= 250  # every verb's numeric flags were walked


def test_the_issue_s_numeric_flags_are_usage_errors(tmp_path: Path, capsys) -> None:
    cases = [
        (["prepare", str(tmp_path), "--workers", "-3"], "--workers -3: must be at least 1"),
        (["prepare", str(tmp_path), "--jpeg-quality", "500"], "--jpeg-quality 500: must be at most 100"),
        (["prepare", str(tmp_path), "--max-prompt-length", "-1"], "--max-prompt-length -1: must be at least 1"),
        (["serve", "--model", "m", "--drain-timeout", "nan"], "--drain-timeout nan: must be a finite number"),
        (["serve", "--model", "m", "--request-timeout", "0"], "--request-timeout 0.0: must be above 0"),
        (["serve", "--model", "m", "--retry-after", "-1"], "--retry-after -1: must be at least 0"),
        (["serve", "--model", "m", "--cpus-per-replica", "-0.5"], "--cpus-per-replica -0.5: must be at least 0"),
        (["score", "--model", "m", "--timeout", "-5"], "--timeout -5.0: must be above 0"),
        (["score", "--model", "m", "--ray", "--cpus-per-actor", "inf"], "--cpus-per-actor inf: must be a finite"),
        (["score", "--model", "m", "--score-mad", "0"], "--score-mad 0.0: must be above 0"),
        (["distill", "--data", "d", "--out", "o", "--traces", "t", "--temperature", "-1"], "--temperature -1.0"),
        (["bench", "tiger", "--root", "r", "--out", "o", "--bootstrap", "-1"], "--bootstrap -1: must be at least 0"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert main(["prepare", str(tmp_path), "--score-median", "-3.5", "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "give both --score-median and --score-mad" in capsys.readouterr().err  # a negative median is a number


def test_an_argument_that_is_not_utf8_is_a_usage_error_before_any_work(edits: Path, tmp_path: Path) -> None:
    """A folder or file name with bytes that are not UTF-8 (Python sees lone surrogates) cannot be recorded in any
    output: every verb refuses it at once (exit 2, the name shown with \\xNN), instead of failing at the last write."""
    root = Path(os.fsdecode(bytes(tmp_path) + b"/root\xff"))
    root.mkdir()
    out = Path(os.fsdecode(bytes(tmp_path) + b"/out\xfe"))
    for argv in (["prepare", str(root), "-o", str(tmp_path / "o")], ["prepare", str(edits), "-o", str(out)],
                 ["eval", "--predictions", str(root / "p.jsonl")]):
        proc = subprocess.run(PY + argv + ["-q"] * (argv[0] == "prepare"), capture_output=True, env=_env(), timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert b"is not UTF-8 text" in proc.stderr and (b"\\xff" in proc.stderr or b"\\xfe" in proc.stderr)
        assert b"Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "o").exists()
