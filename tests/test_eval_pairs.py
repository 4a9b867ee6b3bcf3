"""``editjudge eval`` on pair rows (``prepare --pairs``): a pairwise judge directly, a pointwise judge on the same
pairs, and both side by side from their saved records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

from PIL import Image  # noqa: E402

from _judge_models import build_answering_model  # noqa: E402
from _pair_models import INSTRUCTION, build_pair_answering_model  # noqa: E402
from editjudge.cli import main  # noqa: E402
from editjudge.data.prepare import PrepareConfig, prepare  # noqa: E402
from editjudge.evaluate.pair_records import PairRecord, pair_metrics  # noqa: E402

RED, BLUE = (220, 20, 20), (20, 20, 220)


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), colour).save(path)
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pair rows of four sources: red v blue (a), blue v red (b), red v red and blue v blue (ties)."""
    root = tmp_path_factory.mktemp("eval-pairs")
    lines = []
    for i, (a, b, preferred) in enumerate([(RED, BLUE, "a"), (BLUE, RED, "b"), (RED, RED, "tie"),
                                           (BLUE, BLUE, "tie")]):
        source = _png(root / "img" / f"s{i}.png", (30 + 5 * i, 60, 200))
        shade = lambda c, k: tuple(min(255, v + k + i) for v in c)  # noqa: E731 - distinct files per source
        lines.append({"source": str(source), "edited_a": str(_png(root / "img" / f"s{i}_a.png", shade(a, 1))),
                      "edited_b": str(_png(root / "img" / f"s{i}_b.png", shade(b, 3))), "instruction": INSTRUCTION,
                      "preferred": preferred})
    manifest = root / "prefs.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = prepare(PrepareConfig(inputs=(str(manifest),), out_dir=str(root / "prepared"), format="pairwise",
                                   train_split=1.0, workers=1, progress=False))
    return Path(result.train_path)


def test_a_pairwise_judge_and_a_pointwise_judge_side_by_side_on_the_same_pairs(
        pairs: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys) -> None:
    base = tmp_path_factory.getbasetemp()
    pair_model = build_pair_answering_model(tiny_model_dir, base / "judge-pair-answering-model")
    point_model = build_answering_model(tiny_model_dir, base / "judge-answering-model")
    common = ["--max-new-tokens", "12", "--device", "cpu", "--save-predictions", "--bootstrap", "50"]
    assert main(["eval", "--data", str(pairs), "--model", str(pair_model), "--format", "pairwise", "--template",
                 "demo", "--name", "pairwise", "--out", str(tmp_path / "pw"), *common]) == 0
    pw = json.loads((tmp_path / "pw" / "metrics.json").read_text())["pairwise"]
    assert pw["n"] == 8 and pw["labels"] == {"A": 2, "B": 2, "tie": 4}
    assert pw["accuracy"] == 1.0 and pw["position_consistency"] == 1.0 and pw["n_pairs_both_orders"] == 4
    assert main(["eval", "--data", str(pairs), "--model", str(point_model), "--name", "pointwise", "--out",
                 str(tmp_path / "pt"), *common]) == 0
    pt = json.loads((tmp_path / "pt" / "metrics.json").read_text())["pointwise"]
    assert pt["n"] == 8 and pt["position_consistency"] == 1.0  # a score difference never depends on the order
    capsys.readouterr()
    assert main(["eval", "--pair-predictions", str(tmp_path / "pw" / "pairwise.pairs.jsonl"),
                 str(tmp_path / "pt" / "pointwise.pairs.jsonl"), "--out", str(tmp_path / "both")]) == 0
    both = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert list(both) == ["pairwise", "pointwise"]
    assert both["pairwise"]["accuracy"] == pw["accuracy"] and both["pointwise"]["accuracy"] == pt["accuracy"]
    report = (tmp_path / "both" / "report.md").read_text()
    assert "| metric | pairwise | pointwise |" in report and "position consistency" in report
    assert "pairwise: 8 pair rows, accuracy 100.0%" in capsys.readouterr().out


def test_pair_metrics_catch_a_judge_that_always_answers_a() -> None:
    rows = [("p0", False, "A"), ("p0", True, "B"), ("p1", False, "tie"), ("p1", True, "tie")]
    records = [PairRecord(f"{p}:{int(s)}", p, s, label, "A", 0.5, None, p) for p, s, label in rows]
    m = pair_metrics(records)
    assert m["accuracy"] == 0.25 and m["position_consistency"] == 0.0 and m["accuracy_ties"] == 0.0


def test_pair_rows_refuse_predictions_beside_them(pairs: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "p.jsonl").write_text("{}\n")
    assert main(["eval", "--data", str(pairs), "--model", "x", "--predictions", str(tmp_path / "p.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "pair rows are evaluated on their own" in capsys.readouterr().err
