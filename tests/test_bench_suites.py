"""Each suite reader on fixture files written here in the benchmark's published layout, malformed items included."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from editjudge.bench.suites import SuiteError, read_editscore, read_genai, read_imagenhub, read_ours, read_tiger

COLORS = ["red", "green", "blue", "white", "black", "yellow", "gray", "orange", "purple", "pink"]


def png(color: str, size: tuple[int, int] = (96, 96)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(folder: Path, names: list[str]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate(names):
        (folder / f"{name}.png").write_bytes(png(COLORS[i % len(COLORS)]))
        out[name] = str(folder / f"{name}.png")
    return out


def write_tiger(root: Path, *, malformed: bool = False) -> Path:
    """EditReward_Bench_{2,3,4}pair.json as TIGER's eval_bench.py reads them. The 2-pair item and the first 3-pair
    item share a source, an instruction and candidate c1 (judged once). Paths are absolute, as in TIGER's files."""
    img = write_images(root / "images", ["src", "c1", "c2", "c3", "c4", "src2"])
    two = [{"prompt": "make it blue", "path_src": img["src"], "paths_generated": [img["c1"], img["c2"]],
            "human_vote": {"ranking": "A>B"}},
           {"prompt": "make it red", "path_src": img["src2"], "paths_generated": [img["c3"], img["c4"]],
            "human_vote": {"ranking": "A=B=Good"}}]
    three = [{"prompt": "make it blue", "path_src": img["src"], "paths_generated": [img["c1"], img["c3"], img["c4"]],
              "human_vote": {"ranking": "C>A>B"}}]
    four = [{"prompt": "add a hat", "path_src": img["src2"],
             "paths_generated": [img["c1"], img["c2"], img["c3"], img["c4"]], "human_vote": {"ranking": "B>A>D>C"}}]
    if malformed:
        two.append({"prompt": "x", "path_src": img["src"], "paths_generated": [img["c1"], str(root / "gone.png")],
                    "human_vote": {"ranking": "A>B"}})
        three.append({"prompt": "y", "path_src": img["src"], "paths_generated": [img["c1"], img["c2"], img["c3"]],
                      "human_vote": {"ranking": "A>>B>C"}})
        three.append("not an object")
        four.append({"prompt": "z", "path_src": img["src"], "paths_generated": [img["c1"], img["c2"], img["c3"], img["c4"]]})
    for name, data in (("2pair", two), ("3pair", three), ("4pair", four)):
        (root / f"EditReward_Bench_{name}.json").write_text(json.dumps(data))
    return root


def test_tiger_reader(tmp_path: Path) -> None:
    suite = read_tiger(write_tiger(tmp_path, malformed=True))
    assert [i.id for i in suite.items] == ["2pair:0", "2pair:1", "3pair:0", "4pair:0"]
    three = suite.items[2]
    assert three.truth == (-1.0, -2.0, -0.0) and three.subset == "3pair" and len(three.candidates) == 3
    assert suite.items[1].truth == (-0.0, -0.0)
    reasons = {(f.id, f.reason, f.n_pairs) for f in suite.failed}
    assert reasons == {("2pair:2", "missing_image", 1), ("3pair:1", "unknown_ranking", 3),
                       ("3pair:2", "malformed_item", 3), ("4pair:1", "malformed_item", 6)}
    assert "gone.png" in next(f.detail for f in suite.failed if f.reason == "missing_image")


def test_tiger_images_found_by_name_under_the_root(tmp_path: Path) -> None:
    write_images(tmp_path / "images", ["s", "a", "b"])
    item = {"prompt": "p", "path_src": "/pfs/elsewhere/s.png", "paths_generated": ["/pfs/x/a.png", "/pfs/x/b.png"],
            "human_vote": {"ranking": "B>A"}}
    (tmp_path / "EditReward_Bench_2pair.json").write_text(json.dumps([item]))
    suite = read_tiger(tmp_path)
    assert not suite.failed and suite.items[0].candidates[1] == str(tmp_path / "images" / "b.png")


def test_wrong_roots_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="EditReward_Bench_2pair.json"):
        read_tiger(tmp_path)
    with pytest.raises(SuiteError, match="parquet"):
        read_editscore(tmp_path)
    with pytest.raises(SuiteError, match="model1_dim1_score"):
        read_genai(tmp_path)
    (tmp_path / "EditReward_Bench_2pair.json").write_text("{not json")
    with pytest.raises(SuiteError, match="not readable JSON"):
        read_tiger(tmp_path)


