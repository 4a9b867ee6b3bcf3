"""A dimension judge everywhere the score goes: results (per dimension, expected scores, overall by the set's rule),
score records (jsonl, csv, parquet), best-of-n --rank-by, eval's per-dimension metrics and table, the client's
reward value, bench's per-dimension comparison and distill's acceptance rule."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from editjudge.formats import get_format
from editjudge.judge.result import Generation, JudgeResult, combine

FP = get_format("dimensions:follow_preserve")
ES = get_format("dimensions:editscore")


def _answer(fmt, digits: Sequence[int], think: str = "r") -> str:
    return fmt.answer_text(tuple(digits), think)


def _certain(*digits: int) -> tuple[dict[str, float], ...]:
    return tuple({str(d): 0.0} for d in digits)


def test_combine_gives_each_dimension_its_score_and_expected_score_and_the_overall_by_the_rule() -> None:
    spread = ({"7": math.log(0.5), "9": math.log(0.5)}, {"3": 0.0}, {"8": 0.0})  # PF expected 8
    result = combine([Generation(_answer(ES, (7, 3, 8)), slot_logprobs=spread)], ES)
    assert result.dimensions["prompt_following"] == {"score": 7, "mean_score": 7.0, "expected_score": 8.0}
    assert result.mean_score == pytest.approx(math.sqrt(3 * 8)) and result.score == round(math.sqrt(24))
    assert result.expected_score == pytest.approx(math.sqrt(min(8.0, 3.0) * 8.0))  # EditScore's rule, expected
    assert result.error is None and result.reasoning == "r" and list(result.dimensions) == list(ES.names)
    # Avg@k: per dimension the mean of the parsed samples, each sample's overall in `scores`
    texts = [_answer(FP, (1, 7)), _answer(FP, (3, 9)), "<think>x</think><answer>following: 7</answer>"]
    many = combine([Generation(t) for t in texts], FP)
    assert many.dimensions["following"]["mean_score"] == 2.0 and many.dimensions["following"]["scores"] == [1, 3, None]
    assert many.scores == (4, 6, None) and many.mean_score == 5.0 and many.expected_score is None
    bad = combine([Generation("<think>x</think><answer>following: 7</answer>")], FP)
    assert bad.score is None and bad.error == "missing_dimension" and bad.dimensions["following"]["score"] is None
    # a one-score result's dict is unchanged (no 'dimensions' key)
    assert "dimensions" not in combine([Generation("<think>r</think><answer>7</answer>")]).to_dict()


def test_a_result_seen_through_one_dimension() -> None:
    result = combine([Generation(_answer(FP, (1, 7)), slot_logprobs=_certain(1, 7))], FP)
    assert result.on("preservation").score == 7 and result.on("following").expected_score == 1.0
    assert result.on("overall") is result and result.on(None) is result
    with pytest.raises(ValueError, match=r"no dimension 'quality'.*\['overall', 'following', 'preservation'\]"):
        result.on("quality")
    failed = JudgeResult(error="input_error: x")
    assert failed.on("following") is failed  # an unjudged item ranks last whatever the dimension


class _Scripted:
    """A judge backend (the project's Backend protocol) answering from a script, with certain digit probabilities."""

    batch_size = 8

    def __init__(self, answers: dict[str, tuple[int, ...]]) -> None:
        self.answers = answers

    def generate(self, requests, sampling):
        from editjudge.judge.backends import ItemOutput

        outputs = []
        for request in requests:
            digits = self.answers[_colour(request.images[1])]
            fmt = request.format
            outputs.append(ItemOutput(generations=[Generation(fmt.answer_text(digits, "seen"),
                                                              slot_logprobs=_certain(*digits))]))
        return outputs


def _colour(image) -> str:
    r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
    return "red" if r > max(g, b) + 40 else "blue" if b > max(r, g) + 40 else "grey"


def _images(tmp_path: Path) -> dict[str, Path]:
    from PIL import Image

    paths = {}
    for name, colour in (("grey", (128, 128, 128)), ("red", (220, 40, 40)), ("blue", (40, 70, 220))):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (64, 64), colour).save(paths[name])
    return paths


