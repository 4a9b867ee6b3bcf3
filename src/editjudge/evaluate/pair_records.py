"""Evaluate judges on pairs: a pairwise judge's answers, or a pointwise judge's scores, on the same pair rows.

The pair rows are ``prepare --pairs`` output (each pair in both orders, labelled ``A``, ``B`` or ``tie``).

* A **pairwise judge** answers each row: :func:`judge_pairs` → one :class:`PairRecord` per row.
* A **pointwise judge** scores each distinct candidate once (with the row's source), and a row's verdict is the
  sign of score(A) − score(B): :func:`score_pairs` (its answer never depends on the order, so it is position
  consistent by construction).

:func:`pair_metrics` gives, on the judge's own answers: accuracy with ties (a tie right only when the judge answers
tie), strict accuracy (rows with a preference), tie accuracy, the answer rate and distribution, and **position
consistency** (pairs judged in both orders whose two answers mirror each other: A ↔ B, tie ↔ tie); and on the margin
(p(A) − p(B), or the score difference) the tie-calibrated accuracy of :mod:`editjudge.evaluate.pairwise` (the ε that
maximises accuracy with ties, EditReward-Bench's rule) and the strict accuracy EditScore reports.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from editjudge.evaluate import pairwise as pw

MIRROR = {"A": "B", "B": "A", "tie": "tie"}
_SIGN = {"A": 1, "B": -1, "tie": 0}


@dataclass(frozen=True)
class PairRecord:
    """One pair row judged: ``label`` the truth, ``preference`` the judge's answer (None: none parsed), ``margin``
    how much it prefers A (p(A) − p(B), or score(A) − score(B); None without one)."""

    id: str
    pair: str
    swapped: bool
    label: str
    preference: str | None = None
    margin: float | None = None
    error: str | None = None
    group: str | None = None
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pair_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Pair rows of a ``prepare --pairs`` parquet: id, pair, swapped, label, group, instruction, images (bytes:
    the source image(s), then A, then B); ``ValueError`` naming a row that is not a pair row."""
    from editjudge.data.prepared_rows import read_prepared_table

    rows = []
    for i, raw in enumerate(read_prepared_table(path, limit)):
        extra = raw.get("extra_info") if isinstance(raw.get("extra_info"), dict) else {}
        images = [im.get("bytes") for im in raw.get("images") or [] if isinstance(im, dict)]
        label = (raw.get("reward_model") or {}).get("ground_truth")
        if label not in MIRROR or len(images) < 3 or not all(images) or not extra.get("pair"):
            raise ValueError(f"{path}: row {i} is not a pair row of `editjudge prepare --pairs` (label A/B/tie, "
                             "source image(s) + two candidates, extra_info.pair)")
        rows.append({"id": str(extra.get("id") or i), "pair": str(extra["pair"]), "swapped": bool(extra.get("swapped")),
                     "label": label, "group": extra.get("group"), "instruction": extra.get("instruction") or "",
                     "sources": images[:-2], "a": images[-2], "b": images[-1], "a_id": extra.get("a_id"),
                     "b_id": extra.get("b_id")})
    return rows


def is_pair_parquet(path: str | Path) -> bool:
    """Whether a prepared parquet holds pair rows (its first row's data_source is the pairwise format's)."""
    import pyarrow.parquet as pq

    from editjudge.formats.pairwise import DATA_SOURCE

    try:
        table = pq.read_table(path, columns=["data_source"])
    except Exception:  # noqa: BLE001 - not ours to judge here: the reader names the problem
        return False
    return table.num_rows > 0 and table.column("data_source")[0].as_py() == DATA_SOURCE


def judge_pairs(rows: Sequence[dict[str, Any]], judge: Any, progress: bool = True) -> list[PairRecord]:
    """A pairwise judge's answer on every row (each row is one order of its pair)."""
    sources = [r["sources"][0] if len(r["sources"]) == 1 else list(r["sources"]) for r in rows]
    items = [(s, r["a"], r["b"], r["instruction"]) for s, r in zip(sources, rows)]
    out = []
    for row, c in zip(rows, judge.compare_many(items, progress=progress)):
        out.append(PairRecord(row["id"], row["pair"], row["swapped"], row["label"], c.preference, c.margin, c.error,
                              row["group"], c.raw))
    return out