def write_genai(root: Path) -> Path:
    img = write_images(root, ["s", "a", "b", "c"])
    items = [
        {"prompt": "p1", "path_src": img["s"], "path1": img["a"], "path2": img["b"], "model1_dim1_score": 4, "model2_dim1_score": 2},
        {"prompt": "p2", "path_src": img["s"], "path1": img["b"], "path2": img["c"], "model1_dim1_score": 3, "model2_dim1_score": 3},
        {"prompt": "p3", "path_src": img["s"], "path1": img["a"], "path2": img["c"], "model1_dim1_score": "high", "model2_dim1_score": 3},
        {"prompt": "p4", "path_src": img["s"], "path1": "a.png", "path2": "missing.png", "model1_dim1_score": 1, "model2_dim1_score": 3},
    ]
    (root / "valid_set2_full.json").write_text(json.dumps(items))
    return root


def test_genai_reader(tmp_path: Path) -> None:
    suite = read_genai(write_genai(tmp_path))
    assert [i.truth for i in suite.items] == [(4.0, 2.0), (3.0, 3.0)]
    assert [(f.id, f.reason) for f in suite.failed] == [("2", "malformed_item"), ("3", "missing_image")]


def test_imagenhub_reader(tmp_path: Path) -> None:
    img = write_images(tmp_path, ["s", "a", "b"])
    items = [
        {"instruction": "p", "input_path": img["s"], "output_path": img["a"], "score": 0.5, "model": "m1", "filename": "f1"},
        {"instruction": "p", "input_path": img["s"], "output_path": img["b"], "score": 1.0, "model": "m2"},
        {"instruction": "", "input_path": img["s"], "output_path": img["b"], "score": 1.0, "model": "m2"},
    ]
    (tmp_path / "valid_imagenhub_processed.json").write_text(json.dumps(items))
    suite = read_imagenhub(tmp_path)
    assert [(i.subset, i.truth, len(i.candidates)) for i in suite.items] == [("m1", (0.5,), 1), ("m2", (1.0,), 1)]
    assert [f.reason for f in suite.failed] == ["malformed_item"] and suite.failed[0].n_pairs == 0


