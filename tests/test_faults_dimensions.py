"""The fault suite, dimension data: hostile multi-score rows for ``prepare --dimensions``, each under a timeout.

As in ``test_faults.py``: every case writes one good edit and one hostile one (a seed folder, a JSONL or a CSV
manifest), runs ``prepare --dimensions follow_preserve`` twice and checks: no crash, no hang, ``found == kept +
rejected``, the hostile sample rejected with its named reason (or kept, where it is fine), the good one kept, and
byte-identical outputs on the rerun. Data-set-level faults (a dimension with one value for every row) stop the run
with a message naming the dimension and the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_faults import GOOD_ROW, Case, _folder, _images, _manifest, _sample

from editjudge.data.prepare import PrepareConfig, prepare

GOOD_SCORES = {"following": 0.7, "preservation": 0.4}
DIM_ROW = {k: v for k, v in GOOD_ROW.items() if k != "score"} | {"scores": GOOD_SCORES}


def _dims_folder(tmp: Path, score: str) -> tuple[Path, str]:
    folder = tmp / "edits"
    _sample(folder, "good", score=json.dumps(GOOD_SCORES))
    _sample(folder, "bad", score=score)
    return folder, "bad"


def _dims_manifest(tmp: Path, line: str | dict) -> tuple[Path, str]:
    _images(tmp)
    path = tmp / "m.jsonl"
    raw = json.dumps(line) if isinstance(line, dict) else line
    path.write_text(json.dumps(DIM_ROW) + "\n" + raw + "\n")
    return path, "m.jsonl:2"


def _row(**changes: Any) -> dict:
    return {**DIM_ROW, "instruction": "make the grass greener", **changes}


def _dims_csv(tmp: Path, header: str, cells: str) -> tuple[Path, str]:
    _images(tmp)
    path = tmp / "m.csv"
    path.write_text(f"source,edited,instruction,{header}\nimg/s.jpg,img/e.jpg,make the sky warmer,0.7,0.4\n"
                    f"img/s.jpg,img/e.jpg,other,{cells}\n")
    return path, "m.csv:3"


MANY = {f"d{i}": 0.5 for i in range(10_000)}

CASES = [
    # seed-layout folders: several keys in <stem>_score.json
    Case("sidecar_unknown_dimension", lambda t: _dims_folder(t, json.dumps({"following": 0.7, "quality": 0.2})),
         "unknown_dimension"),
    Case("sidecar_nan_dimension", lambda t: _dims_folder(t, '{"following": NaN, "preservation": 0.4}'),
         "non_finite_score"),
    Case("sidecar_infinite_dimension", lambda t: _dims_folder(t, '{"following": -Infinity, "preservation": 0.4}'),
         "non_finite_score"),
    Case("sidecar_text_dimension", lambda t: _dims_folder(t, json.dumps({"following": "high", "preservation": 1})),
         "non_numeric_score"),
    Case("sidecar_10000_dimensions", lambda t: _dims_folder(t, json.dumps(MANY)), "too_many_dimensions"),
    Case("sidecar_single_score_only", lambda t: _dims_folder(t, json.dumps({"score": 0.7})), "no_dimension_scores"),
    Case("sidecar_scores_not_an_object", lambda t: _dims_folder(t, json.dumps({"scores": [0.7, 0.4]})),
         "malformed_scores"),
    Case("sidecar_missing_dimension_kept", lambda t: _dims_folder(t, json.dumps({"following": 0.7})), None),
    Case("sidecar_missing_dimension_rejected", lambda t: _dims_folder(t, json.dumps({"following": 0.7})),
         "missing_dimension", {"missing_dimension": "reject"}),
    Case("sidecar_score_beside_dimensions_is_fine",
         lambda t: _dims_folder(t, json.dumps({"score": 0.5, **GOOD_SCORES})), None),
    Case("sidecar_bad_single_score_beside_dimensions",
         lambda t: _dims_folder(t, json.dumps({"score": "high", **GOOD_SCORES})), "non_numeric_score"),
    # JSONL manifests
    Case("manifest_unknown_dimension", lambda t: _dims_manifest(t, _row(scores={"follow": 0.1})), "unknown_dimension"),
    Case("manifest_bool_dimension", lambda t: _dims_manifest(t, _row(scores={"following": True})), "non_numeric_score"),
    Case("manifest_list_dimension", lambda t: _dims_manifest(t, _row(scores={"following": [1]})), "non_numeric_score"),
    Case("manifest_nested_dimension", lambda t: _dims_manifest(t, _row(scores={"following": {"a": 1}})),
         "non_numeric_score"),
    Case("manifest_400_digit_dimension",
         lambda t: _dims_manifest(t, json.dumps(_row(scores={}))[:-3] + '{"following": ' + "9" * 400 + "}}"),
         "non_finite_score"),
    Case("manifest_10000_dimensions", lambda t: _dims_manifest(t, _row(scores=MANY)), "too_many_dimensions"),
    Case("manifest_10000_score_columns", lambda t: _dims_manifest(t, {**_row(scores=None), **{
        f"score_d{i}": 1 for i in range(10_000)}}), "too_many_dimensions"),
    Case("manifest_empty_dimension_name", lambda t: _dims_manifest(t, _row(scores={"": 0.5})), "malformed_scores"),
    Case("manifest_scores_a_string", lambda t: _dims_manifest(t, _row(scores="following=0.7")), "malformed_scores"),
    Case("manifest_scores_empty", lambda t: _dims_manifest(t, _row(scores={})), "no_dimension_scores"),
    Case("manifest_single_score_row", lambda t: _dims_manifest(t, {**_row(scores=None), "score": 0.7}),
         "no_dimension_scores"),
    Case("manifest_dimension_twice", lambda t: _dims_manifest(t, _row(score_following=0.3)), "ambiguous_scores"),
    Case("manifest_all_null_dimensions",
         lambda t: _dims_manifest(t, _row(scores={"following": None, "preservation": None})), "no_dimension_scores"),
    Case("manifest_scores_nested_deep", lambda t: _dims_manifest(t, json.dumps(_row(scores={}))[:-3] + "[" * 100_000),
         "malformed_manifest_row"),
    Case("manifest_columns_instead_of_object_are_fine",
         lambda t: _dims_manifest(t, {**_row(scores=None), "score_following": 0.2, "score_preservation": 0.9}), None),
    # CSV manifests: score_<dimension> columns, or a scores cell holding JSON
    Case("csv_text_dimension", lambda t: _dims_csv(t, "score_following,score_preservation", "high,0.4"),
         "non_numeric_score"),
    Case("csv_blank_dimension_is_unlabelled", lambda t: _dims_csv(t, "score_following,score_preservation", ",0.4"),
         None),
    Case("csv_nan_dimension", lambda t: _dims_csv(t, "score_following,score_preservation", "nan,0.4"),
         "non_finite_score"),
]


def _run(inputs: Path, out: Path, extra: dict[str, Any]):
    config = PrepareConfig(inputs=(str(inputs),), out_dir=str(out), workers=1, progress=False, train_split=1.0,
                           score_median=0.5, score_mad=0.2, format="dimensions:follow_preserve", **extra)
    return prepare(config)


def _rejects(path: Path) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_dimension_input(case: Case, tmp_path: Path, time_limit) -> None:
    inputs, bad_id = case.build(tmp_path)
    first = _run(inputs, tmp_path / "out1", case.config)
    counts = first.report["counts"]
    rejects = _rejects(first.rejects_path)
    rows = pq.read_table(first.train_path).to_pylist() + pq.read_table(first.test_path).to_pylist()
    kept = [r["extra_info"]["id"] for r in rows]
    assert counts["found"] == counts["kept"] + counts["rejected"] == len(kept) + len(rejects)
    if case.reason is None:
        assert bad_id in kept, rejects
    else:
        assert rejects.get(bad_id) == case.reason, rejects
    assert counts["kept"] >= 1 and {r["data_source"] for r in rows} == {"editjudge_dimensions"}
    details = [json.loads(line)["detail"] for line in first.rejects_path.read_text(encoding="utf-8").splitlines()]
    assert all(len(d) < 2000 for d in details)  # 10,000 names are counted, not listed
    again = _run(inputs, tmp_path / "out2", case.config)
    for name in ("train.parquet", "test.parquet", "rejects.jsonl"):
        assert (first.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name


def test_a_dimension_with_one_value_for_every_row_stops_the_run_naming_it(tmp_path: Path) -> None:
    _images(tmp_path)
    rows = [{**DIM_ROW, "instruction": f"edit {i}", "group": f"g{i}", "scores": {"following": i / 10,
                                                                                 "preservation": 0.4}}
            for i in range(6)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, "-m", "editjudge.cli", "prepare", str(tmp_path / "m.jsonl"), "-o",
                          str(tmp_path / "p"), "--dimensions", "follow_preserve", "--workers", "1", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "dimension 'preservation'" in out.stderr and "median absolute deviation of 0" in out.stderr
    assert "--dimension-mad preservation=D" in out.stderr and not (tmp_path / "p" / "train.parquet").exists()


def test_bad_dimension_flags_are_usage_errors(tmp_path: Path) -> None:
    _images(tmp_path)
    (tmp_path / "m.jsonl").write_text(json.dumps(DIM_ROW) + "\n")
    for flags, message in [(["--dimensions", "nope"], "unknown dimension set 'nope'"),
                           (["--dimensions", "follow_preserve", "--dimension-mad", "following"], "NAME=NUMBER"),
                           (["--dimensions", "follow_preserve", "--dimension-mad", "following=nan"], "NAME=NUMBER"),
                           (["--dimensions", "follow_preserve", "--dimension-median", "quality=1",
                             "--dimension-mad", "quality=1"], "not dimensions of"),
                           (["--dimensions", "follow_preserve", "--dimension-mad", "following=0.1"],
                            "give its median and MAD together"),
                           (["--dimensions", "follow_preserve", "--dimension-median", "following=0",
                             "--dimension-mad", "following=0"], "the MAD must be positive")]:
        out = subprocess.run([sys.executable, "-m", "editjudge.cli", "prepare", str(tmp_path / "m.jsonl"), "-o",
                              str(tmp_path / "p"), "--workers", "1", "-q", "--force", *flags],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr, (flags, out.stderr)


def test_the_dimension_suite_covers_the_issue_s_cases() -> None:
    names = {c.name for c in CASES}
    assert len(names) == len(CASES) >= 25
    for needle in ("unknown_dimension", "nan", "text", "10000", "single_score"):
        assert any(needle in n for n in names), needle
