"""prepare --pairs: pair rows inside each split, labels with a tie margin, both orders, a seeded cap, preference
records (ours and TIGER's train.json), edits of several source images, and verl's RLHFDataset on three images."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from editjudge.data.pairs import pair_label
from editjudge.data.prepare import PrepareConfig, prepare
from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits


def _prepare(tmp_path: Path, inputs, **options) -> tuple[dict, list[dict], list[dict]]:
    config = PrepareConfig(inputs=tuple(str(i) for i in inputs), out_dir=str(tmp_path / "out"), format="pairwise",
                           workers=1, progress=False, **options)
    result = prepare(config)
    train = pq.read_table(result.train_path).to_pylist()
    test = pq.read_table(result.test_path).to_pylist()
    return result.report, train, test


def test_pairs_stay_inside_each_split_in_both_orders_with_labels_from_the_margin(tmp_path) -> None:
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=8, candidates_per_source=4, seed=1)
    report, train, test = _prepare(tmp_path, [edits.out_dir], train_split=0.75)
    assert train and test
    for split, rows in (("train", train), ("test", test)):
        groups = {r["extra_info"]["group"] for r in rows}
        assert all(r["extra_info"]["split"] == split for r in rows)
        # two orders per pair, adjacent, labels mirrored
        for first, second in zip(rows[::2], rows[1::2]):
            a, b = first["extra_info"], second["extra_info"]
            assert a["pair"] == b["pair"] and not a["swapped"] and b["swapped"]
            assert (a["a_id"], a["b_id"]) == (b["b_id"], b["a_id"])
            assert {"A": "B", "B": "A", "tie": "tie"}[a["label"]] == b["label"]
            assert a["label"] == pair_label(a["a_label"], a["b_label"], 0)
            assert first["images"][0] == second["images"][0] and first["images"][1] == second["images"][2]
        labels = Counter(r["reward_model"]["ground_truth"] for r in rows)
        assert labels["A"] == labels["B"]  # position balance
        assert report["pairs"][split]["rows"] == len(rows) == 2 * report["pairs"][split]["pairs"]
        other = test if split == "train" else train
        assert not groups & {r["extra_info"]["group"] for r in other}  # no pair, no group, crosses the split
    row = train[0]
    assert row["data_source"] == "editjudge_pairwise" and len(row["images"]) == 3
    assert row["prompt"][1]["content"].count("<image>") == 3
    assert report["settings"]["format"] == "pairwise"
    counts = report["counts"]
    assert counts["kept"] + counts["rejected"] == counts["found"] == 32


def test_the_tie_margin_and_the_cap_are_applied_and_seeded(tmp_path) -> None:
    assert [pair_label(5, 5), pair_label(6, 5), pair_label(4, 6), pair_label(6, 5, 1)] == ["tie", "A", "B", "tie"]
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=3, candidates_per_source=6, seed=2)
    report, train, _ = _prepare(tmp_path / "wide", [edits.out_dir], train_split=1.0, tie_margin=9)
    assert report["pairs"]["train"]["tie"] == report["pairs"]["train"]["rows"] == 3 * 15 * 2
    capped, rows, _ = _prepare(tmp_path / "cap", [edits.out_dir], train_split=1.0, max_pairs_per_source=4)
    assert capped["pairs"]["train"]["pairs"] == 12 and capped["pairs"]["capped_pairs"] == 3 * (15 - 4)
    again, rows_again, _ = _prepare(tmp_path / "cap2", [edits.out_dir], train_split=1.0, max_pairs_per_source=4)
    assert [r["extra_info"]["id"] for r in rows] == [r["extra_info"]["id"] for r in rows_again]
    other, rows_other, _ = _prepare(tmp_path / "cap3", [edits.out_dir], train_split=1.0, max_pairs_per_source=4, seed=7)
    assert {r["extra_info"]["pair"] for r in rows} != {r["extra_info"]["pair"] for r in rows_other}
    unused = {k: v for k, v in capped["rejects_by_reason"].items() if k in ("pairs_capped", "no_pair")}
    assert capped["counts"]["kept"] + sum(unused.values()) == 18


def test_no_ties_keeps_only_pairs_with_a_better_candidate_and_names_what_it_left_out(tmp_path) -> None:
    # red_square: two kinds (labels 1 and 7); 4 candidates per source, 2 of each: 6 pairs, 2 of them ties
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=4, seed=3, task="red_square")
    median, mad = RED_SQUARE_MEDIAN_MAD
    common = {"train_split": 1.0, "score_median": median, "score_mad": mad}
    with_ties, _, _ = _prepare(tmp_path / "ties", [edits.out_dir], **common)
    report, rows, _ = _prepare(tmp_path / "none", [edits.out_dir], ties=False, **common)
    labels = Counter(r["reward_model"]["ground_truth"] for r in rows)
    assert labels["tie"] == 0 and labels["A"] == labels["B"] > 0
    assert report["pairs"]["train"]["rows"] == with_ties["pairs"]["train"]["rows"] - with_ties["pairs"]["train"]["tie"]
    assert report["pairs"]["ties"] is False and report["pairs"]["skipped_pairs"]["tie"] == \
        with_ties["pairs"]["train"]["tie"] // 2
    # every pair a tie (margin 9): every candidate is a reject named tie_left_out; nothing is lost from the count
    wide = write_synthetic_edits(tmp_path / "wide_edits", n_sources=2, candidates_per_source=3, seed=4)
    report, rows, _ = _prepare(tmp_path / "wide", [wide.out_dir], train_split=1.0, tie_margin=9, ties=False)
    assert rows == [] and report["rejects_by_reason"] == {"tie_left_out": 6}
    assert report["counts"] == {**report["counts"], "found": 6, "kept": 0, "rejected": 6}
    # a tie preference record is a named reject, the others are kept
    images = tmp_path / "img"
    src = [_png(images / f"s{i}.png", (10 * i, 90, 200)) for i in range(2)]
    cand = [[_png(images / f"s{i}_{k}.png", (200, 10 * k + 5 * i, 40)) for k in range(2)] for i in range(2)]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"source": str(src[i]), "edited_a": str(cand[i][0]), "edited_b":
                                         str(cand[i][1]), "instruction": "make it red", "preferred": p}) + "\n"
                             for i, p in enumerate(["a", "tie"])))
    report, rows, _ = _prepare(tmp_path / "prefs", [prefs], train_split=1.0, ties=False)
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["A", "B"]
    assert report["counts"] == {**report["counts"], "found": 2, "kept": 1, "rejected": 1}
    assert report["rejects_by_reason"] == {"tie_left_out": 1}


def test_bad_pair_settings_are_refused(tmp_path) -> None:
    for options, match in [({"balanced": True}, "--balanced"), ({"tie_margin": -1}, "--tie-margin"),
                           ({"max_pairs_per_source": 0}, "--max-pairs-per-source")]:
        with pytest.raises(ValueError, match=match):
            _prepare(tmp_path, [tmp_path], **options)


def _png(path: Path, colour) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), colour).save(path)
    return path


def test_preference_records_ours_and_tigers(tmp_path) -> None:
    images = tmp_path / "img"
    sources = [_png(images / f"s{i}.png", (10 * i, 90, 200)) for i in range(4)]
    edits = [[_png(images / f"s{i}_{k}.png", (200, 10 * k + 5 * i, 40)) for k in range(3)] for i in range(4)]
    ours = tmp_path / "prefs.jsonl"
    lines = [{"source": str(sources[i]), "edited_a": str(edits[i][0]), "edited_b": str(edits[i][1]),
              "instruction": "make it red", "preferred": p} for i, p in enumerate(["a", "b", "tie", "A"])]
    ours.write_text("".join(json.dumps(line) + "\n" for line in lines))
    tiger = tmp_path / "tiger" / "train.json"
    tiger.parent.mkdir()
    tiger.write_text(json.dumps([
        {"prompt": "make it red", "choice_dist": None, "path_src": f"../img/s{i}.png", "path1": f"../img/s{i}_2.png",
         "path2": f"../img/s{i}_0.png", "model1": "m1", "model2": "m2", "tie_case": i == 3} for i in range(4)]))
    report, train, test = _prepare(tmp_path, [ours, tiger], train_split=0.5)
    rows = train + test
    assert report["counts"] == {**report["counts"], "found": 8, "kept": 8, "rejected": 0}
    assert len(rows) == 16 and report["labels"]["median"] is None  # no scores: labels come from the records
    truth = {(r["extra_info"]["a_path"].split("/")[-1], r["extra_info"]["b_path"].split("/")[-1]):
             r["reward_model"]["ground_truth"] for r in rows}
    assert truth[("s0_0.png", "s0_1.png")] == "A" and truth[("s0_1.png", "s0_0.png")] == "B"
    assert truth[("s1_0.png", "s1_1.png")] == "B" and truth[("s2_0.png", "s2_1.png")] == "tie"
    assert truth[("s0_2.png", "s0_0.png")] == "A"  # TIGER: path1 is preferred
    assert truth[("s3_2.png", "s3_0.png")] == "tie"  # tie_case true
    assert all(r["extra_info"]["origin"] == "preference" for r in rows)
    groups = {s: {r["extra_info"]["group"] for r in part} for s, part in (("train", train), ("test", test))}
    assert not groups["train"] & groups["test"]


def test_preference_records_with_scored_edits_share_the_split(tmp_path) -> None:
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=2, seed=5, task="red_square")
    first = sorted((tmp_path / "edits").rglob("*_input.jpg"))[0]
    outputs = sorted(first.parent.glob(first.name.split("_c")[0] + "_c*_output.jpg"))
    prefs = tmp_path / "p.csv"
    prefs.write_text("source,edited_a,edited_b,instruction,preferred\n"
                     f"{first},{outputs[0]},{outputs[1]},make the square red,tie\n")
    median, mad = RED_SQUARE_MEDIAN_MAD
    report, train, test = _prepare(tmp_path, [edits.out_dir, prefs], train_split=0.5, score_median=median,
                                   score_mad=mad)
    assert report["counts"]["found"] == 9 and report["counts"]["rejected"] == 0
    origins = Counter(r["extra_info"]["origin"] for r in train + test)
    assert origins == {"scores": 8, "preference": 2}


def test_multi_source_edits_get_one_image_line_per_source_and_join_their_groups(tmp_path) -> None:
    folder = tmp_path / "multi"
    for stem, colours in (("cat", [(200, 30, 30), (30, 200, 30)]), ("dog", [(30, 30, 200), (200, 200, 30)])):
        for k, colour in enumerate(colours, start=1):
            _png(folder / f"{stem}_input_{k}.png", colour)
        _png(folder / f"{stem}_output.png", (90, 90, 90))
        (folder / f"{stem}_meta.json").write_text(json.dumps({"instruction": "put image 2 into image 1"}))
        (folder / f"{stem}_score.json").write_text(json.dumps({"score": 0.9}))
    # a single-source edit of the dog's second picture: it must share the dog's side of the split
    _png(folder / "solo_input.png", (200, 200, 30))
    _png(folder / "solo_output.png", (100, 100, 100))
    (folder / "solo_meta.json").write_text(json.dumps({"instruction": "make it grey"}))
    (folder / "solo_score.json").write_text(json.dumps({"score": 0.8}))
    result = prepare(PrepareConfig(inputs=(str(folder),), out_dir=str(tmp_path / "out"), workers=1, progress=False,
                                   score_median=0.9, score_mad=0.1, train_split=0.5, seed=3))
    rows = pq.read_table(result.train_path).to_pylist() + pq.read_table(result.test_path).to_pylist()
    by_id = {r["extra_info"]["id"]: r for r in rows}
    cat = by_id["cat"]
    assert len(cat["images"]) == 3 and cat["extra_info"]["source_paths"][1].endswith("cat_input_2.png")
    assert "input image 1: <image>\ninput image 2: <image>\nedited image: <image>" in cat["prompt"][1]["content"]
    assert len(cat["extra_info"]["image_tokens"]) == 3
    assert by_id["solo"]["extra_info"]["group"] == by_id["dog"]["extra_info"]["group"]
    assert by_id["solo"]["extra_info"]["split"] == by_id["dog"]["extra_info"]["split"]
    assert by_id["solo"]["extra_info"]["source_paths"] is None  # single-source rows keep the seed's fields


@pytest.mark.slow
def test_three_and_four_image_rows_load_in_verl_rlhf_dataset_with_exact_lengths(tmp_path, tiny_model_dir) -> None:
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from qwen_vl_utils import process_vision_info
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    edits = write_synthetic_edits(tmp_path / "e", n_sources=3, candidates_per_source=3, size=128, seed=4)
    manifest = tmp_path / "multi.jsonl"
    pictures = sorted((tmp_path / "e").rglob("*_input.jpg"))
    outputs = sorted((tmp_path / "e").rglob("*_output.jpg"))
    manifest.write_text("".join(json.dumps({"source": [str(pictures[0]), str(pictures[3])], "edited": str(o),
                                            "instruction": "put image 2 into image 1", "score": 0.7 + 0.1 * k,
                                            "group": "multi"}) + "\n" for k, o in enumerate(outputs[:3])))
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    for name, inputs in (("pairs", [edits.out_dir]), ("multi", [manifest])):
        result = prepare(PrepareConfig(inputs=tuple(map(str, inputs)), out_dir=str(tmp_path / name),
                                       processor=str(tiny_model_dir), format="pairwise", max_prompt_length=360,
                                       train_split=1.0, workers=1, progress=False, score_median=0.9, score_mad=0.1))
        config = OmegaConf.create({"max_prompt_length": 360, "filter_overlong_prompts": True,
                                   "filter_overlong_prompts_workers": None, "cache_dir": str(tmp_path / "cache")})
        dataset = RLHFDataset([str(result.train_path)], processor.tokenizer, config, processor=processor)
        assert len(dataset) == result.report["pairs"]["train"]["rows"] > 0  # verl's own length filter dropped none
        images = 3 if name == "pairs" else 4
        for i in range(len(dataset)):
            row = dataset[i]
            messages = row["raw_prompt"]
            parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
            assert [p["type"] for p in parts].count("image") == images
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            vision, _ = process_vision_info(messages, image_patch_size=14)
            assert len(processor(text=[text], images=vision)["input_ids"][0]) == row["extra_info"]["prompt_tokens"]
            assert row["reward_model"]["ground_truth"] in ("A", "B", "tie")