def write_editscore(root: Path, *, malformed: bool = False) -> Path:
    """The HF parquet of EditScore/EditReward-Bench: Image cells as {bytes, path}; output_images[0] preferred."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def cell(color: str) -> dict:
        return {"bytes": png(color), "path": None}

    rows = []
    for n, (task, dims) in enumerate([("color_alter", ["overall", "consistency"]), ("subject-add", ["overall"]),
                                      ("extract", ["overall", "prompt_following"])]):
        for dim in dims:  # the same two images under several dimensions: judged once
            rows.append({"key": [f"k{n}a", f"k{n}b"], "instruction": f"edit {n}", "input_image": cell("white"),
                         "output_images": [cell(COLORS[n]), cell(COLORS[n + 3])], "task_type": task, "dimension": dim})
    if malformed:
        rows.append({"key": ["only-one"], "instruction": "x", "input_image": cell("white"),
                     "output_images": [cell("red"), cell("blue")], "task_type": "ps_human", "dimension": "overall"})
        rows.append({"key": ["m1", "m2"], "instruction": "y", "input_image": {"bytes": None, "path": "nowhere.png"},
                     "output_images": [cell("red"), cell("blue")], "task_type": "text_change", "dimension": "overall"})
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "train-00000-of-00001.parquet")
    return root


def test_editscore_reader(tmp_path: Path) -> None:
    suite = read_editscore(write_editscore(tmp_path, malformed=True))
    assert len(suite.items) == 5 and all(i.truth == (1.0, 0.0) for i in suite.items)
    assert {(i.subset, i.dimension) for i in suite.items} >= {("color_alter", "consistency"), ("extract", "prompt_following")}
    assert all(isinstance(c, bytes) for i in suite.items for c in i.candidates)
    assert [(f.reason, f.subset, f.dimension) for f in suite.failed] == [
        ("malformed_item", "ps_human", "overall"), ("missing_image", "text_change", "overall")]


def test_ours_reader_groups_by_source(tmp_path: Path) -> None:
    img = write_images(tmp_path, ["s", "a", "b", "c", "t", "d"])
    lines = [{"source": img["s"], "edited": img[x], "instruction": "go", "score": s} for x, s in (("a", 0.9), ("b", 0.5), ("c", 0.7))]
    lines += [{"source": img["t"], "edited": img["d"], "instruction": "go", "score": 0.1},
              {"source": img["t"], "edited": str(tmp_path / "nope.png"), "instruction": "go", "score": 0.2}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    suite = read_ours(manifest)
    assert len(suite.items) == 1 and suite.items[0].truth == (0.9, 0.5, 0.7) and suite.items[0].subset == "3-way"
    assert sorted(f.reason for f in suite.failed) == ["missing_edited", "single_candidate"]


def test_tiger_hugging_face_layout_rebuilds_rankings(tmp_path: Path) -> None:
    """TIGER-Lab/EditReward-Bench on the Hub: one row per comparison (inference_{2,3}pair_hf.py's columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def cell(color: str) -> dict:
        return {"bytes": png(color), "path": None}

    def row(rid, subset, kind, c1, c2, ranking):
        return {"id": rid, "instruction": "edit", "source_image": cell("white"), "candidate_1": cell(c1),
                "candidate_2": cell(c2), "ranking": ranking, "comparison_type": kind, "dataset": subset}

    rows = [row("p1", "2pair", "AvsB", "red", "blue", "A=B"),
            row("t1_0", "3pair", "AvsB", "red", "blue", "A>B"), row("t1_1", "3pair", "AvsC", "red", "green", "C>A"),
            row("t1_2", "3pair", "BvsC", "blue", "green", "C>B"),
            row("t2_0", "3pair", "AvsB", "red", "blue", "A>B"), row("t2_1", "3pair", "AvsC", "red", "green", "C>A"),
            row("t2_2", "3pair", "BvsC", "blue", "green", "B>C"),  # a cycle: no ranking explains it
            row("p2", "2pair", "AvsB", "red", "blue", "A>>B")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    suite = read_tiger(tmp_path)
    got = {i.id: (i.truth, i.extra["ranking"]) for i in suite.items}
    assert got == {"2pair:p1": ((-0.0, -0.0), "A=B"), "3pair:t1": ((-1.0, -2.0, -0.0), "C>A>B")}
    assert {(f.id, f.reason, f.n_pairs) for f in suite.failed} == {("3pair:t2", "unknown_ranking", 3),
                                                                  ("2pair:p2", "unknown_ranking", 1)}


def test_editscore_reader_reads_datasets_arrow_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(write_editscore(tmp_path / "pq") / "data" / "train-00000-of-00001.parquet")
    (tmp_path / "arrow").mkdir()
    with pa.OSFile(str(tmp_path / "arrow" / "data-00000-of-00001.arrow"), "wb") as sink:  # datasets' stream format
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    assert [i.id for i in read_editscore(tmp_path / "arrow").items] == [i.id for i in read_editscore(tmp_path / "pq").items]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.arrow").write_bytes(b"not arrow")
    with pytest.raises(SuiteError, match="not a readable arrow table"):
        read_editscore(tmp_path / "bad")


def test_ours_reader_on_a_prepared_parquet_fails_bad_rows_alone(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def row(i, group, score, images=2, instruction="go"):
        return {"images": [{"bytes": png(COLORS[i])} for _ in range(images)],
                "reward_model": {"style": "rule", "ground_truth": "5"},
                "extra_info": {"index": i, "instruction": instruction, "group": group, "score": score}}

    rows = [row(0, "image:a", 0.9), row(1, "image:a", 0.4), row(2, "image:a", None), row(3, "image:b", 0.5, images=1),
            row(4, "image:b", 0.2, instruction=" "), row(5, "image:c", 0.3), row(6, "image:c", 0.8)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    suite = read_ours(tmp_path / "test.parquet")
    # a group with a row lacking extra_info.score is ordered by the 0-9 labels (all "5" here), never a mix
    assert sorted((i.group, i.truth) for i in suite.items) == [("image:a", (5.0, 5.0, 5.0)), ("image:c", (0.3, 0.8))]
    assert sorted((f.id, f.reason) for f in suite.failed) == [("3", "missing_image"), ("4", "malformed_item")]
    (tmp_path / "other.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(SuiteError, match="not a readable parquet table"):
        read_ours(tmp_path / "other.parquet")


def test_a_lone_surrogate_fails_its_item_only(tmp_path: Path) -> None:
    """A \\udXXX escape that makes no pair (no UTF-8 output could hold it) fails the item that holds it."""
    root = write_genai(tmp_path / "genai")
    items = json.loads((root / "valid_set2_full.json").read_text())
    items.append({**items[0], "prompt": "make it \ud800 blue"})
    items.append({**items[0], "path1": "a\udcff.png"})
    items.append({**items[0], "prompt": "add a \U0001F600"})  # an escaped pair is text
    (root / "valid_set2_full.json").write_text(json.dumps(items))
    suite = read_genai(root)
    assert [(f.id, f.reason) for f in suite.failed] == [("2", "malformed_item"), ("3", "missing_image"),
                                                        ("4", "malformed_item"), ("5", "malformed_item")]
    assert len(suite.items) == 3 and "lone surrogate" in suite.failed[2].detail
    tiger = write_tiger(tmp_path / "tiger")
    two = json.loads((tiger / "EditReward_Bench_2pair.json").read_text())
    two.append({**two[0], "prompt": "x \udfff"})
    (tiger / "EditReward_Bench_2pair.json").write_text(json.dumps(two))
    assert ("2pair:2", "malformed_item") in {(f.id, f.reason) for f in read_tiger(tiger).failed}
