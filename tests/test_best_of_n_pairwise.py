"""``editjudge best-of-n --pairwise knockout|round-robin`` end to end on a tiny judge taught the pairwise answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

from PIL import Image  # noqa: E402

from _pair_models import INSTRUCTION, build_pair_answering_model  # noqa: E402
from editjudge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def pair_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pair_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-pair-answering-model")


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("pair-candidates")
    source = folder / "source.png"
    Image.new("RGB", (56, 56), "blue").save(source)
    paths = []
    for k, colour in enumerate(["blue", "blue", "red", "blue"]):  # the one red candidate is the best
        path = folder / f"candidate_{k}.png"
        Image.new("RGB", (56, 56), colour).save(path)
        paths.append(path)
    return source, paths


def _argv(model: Path, source: Path, paths: list[Path], *extra: str) -> list[str]:
    return ["best-of-n", "--model", str(model), "--format", "pairwise", "--template", "demo", "--max-new-tokens",
            "12", "--device", "cpu", "--source", str(source), "--candidates", *map(str, paths), "--instruction",
            INSTRUCTION, *extra]


@pytest.mark.parametrize("mode, cost", [("knockout", 3), ("round-robin", 6)])
def test_a_tournament_picks_the_red_candidate_and_prints_its_cost(pair_model: Path, candidates, tmp_path: Path,
                                                                  capsys, mode: str, cost: int) -> None:
    source, paths = candidates
    out = tmp_path / "ranking.json"
    assert main(_argv(pair_model, source, paths, "--pairwise", mode, "--out", str(out))) == 0
    printed = capsys.readouterr()
    assert f"{cost} comparison(s) (a pointwise judge: 4 call(s))" in printed.out
    ranking = json.loads(out.read_text())[0]
    assert ranking["best"] == str(paths[2]) and ranking["comparisons"] == cost and ranking["mode"] == mode
    assert len(ranking["matches"]) == cost and [c["rank"] for c in ranking["candidates"]] == [1, 2, 3, 4]


def test_both_orders_doubles_the_cost_and_reports_position_consistency(pair_model: Path, candidates,
                                                                       tmp_path: Path, capsys) -> None:
    source, paths = candidates
    out = tmp_path / "ranking.json"
    assert main(_argv(pair_model, source, paths, "--pairwise", "knockout", "--both-orders", "--out", str(out))) == 0
    ranking = json.loads(out.read_text())[0]
    assert ranking["comparisons"] == 6 and ranking["best"] == str(paths[2])
    assert ranking["position_consistency"] == pytest.approx(1.0)
    assert "position consistency over both orders: 100%" in capsys.readouterr().out


def test_pairwise_asked_of_a_pointwise_judge_is_refused(tiny_model_dir: Path, candidates, capsys) -> None:
    source, paths = candidates
    argv = ["best-of-n", "--model", str(tiny_model_dir), "--max-new-tokens", "4", "--device", "cpu", "--source",
            str(source), "--candidates", *map(str, paths), "--instruction", INSTRUCTION, "--pairwise", "knockout"]
    assert main(argv) == 2
    assert "needs a pairwise judge" in capsys.readouterr().err