def score_pairs(rows: Sequence[dict[str, Any]], judge: Any, progress: bool = True) -> list[PairRecord]:
    """A pointwise judge on the same rows: each distinct (source, candidate) scored once, a row's margin the
    difference of the two expected scores (else the scores), its answer the margin's sign (equal scores: tie)."""
    from editjudge.judge import EditItem

    keys: dict[tuple[Any, ...], int] = {}
    items = []
    for row in rows:
        source = row["sources"][0] if len(row["sources"]) == 1 else list(row["sources"])
        for image in (row["a"], row["b"]):
            key = (tuple(row["sources"]), image, row["instruction"])
            if key not in keys:
                keys[key] = len(items)
                items.append(EditItem(source, image, row["instruction"]))
    results = judge.score_many(items, progress=progress)

    def value(result: Any) -> float | None:
        v = result.expected_score if result.expected_score is not None else result.mean_score
        return None if v is None or not math.isfinite(v) else float(v)

    out = []
    for row in rows:
        ra = results[keys[(tuple(row["sources"]), row["a"], row["instruction"])]]
        rb = results[keys[(tuple(row["sources"]), row["b"], row["instruction"])]]
        va, vb = value(ra), value(rb)
        margin = None if va is None or vb is None else va - vb
        answer = None if margin is None else "tie" if margin == 0 else "A" if margin > 0 else "B"
        error = ra.error if va is None else rb.error if vb is None else None
        out.append(PairRecord(row["id"], row["pair"], row["swapped"], row["label"], answer, margin, error,
                              row["group"]))
    return out


def _rate(right: int, total: int) -> float | None:
    return right / total if total else None


def pair_metrics(records: Sequence[PairRecord]) -> dict[str, Any]:
    """Accuracy on the judge's answers (with ties, strict, on ties), answers, position consistency, and the
    tie-calibrated accuracy of the margins; rows without an answer count wrong."""
    n = len(records)
    strict = [r for r in records if r.label != "tie"]
    ties = [r for r in records if r.label == "tie"]
    right = sum(r.preference == r.label for r in records)
    by_pair: dict[str, dict[bool, PairRecord]] = {}
    for r in records:
        by_pair.setdefault(r.pair, {})[r.swapped] = r
    both = [(p[False], p[True]) for p in by_pair.values() if len(p) == 2]
    judged = [(a, b) for a, b in both if a.preference is not None and b.preference is not None]
    consistent = sum(a.preference == MIRROR[b.preference] for a, b in judged)
    h = [_SIGN[r.label] for r in records]
    m = [r.margin if r.margin is not None else math.nan for r in records]
    calibrated = pw.tie_calibrated_accuracy(h, m)
    return {
        "n": n,
        "accuracy": _rate(right, n),
        "accuracy_strict": _rate(sum(r.preference == r.label for r in strict), len(strict)),
        "accuracy_ties": _rate(sum(r.preference == "tie" for r in ties), len(ties)),
        "answer_rate": _rate(sum(r.preference is not None for r in records), n),
        "answers": dict(sorted(Counter(r.preference or "none" for r in records).items())),
        "labels": dict(sorted(Counter(r.label for r in records).items())),
        "position_consistency": _rate(consistent, len(judged)),
        "n_pairs_both_orders": len(both),
        "margin": {
            "with_ties_calibrated": calibrated.value, "epsilon": calibrated.epsilon,
            "strict": pw.strict_accuracy(h, m),
        },
        "errors": dict(Counter(r.error.split(":", 1)[0] for r in records if r.error).most_common(5)),
    }


def write_pair_records(records: Iterable[PairRecord], path: str | Path) -> None:
    """The records as JSONL, atomically."""
    from editjudge.data.writer import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False) + "\n"
                                    for r in records))


def read_pair_records(path: str | Path) -> list[PairRecord]:
    """Records written by :func:`write_pair_records` (``eval --data PAIRS --save-predictions``)."""
    from editjudge.evaluate.readers import jsonl_objects

    out = []
    for lineno, obj in jsonl_objects(Path(path)):
        if obj.get("label") not in MIRROR or "pair" not in obj:
            raise ValueError(f"{path}:{lineno}: not a pair record (label A/B/tie, pair, preference)")
        out.append(PairRecord(**{k: obj.get(k) for k in PairRecord.__dataclass_fields__}))
    return out


__all__ = ["PairRecord", "is_pair_parquet", "judge_pairs", "pair_metrics", "read_pair_records", "read_pair_rows",
           "score_pairs", "write_pair_records"]