def test_best_of_n_ranks_by_the_overall_or_by_one_dimension(tmp_path: Path) -> None:
    from editjudge.judge import Judge

    images = _images(tmp_path)
    judge = Judge.from_backend(_Scripted({"grey": (1, 9), "red": (7, 7), "blue": (9, 1)}), format=FP.spec)
    candidates = [images["grey"], images["red"], images["blue"]]
    overall = judge.best_of_n(images["grey"], candidates, "make the square red")
    assert [c.candidate for c in overall.candidates][0] == str(images["red"])  # overall 7 beats 5 and 5
    by_follow = judge.best_of_n(images["grey"], candidates, "make it red", rank_by="following")
    assert by_follow.best.candidate == str(images["blue"])
    by_keep = judge.best_of_n(images["grey"], candidates, "make it red", rank_by="preservation")
    assert by_keep.best.candidate == str(images["grey"])
    with pytest.raises(ValueError, match="cannot rank by 'quality'"):
        judge.best_of_n(images["grey"], candidates, "x", rank_by="quality")
    assert by_keep.to_dict()["candidates"][0]["dimensions"]["preservation"]["score"] == 9


def test_score_records_carry_every_dimension_in_jsonl_csv_and_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from editjudge.judge.output import prediction, prediction_sink

    result = combine([Generation(_answer(FP, (1, 7)), slot_logprobs=_certain(1, 7))], FP)
    record = prediction(id="a", source="s.png", edited="e.png", instruction="i", group=None, result=result,
                        gt_score=0.9, label=4, dimension_labels={"following": 1, "preservation": None},
                        format=FP.spec)
    assert record["pred"] == 4 and record["expected_score"] == 4.0 and record["format"] == FP.spec
    assert record["dimensions"] == {"following": {"pred": 1, "expected_score": 1.0, "mean_score": 1.0, "label": 1},
                                    "preservation": {"pred": 7, "expected_score": 7.0, "mean_score": 7.0,
                                                     "label": None}}
    for suffix in (".jsonl", ".csv", ".parquet"):
        with prediction_sink(tmp_path / f"p{suffix}", FP.names) as sink:
            sink.add(record)
    assert json.loads((tmp_path / "p.jsonl").read_text()) == record
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == [record]
    import csv

    with open(tmp_path / "p.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert json.loads(row["dimensions"]) == record["dimensions"] and row["format"] == FP.spec
    # a one-score judge's files have no such columns
    with prediction_sink(tmp_path / "one.parquet") as sink:
        sink.add(prediction(id="b", source=None, edited=None, instruction=None, group=None,
                            result=combine([Generation("<think>r</think><answer>7</answer>")])))
    assert "dimensions" not in pq.read_schema(tmp_path / "one.parquet").names


def _records(n_sources: int = 6):
    """A dimension judge's eval records: following right everywhere, preservation always answered 7."""
    from editjudge.evaluate.dimensions import record_of

    kinds = [(1, 7), (7, 7), (7, 1), (1, 1)]
    records = []
    for s in range(n_sources):
        for k, (f, p) in enumerate(kinds):
            result = combine([Generation(_answer(FP, (f, 7)), slot_logprobs=_certain(f, 7))], FP)
            label = FP.encode_label({"following": f, "preservation": p})
            records.append(record_of(result, FP, id=f"{s}-{k}", group=f"g{s}", label=label))
    return records


def test_eval_computes_every_metric_per_dimension_and_for_the_overall(tmp_path: Path) -> None:
    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.readers import read_predictions
    from editjudge.evaluate.records import write_records
    from editjudge.evaluate.report import write_report

    records = _records()
    metrics = compute_metrics(records, bootstrap=20, seed=0)
    dims = metrics["dimensions"]
    assert dims["following"]["accuracy"]["within_2"] == 1.0 and dims["preservation"]["accuracy"]["within_2"] == 0.5
    assert dims["following"]["pairwise"]["strict"]["value"] == 1.0
    assert dims["preservation"]["format"]["format_rate"] == 1.0  # raw read by the dimension format
    assert metrics["format"]["format_rate"] == 1.0 and metrics["format"]["parse_rate"] == 1.0
    assert "bootstrap" in dims["following"]
    # overall: labels 4, 7, 4, 1 by the mean rule; answers (f + 7) / 2 rounded: 4, 7, 7, 4
    assert metrics["accuracy"]["exact"] == pytest.approx(0.5)
    # the records round-trip through a predictions file
    write_records(records, tmp_path / "preds.jsonl")
    again = read_predictions(tmp_path / "preds.jsonl")
    assert again == records
    page = write_report({"judge": metrics}, {"judge": records}, tmp_path / "report").read_text()
    assert "## Per dimension" in page
    table = page.split("## Per dimension")[1].split("\n\n")[2]
    assert table.splitlines()[0] == "| metric | overall | following | preservation |"
    assert any(line.startswith("| accuracy, ±2 | ") and "| 1.000" in line and "| 0.500" in line
               for line in table.splitlines())


def test_verl_dumps_of_dimension_rows_are_read_by_their_labels(tmp_path: Path) -> None:
    from editjudge.evaluate.readers import read_verl_dumps

    gts = FP.encode_label({"following": 7, "preservation": 1})
    lines = [{"input": "p", "output": _answer(FP, (7, 7)), "gts": gts, "score": 1.5, "step": 3},
             {"input": "p", "output": "nothing", "gts": gts, "score": 0.0, "step": 3}]
    (tmp_path / "3.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    good, bad = read_verl_dumps(tmp_path)
    assert good.dimensions["following"] == {"label": 7, "pred": 7, "expected_score": None, "mean_score": 7.0}
    assert good.reward == 1.5 and good.step == 3 and good.label == 4  # the overall of 7 and 1 (mean)
    assert bad.pred is None and bad.error == "no_answer"


def test_edit_reward_value_picks_a_dimension_the_overall_or_weights() -> None:
    from editjudge.client_value import value_picker

    result = {"score": 5, "expected_score": 4.5,
              "dimensions": {"following": {"score": 2, "expected_score": 2.5},
                             "preservation": {"score": 7, "expected_score": None}}}
    assert value_picker("expected_score")(result) == 4.5 and value_picker("overall")(result) == 4.5
    assert value_picker("score")(result) == 5.0
    assert value_picker("following")(result) == 2.5 and value_picker("preservation")(result) == 7.0
    assert value_picker({"following": 0.5, "preservation": 0.5})(result) == pytest.approx(4.75)
    assert value_picker("quality")(result) is None and value_picker({"quality": 1.0})(result) is None
    for bad in ({}, {"following": math.nan}, 3, "", {"": 1.0}):
        with pytest.raises(ValueError):
            value_picker(bad)


def test_bench_compares_each_pair_under_its_own_dimension() -> None:
    from editjudge.bench.dimensions import by_dimension, judge_dimensions
    from editjudge.bench.scoring import Score
    from editjudge.bench.suites import BenchItem

    dims = {"prompt_following": {"score": 8, "mean_score": 8.0, "expected_score": 7.5},
            "consistency": {"score": 2, "mean_score": 2.0, "expected_score": 2.5}}
    scores = {"A": Score(5.0, 5.0, None, dims), "B": Score(4.0, 4.0, None, {
        "prompt_following": {"score": 3, "mean_score": 3.0, "expected_score": 3.5},
        "consistency": {"score": 9, "mean_score": 9.0, "expected_score": 8.5}})}
    items = [BenchItem(f"x|{d}", "i", b"s", (b"a", b"b"), (1.0, 0.0), "t", "g", d)
             for d in ("prompt_following", "consistency", "overall")]
    keys = {item.id: ("A", "B") for item in items}
    assert judge_dimensions(scores.values()) == ["prompt_following", "consistency"]
    new_keys, values, used = by_dimension(items, keys, scores, "score", ["prompt_following", "consistency"])
    assert values["A#prompt_following"] == 8.0 and values["B#consistency"] == 9.0 and values["A#overall"] == 5.0
    assert used == {"prompt_following": "judge dimension prompt_following", "consistency": "judge dimension "
                    "consistency", "overall": "judge overall"}
    assert new_keys["x|overall"] == ("A#overall", "B#overall")
    _, expected, _ = by_dimension(items, keys, scores, "expected_score", ["prompt_following", "consistency"])
    assert expected["B#prompt_following"] == 3.5
    assert Score.from_line({"key": "k", "score": 5, "dimensions": dims}).dimensions == dims


def test_distill_accepts_a_trace_when_every_labelled_dimension_is_within_tolerance() -> None:
    from editjudge.distill.rules import bare_reasoning_response, judge_response, label_key, row_format_label

    row = {"data_source": "editjudge_dimensions",
           "reward_model": {"ground_truth": FP.encode_label({"following": 7, "preservation": None})}}
    fmt, labels = row_format_label(row)
    assert fmt.names == FP.names and labels == {"following": 7, "preservation": None} and label_key(labels) == 7
    assert judge_response(_answer(FP, (7, 0)), labels, 0, fmt).accepted  # the unlabelled dimension is free
    near = judge_response(_answer(FP, (6, 0)), labels, 1, fmt)
    assert near.accepted and near.dimensions == {"following": 6, "preservation": 0}
    assert judge_response(_answer(FP, (6, 0)), labels, 0, fmt).reason == "wrong_answer"
    assert judge_response(_answer(FP, (7, 0), think=""), labels, 0, fmt).reason == "no_reasoning"
    assert judge_response("<think>r</think><answer>7</answer>", labels, 0, fmt).reason == "malformed_entry"
    full = {"following": 7, "preservation": 1}
    assert fmt.parse(bare_reasoning_response("looks red", full, fmt)).answer == (7, 1)
    assert judge_response(bare_reasoning_response("looks red", labels, fmt), labels, 0, fmt).reason == "no_answer"
    # a one-score row is judged as before
    one = {"data_source": "tts_edit_score", "reward_model": {"ground_truth": "7"}}
    pfmt, label = row_format_label(one)
    assert label == 7 and judge_response("<think>r</think><answer>6</answer>", label, 1, pfmt).accepted


def test_bench_editscore_with_a_dimension_judge_s_scores_worked_by_hand(tmp_path: Path) -> None:
    """Each pair under its own dimension: the judge's consistency prefers the worse edit, its prompt following and
    overall the better; a one-score reading of the same scores would call consistency right."""
    from test_bench_suites import write_editscore

    from editjudge.bench.scoring import plan
    from editjudge.bench.suites import read_editscore
    from editjudge.cli import main

    root = write_editscore(tmp_path / "suite")
    work = plan(read_editscore(root).items)
    lines = []
    for keys in work.keys.values():
        for k, (key, preferred) in enumerate(zip(keys, (True, False))):
            dims = {"prompt_following": {"score": 8 if preferred else 2, "mean_score": None, "expected_score": None},
                    "consistency": {"score": 2 if preferred else 8, "mean_score": None, "expected_score": None},
                    "perceptual_quality": {"score": 5, "mean_score": None, "expected_score": None}}
            lines.append({"key": key, "score": 6 if preferred else 4, "mean_score": None, "expected_score": None,
                          "error": None, "dimensions": dims})
    preds = tmp_path / "scores.jsonl"
    preds.write_text("".join(json.dumps(line) + "\n" for line in {json.dumps(x): x for x in lines}.values()))
    assert main(["bench", "editscore", "--root", str(root), "--predictions", str(preds), "--bootstrap", "0",
                 "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    numbers = report["results"]["score"]["numbers"]
    assert numbers["consistency/micro"] == 0.0 and numbers["prompt_following/micro"] == 1.0
    assert numbers["overall/micro"] == 1.0
    assert report["dimensions"]["compared_by"] == {"overall": "judge overall", "consistency": "judge dimension "
                                                   "consistency", "prompt_following": "judge dimension prompt_following"}
    assert "each pair compared by the judge's answer under the benchmark's dimension" in (
        tmp_path / "out" / "bench.md").read_text()
    # the same scores without their dimensions: a one-score judge, its one score on every pair, said so
    for line in lines:
        del line["dimensions"]
    preds.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["bench", "editscore", "--root", str(root), "--predictions", str(preds), "--bootstrap", "0",
                 "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "bench.json").read_text())
    assert one["results"]["score"]["numbers"]["consistency/micro"] == 1.0
    assert "a one-score judge: its one score compares every pair" in one["dimensions"]["note"]
