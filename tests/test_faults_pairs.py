"""The fault suite, pairwise and multi-source: hostile preference records and edits of several source images.

Each case writes good pairs plus a hostile input, runs ``prepare --pairs`` (or ``prepare`` for multi-source edits)
twice under a timeout and checks: no crash or hang, ``found == kept + rejected``, the hostile record rejected with
its named reason (or kept where that is right), the good ones kept, and byte-identical outputs on the rerun.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editjudge.data.prepare import PrepareConfig, prepare

CASE_SECONDS = 30  # conftest's time_limit fixture: a hang fails the case


def _image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    small.resize((64, 64), Image.Resampling.BICUBIC).save(path, format="PNG")
    return path


def _pref(source, a, b, preferred="a", **extra) -> dict:
    return {"source": source if isinstance(source, list) else str(source), "edited_a": str(a), "edited_b": str(b),
            "instruction": "make it red", "preferred": preferred, **extra}


def _run(tmp_path: Path, lines: list[dict], name: str = "prefs.jsonl", pairwise: bool = True, **options) -> dict:
    manifest = tmp_path / name
    tmp_path.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    outputs = []
    for run in ("a", "b"):
        result = prepare(PrepareConfig(inputs=(str(manifest),), out_dir=str(tmp_path / run), workers=1,
                                       progress=False, train_split=1.0, format="pairwise" if pairwise else "pointwise",
                                       **options))
        outputs.append(result)
    for file in ("train.parquet", "test.parquet", "rejects.jsonl"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    report = outputs[0].report
    counts = report["counts"]
    assert counts["kept"] + counts["rejected"] == counts["found"]
    rejects = [json.loads(line) for line in (tmp_path / "a" / "rejects.jsonl").read_text().splitlines()]
    return {"report": report, "rejects": {r["id"]: r for r in rejects}}


@pytest.fixture
def pics(tmp_path):
    return {name: _image(tmp_path / "img" / f"{name}.png", seed)
            for seed, name in enumerate(["s1", "s2", "a1", "b1", "a2", "b2", "c2"])}


def test_contradictory_preferences_reject_every_record_of_the_pair(tmp_path, time_limit, pics) -> None:
    lines = [_pref(pics["s1"], pics["a1"], pics["b1"], "a", id="good"),
             _pref(pics["s2"], pics["a2"], pics["b2"], "a", id="first"),
             _pref(pics["s2"], pics["b2"], pics["a2"], "a", id="reversed"),  # says b2 > a2: contradicts "first"
             _pref(pics["s2"], pics["a2"], pics["c2"], "tie", id="fine")]
    out = _run(tmp_path, lines)
    assert out["rejects"]["first"]["reason"] == out["rejects"]["reversed"]["reason"] == "contradictory_preference"
    assert "good" not in out["rejects"] and "fine" not in out["rejects"]
    assert out["report"]["counts"]["kept"] == 2


def test_a_repeated_preference_is_a_duplicate_and_a_swapped_one_agrees(tmp_path, time_limit, pics) -> None:
    lines = [_pref(pics["s1"], pics["a1"], pics["b1"], "a", id="one"),
             _pref(pics["s1"], pics["b1"], pics["a1"], "b", id="same-swapped")]
    out = _run(tmp_path, lines)
    assert out["rejects"]["same-swapped"]["reason"] == "duplicate" and "one" not in out["rejects"]


def test_a_candidate_of_another_source_is_a_pair_across_groups(tmp_path, time_limit, pics) -> None:
    lines = [_pref(pics["s1"], pics["a1"], pics["b1"], id="home"),
             _pref(pics["s2"], pics["a1"], pics["a2"], id="stray")]  # a1 is an edit of s1
    out = _run(tmp_path, lines)
    assert out["rejects"]["stray"]["reason"] == "pair_across_groups" and "'home'" in out["rejects"]["stray"]["detail"]


def test_a_candidate_that_is_the_source_file_is_refused_but_a_copy_is_kept(tmp_path, time_limit, pics) -> None:
    copy = tmp_path / "img" / "copy_of_s1.png"
    copy.write_bytes(pics["s1"].read_bytes())
    lines = [_pref(pics["s1"], pics["s1"], pics["b1"], id="self"),
             _pref(pics["s1"], copy, pics["b1"], "b", id="unchanged")]  # an unchanged edit is a real candidate
    out = _run(tmp_path, lines)
    assert out["rejects"]["self"]["reason"] == "candidate_is_source" and "unchanged" not in out["rejects"]


def test_the_same_candidate_twice_and_bad_preferences_get_their_reasons(tmp_path, time_limit, pics) -> None:
    lines = [_pref(pics["s1"], pics["a1"], pics["a1"], id="twice"),
             _pref(pics["s1"], pics["a1"], pics["b1"], "better", id="word"),
             {"prompt": "make it red", "path_src": str(pics["s2"]), "path1": str(pics["a2"]),
              "path2": str(pics["b2"]), "tie_case": "maybe", "id": "tiger-bad"},
             {"prompt": "make it red", "path_src": str(pics["s2"]), "path1": str(pics["a2"]),
              "path2": str(pics["b2"]), "tie_case": False, "id": "tiger-good"}]
    out = _run(tmp_path, lines)
    assert out["rejects"]["twice"]["reason"] == "identical_candidates"
    assert out["rejects"]["word"]["reason"] == out["rejects"]["tiger-bad"]["reason"] == "bad_preference"
    assert "tiger-good" not in out["rejects"]


def test_a_missing_image_among_several_sources_names_which(tmp_path, time_limit, pics) -> None:
    sources = [str(pics["s1"]), str(tmp_path / "img" / "nope.png"), str(pics["s2"])]
    lines = [_pref(sources, pics["a1"], pics["b1"], id="hole"), _pref(pics["s2"], pics["a2"], pics["b2"], id="ok")]
    out = _run(tmp_path, lines)
    assert out["rejects"]["hole"]["reason"] == "missing_source" and "source 2" in out["rejects"]["hole"]["detail"]


def test_a_hundred_sources_are_too_many_images_without_opening_them(tmp_path, time_limit, pics) -> None:
    many = [str(tmp_path / "img" / f"absent_{i}.png") for i in range(100)]  # never opened: refused by count
    lines = [_pref(many, pics["a1"], pics["b1"], id="hundred"), _pref(pics["s2"], pics["a2"], pics["b2"], id="ok")]
    out = _run(tmp_path, lines)
    assert out["rejects"]["hundred"]["reason"] == "too_many_images" and "100 source images" in out["rejects"]["hundred"]["detail"]
    edits = [{"source": many, "edited": str(pics["a1"]), "instruction": "merge them", "score": 0.5, "id": "wide"},
             {"source": str(pics["s1"]), "edited": str(pics["b1"]), "instruction": "x", "score": 0.5, "id": "ok"},
             {"source": str(pics["s2"]), "edited": str(pics["b2"]), "instruction": "x", "score": 0.7, "id": "ok2"}]
    out = _run(tmp_path / "pointwise", edits, "edits.jsonl", pairwise=False, score_median=0.6, score_mad=0.1)
    assert out["rejects"]["wide"]["reason"] == "too_many_images"


def test_fifteen_sources_fit_a_pointwise_prompt_but_not_a_pair(tmp_path, time_limit, pics) -> None:
    sources = [str(_image(tmp_path / "img" / f"m{i}.png", 100 + i)) for i in range(15)]
    line = [{"source": sources, "edited": str(pics["a1"]), "instruction": "merge", "score": 0.5, "id": "fifteen"},
            {"source": sources, "edited": str(pics["b1"]), "instruction": "merge", "score": 0.9, "id": "other"}]
    pointwise = _run(tmp_path / "p", line, "m.jsonl", pairwise=False, score_median=0.7, score_mad=0.1,
                     max_prompt_length=4096)
    assert pointwise["report"]["counts"]["kept"] == 2
    pairs = _run(tmp_path / "q", line, "m.jsonl", score_median=0.7, score_mad=0.1, max_prompt_length=4096)
    assert {r["reason"] for r in pairs["rejects"].values()} == {"too_many_images"}


def test_a_numbered_folder_with_a_gap_or_a_clash_is_named(tmp_path, time_limit, pics) -> None:
    folder = tmp_path / "seed"
    for stem, numbers in (("gap", [1, 3]), ("clash", [None, 1]), ("good", [1, 2])):
        for n in numbers:
            name = f"{stem}_input.png" if n is None else f"{stem}_input_{n}.png"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(pics["s1"].read_bytes() if n != 2 else pics["s2"].read_bytes())
        (folder / f"{stem}_output.png").write_bytes(pics["a1"].read_bytes())
        (folder / f"{stem}_meta.json").write_text(json.dumps({"instruction": "merge"}))
        (folder / f"{stem}_score.json").write_text(json.dumps({"score": 0.5}))
    result = prepare(PrepareConfig(inputs=(str(folder),), out_dir=str(tmp_path / "o"), workers=1, progress=False,
                                   train_split=1.0, score_median=0.5, score_mad=0.1))
    rejects = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()}
    assert rejects["gap"]["reason"] == "missing_source" and "_input_2" in rejects["gap"]["detail"]
    assert rejects["clash"]["reason"] == "ambiguous_files" and result.report["counts"]["kept"] == 1


def test_a_preference_file_that_is_not_a_list_is_refused(tmp_path, time_limit) -> None:
    bad = tmp_path / "train.json"
    bad.write_text(json.dumps({"prompt": "x"}))
    with pytest.raises(ValueError, match="JSON list of preference records"):
        prepare(PrepareConfig(inputs=(str(bad),), out_dir=str(tmp_path / "o"), format="pairwise", workers=1,
                              progress=False))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="not a readable JSON list"):
        prepare(PrepareConfig(inputs=(str(deep),), out_dir=str(tmp_path / "o2"), format="pairwise", workers=1,
                              progress=False))


def test_pairs_of_scored_candidates_with_equal_bytes_are_not_made(tmp_path, time_limit, pics) -> None:
    twin = tmp_path / "img" / "twin.png"
    twin.write_bytes(pics["a1"].read_bytes())
    edits = [{"source": str(pics["s1"]), "edited": str(p), "instruction": "x", "score": s, "id": i}
             for p, s, i in ((pics["a1"], 0.5, "e1"), (twin, 0.9, "e2"), (pics["b1"], 0.7, "e3"))]
    out = _run(tmp_path, edits, "edits.jsonl", score_median=0.7, score_mad=0.1)
    assert out["report"]["pairs"]["skipped_pairs"] == {"identical_candidates": 1}
    assert out["report"]["pairs"]["train"]["pairs"] == 2 and out["report"]["counts"]["kept"] == 3


def test_a_lone_surrogate_rejects_its_record_only(tmp_path, time_limit, pics) -> None:
    """A \\udXXX escape that makes no pair is not text: its record is named, in a manifest and in a JSON list."""
    lines = [_pref(pics["s1"], pics["a1"], pics["b1"], id="good"),
             _pref(pics["s2"], pics["a2"], pics["b2"], id="bad", instruction="make it \ud800 red")]
    out = _run(tmp_path / "jsonl", lines)
    assert out["rejects"]["prefs.jsonl:2"]["reason"] == "malformed_manifest_row"
    assert "good" not in out["rejects"] and out["report"]["counts"]["kept"] == 1
    tiger = [{"path_src": str(pics["s1"]), "path1": str(pics["a1"]), "path2": str(pics["b1"]), "prompt": "make it red"},
             {"path_src": str(pics["s2"]), "path1": str(pics["a2"]), "path2": str(pics["b2"]), "prompt": "x \udfff"}]
    listed = tmp_path / "list" / "train.json"
    listed.parent.mkdir(parents=True)
    listed.write_text(json.dumps(tiger))
    result = prepare(PrepareConfig(inputs=(str(listed),), out_dir=str(tmp_path / "list" / "o"), format="pairwise",
                                   workers=1, progress=False, train_split=1.0))
    rejects = {r["id"]: r["reason"] for r in map(json.loads, result.rejects_path.read_text().splitlines())}
    assert rejects.get("train.json:2") == "malformed_manifest_row", rejects
    assert result.report["counts"]["kept"] == 1
