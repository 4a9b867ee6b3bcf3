"""`best-of-n --folder` ranks the groups the input names (seed-layout stems, a `group`), never two sources under one
name, ends with a summary line, and shows expected scores to the decimals that break its ties."""

from __future__ import annotations

from pathlib import Path

import pytest

from _judge_models import build_answering_model
from editjudge.cli import main
from editjudge.data import labels as lbl
from editjudge.data.files import read_file
from editjudge.data.sources import EditRecord, read_sources, stem_groups
from editjudge.judge.cli_best_of_n import expected_decimals, ranking_table, summary_line
from editjudge.synthetic import write_synthetic_edits


def test_stems_name_groups_only_when_several_share_a_name() -> None:
    assert stem_groups(["sub/s00001_c00", "sub/s00001_c01", "s00002_c00", "lonely"]) == \
        ["sub/s00001", "sub/s00001", "s00002", None]
    assert stem_groups(["0001", "0002", "photo_a"]) is None  # no two stems share a name: the folder names no groups


def test_expected_scores_show_the_decimals_that_break_a_tie() -> None:
    tied = [{"score": 7, "expected_score": 6.81234}, {"score": 7, "expected_score": 6.81229},
            {"score": 3, "expected_score": 3.1}]
    assert expected_decimals(tied) == 5
    ranking = {"candidates": [{"rank": i + 1, "candidate": f"c{i}", "error": None, **c} for i, c in enumerate(tied)]}
    table = ranking_table(ranking)
    assert "6.81234" in table and "6.81229" in table
    assert expected_decimals([{"score": 7, "expected_score": 6.8}, {"score": 3, "expected_score": 3.1}]) == 3


def test_summary_line_counts_rankings_candidates_and_oracle_picks() -> None:
    rankings = [{"best": "a", "candidates": [1, 2], "oracle": {"picked_oracle": True, "regret": 0.0}},
                {"best": "b", "candidates": [1, 2, 3], "oracle": {"picked_oracle": False, "regret": 0.2}},
                {"best": None, "candidates": [1], "oracle": None}]
    line = summary_line(rankings, "group names (6 edits)")
    assert line == ("best-of-n: 3 ranking(s) of 6 candidate(s) (groups: group names (6 edits)); 2 with a pick; the "
                    "pick was the oracle's in 1 of 2 ranking(s) with known scores (50%), mean regret 0.1")


@pytest.mark.slow  # judges 24 edits with the tiny model
def test_flat_pictures_the_picture_rule_merges_stay_apart(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=12, candidates_per_source=2, seed=3, size=64,
                                  task="red_square").out_dir
    records = [r for r in read_sources(str(edits), require_score=False) if isinstance(r, EditRecord)]
    pictures = lbl.group_keys([None] * len(records), [lbl.picture_hash(read_file(r.source_path)) for r in records])
    assert len(set(pictures)) < 12  # the precondition: the perceptual rule alone merges two of these sources

    model = build_answering_model(tiny_model_dir, tmp_path / "answering")
    out = tmp_path / "rankings.json"
    assert main(["best-of-n", "--model", str(model), "--max-new-tokens", "12", "--device", "cpu", "--folder",
                 str(edits), "--out", str(out)]) == 0
    import json

    rankings = json.loads(out.read_text())
    assert len(rankings) == 12
    for ranking in rankings:  # one source per ranking: its candidates' stems share the source's name
        assert len({c["id"].rsplit("_", 1)[0] for c in ranking["candidates"]}) == 1
        assert len(ranking["candidates"]) == 2
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("best-of-n: 12 ranking(s) of 24 candidate(s) (groups: stem names + source "
                                  "picture (24 edits)); 12 with a pick; the pick was the oracle's in ")
