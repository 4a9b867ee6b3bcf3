"""The synthetic generator: seed layout, deterministic bytes, the seed's score statistics, every fault."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from editjudge.data.sources import load_sources
from editjudge.synthetic import FAULTS, score_to_quality, write_synthetic_edits


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_arguments_same_bytes_whatever_the_workers(tmp_path):
    a = write_synthetic_edits(tmp_path / "a", n_sources=6, candidates_per_source=3, seed=5, faults=True)
    b = write_synthetic_edits(tmp_path / "b", n_sources=6, candidates_per_source=3, seed=5, faults=True, workers=2)
    write_synthetic_edits(tmp_path / "c", n_sources=6, candidates_per_source=3, seed=6, faults=True)
    assert a.samples == b.samples == 6 * 3 + len(FAULTS)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_seed_layout_scores_spread_with_the_seed_median_and_mad(tmp_path):
    write_synthetic_edits(tmp_path, n_sources=60, candidates_per_source=4, seed=0)
    records, rejects = load_sources(tmp_path)
    assert not rejects and len(records) == 240
    scores = np.array([r.score for r in records])
    median = np.median(scores)
    assert abs(median - 0.9) < 0.03 and abs(np.median(np.abs(scores - median)) - 0.1) < 0.02
    labels = np.clip((scores - 0.9) / 0.1 * 4.5 + 4.5, 0, 9).astype(int)
    assert set(labels) == set(range(10))
    assert all(r.instruction.split()[-1] in {"red", "green", "blue", "yellow", "purple", "orange"} for r in records)


def test_candidates_of_one_source_share_the_source_bytes_and_scores_follow_pixels(tmp_path):
    from PIL import Image
    from scipy.stats import spearmanr

    from editjudge.synthetic import COLOURS

    write_synthetic_edits(tmp_path, n_sources=10, candidates_per_source=6, size=64, seed=3)
    records, _ = load_sources(tmp_path)
    by_source: dict[bytes, list] = {}
    for r in records:
        by_source.setdefault(Path(r.source_path).read_bytes(), []).append(r)
    assert sorted(len(v) for v in by_source.values()) == [6] * 10
    # Inside the shape, the edited colour gets closer to the requested one as the score rises.
    distances, scores = [], []
    for source_bytes, group in by_source.items():
        source = np.asarray(Image.open(group[0].source_path), dtype=float)
        mask = np.abs(source - source[0, 0]).sum(axis=2) > 60
        target = np.array(COLOURS[group[0].instruction.split()[-1]], dtype=float)
        for r in group:
            edited = np.asarray(Image.open(r.edited_path), dtype=float)
            distances.append(np.linalg.norm(edited[mask].mean(axis=0) - target))
            scores.append(r.score)
    assert spearmanr(scores, distances).statistic < -0.6
    assert score_to_quality(max(scores)) > 0.8 and score_to_quality(min(scores)) < 0.2


def test_fault_samples_exist_for_every_kind(tmp_path):
    result = write_synthetic_edits(tmp_path, n_sources=0, faults=True)
    assert set(result.faults) == {f"faults/fault_{name}" for name in FAULTS}
    assert set(result.faults.values()) >= {"kept", "truncated_image", "decompression_bomb", "non_finite_score"}
    meta = json.loads((tmp_path / "faults" / "fault_cmyk_meta.json").read_text())
    assert meta["instruction"]


def test_red_square_task_labels_come_only_from_the_pixels(tmp_path):
    """Unchanged square -> label 1, red square -> label 7, same instruction everywhere; a constant answer scores 1/2."""
    from PIL import Image

    from editjudge.data.labels import label_of
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits as write

    a = write(tmp_path / "a", n_sources=8, candidates_per_source=4, seed=2, task="red_square")
    write(tmp_path / "b", n_sources=8, candidates_per_source=4, seed=2, task="red_square", workers=2)
    assert a.samples == 32 and _digest(tmp_path / "a") == _digest(tmp_path / "b")
    records, rejects = load_sources(tmp_path / "a")
    assert not rejects and {r.instruction for r in records} == {"make the square red"}
    labels = [label_of(r.score, *RED_SQUARE_MEDIAN_MAD) for r in records]
    assert sorted(set(labels)) == [1, 7] and labels.count(1) == labels.count(7) == 16
    for r, label in zip(records, labels):
        source = np.asarray(Image.open(r.source_path), dtype=float)
        edited = np.asarray(Image.open(r.edited_path), dtype=float)
        square = source[..., 2] - source[..., 0] > 80  # the blue square on grey
        redness = edited[square][:, 0].mean() - edited[square][:, 2].mean()
        assert (redness > 100) == (label == 7)
    for constant in range(10):  # within ±2, no constant answer beats 1/2
        assert np.mean([abs(constant - label) <= 2 for label in labels]) <= 0.5
    with pytest.raises(ValueError, match="unknown synthetic task"):
        write(tmp_path / "c", task="nope")


def test_red_square_dims_task_scores_each_dimension_from_its_own_pixels(tmp_path):
    """Following = the square is red, preservation = the rest kept; one candidate of each kind per source; the mean
    (the one score a single-score judge learns) is the same for an unchanged edit and a ruined one."""
    from PIL import Image

    from editjudge.data.labels import label_of
    from editjudge.synthetic import RED_SQUARE_KINDS, RED_SQUARE_MEDIAN_MAD, write_synthetic_edits as write

    a = write(tmp_path / "a", n_sources=6, candidates_per_source=4, seed=3, task="red_square_dims")
    write(tmp_path / "b", n_sources=6, candidates_per_source=4, seed=3, task="red_square_dims", workers=2)
    assert a.samples == 24 and _digest(tmp_path / "a") == _digest(tmp_path / "b")
    records, rejects = load_sources(tmp_path / "a")
    assert not rejects and len(records) == 24
    labels: dict[str, list[int]] = {"following": [], "preservation": [], "score": []}
    kinds_per_source: dict[str, set] = {}
    for r in records:
        stem = str(r.edited_path)[: -len("_output.jpg")]
        scores = json.loads(Path(stem + "_score.json").read_text())
        assert scores["score"] == pytest.approx((scores["following"] + scores["preservation"]) / 2, abs=1e-6)
        for name in labels:
            labels[name].append(label_of(scores[name], *RED_SQUARE_MEDIAN_MAD))
        source = np.asarray(Image.open(r.source_path), dtype=float)
        edited = np.asarray(Image.open(r.edited_path), dtype=float)
        square = source[..., 2] - source[..., 0] > 80  # the blue square on grey
        square_red = edited[square][:, 0].mean() - edited[square][:, 2].mean() > 100
        kept = np.abs(edited[~square] - source[~square]).mean() < 20
        assert (labels["following"][-1] == 7) == square_red and (labels["preservation"][-1] == 7) == kept
        kind = next(k for k, v in RED_SQUARE_KINDS.items() if v == (square_red, kept))
        kinds_per_source.setdefault(Path(r.edited_path).name.split("_c")[0], set()).add(kind)
        assert labels["score"][-1] == {"unchanged": 4, "square_red": 7, "all_red": 4, "background_red": 1}[kind]
    assert all(kinds == set(RED_SQUARE_KINDS) for kinds in kinds_per_source.values()) and len(kinds_per_source) == 6
    for name in ("following", "preservation"):  # per dimension labels 1 and 7, half each: a constant scores 1/2
        assert sorted(set(labels[name])) == [1, 7] and labels[name].count(7) == 12
        assert max(np.mean([abs(c - v) <= 2 for v in labels[name]]) for c in range(10)) <= 0.5
