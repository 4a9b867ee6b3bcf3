"""What ``editjudge score`` judges, for both its paths (one process and ``--ray``): the items of a manifest, a seed
folder or a prepared parquet; the row each judgeable item becomes; the judge's input and the prediction record of a
row. Both paths call these functions, so the same input gives the same records. Imports no torch.

A prepared parquet (``editjudge prepare``'s train/test.parquet) is judged on its stored image bytes, as prepare sized
them, and labelled with the row's ``reward_model.ground_truth``; a malformed row becomes a :class:`PreparedReject`
whose record carries an ``input_error`` naming the reason, and the rest of the file is judged.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARQUET_SUFFIX = ".parquet"


@dataclass(frozen=True)
class DimensionLabels:
    """How a dimension judge's items are labelled: its format and each dimension's median / MAD
    (:class:`editjudge.data.dimension_scores.Scale`), from the prepare report or the flags."""

    fmt: Any  # a DimensionsFormat
    scales: dict[str, Any]

    def of_scores(self, scores: dict[str, float | None] | None) -> dict[str, int | None] | None:
        """A manifest row's per-dimension labels (names the set lacks are ignored); None without any score."""
        from editjudge.data.dimension_scores import dimension_labels

        known = {n: v for n, v in (scores or {}).items() if n in self.scales}
        return dimension_labels(known, self.scales) if any(v is not None for v in known.values()) else None

    def record_fields(self, labels: dict[str, int | None] | None) -> dict[str, Any]:
        """The keyword arguments of :func:`editjudge.judge.output.prediction` for labels ``labels``."""
        from editjudge.evaluate.dimensions import overall_label

        overall = overall_label(self.fmt, labels) if labels else None
        return {"label": overall, "dimension_labels": labels, "format": self.fmt.spec}


@dataclass(frozen=True)
class PreparedEdit:
    """A judgeable row of a prepared parquet: the image bytes, and the ground truth the row was trained on."""

    id: str
    source: bytes
    edited: bytes
    instruction: str
    group: str | None
    gt_score: float | None
    label: Any  # an int 0..9; a dimension judge's {dimension: label}
    source_path: str | None
    edited_path: str | None


@dataclass(frozen=True)
class PreparedReject:
    """A row of a prepared parquet that cannot be judged: ``reason`` (a stable code) and ``detail``."""

    id: str
    reason: str
    detail: str
    instruction: str | None = None
    group: str | None = None
    gt_score: float | None = None
    label: Any = None
    source_path: str | None = None
    edited_path: str | None = None


def is_prepared_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() == PARQUET_SUFFIX and Path(path).is_file()


def read_items(path: str | Path, dims: DimensionLabels | None = None) -> list[Any]:
    """Every item of ``path`` in order: ``data.sources`` EditRecord / Rejected for a manifest or seed folder,
    :class:`PreparedEdit` / :class:`PreparedReject` for a prepared parquet. ``OSError`` / ``ValueError`` when the
    input as a whole cannot be read (the CLI exits 2). ``dims``: a dimension judge's (its rows' dimension scores
    and labels are read)."""
    if is_prepared_parquet(path):
        return read_prepared_items(path, dims)
    from editjudge.data.sources import read_sources

    return list(read_sources(path, require_score=False, dimensions=dims is not None))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _real(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _dimension_ground_truth(value: Any, dims: DimensionLabels) -> dict[str, int | None] | None:
    """A dimension row's labels (canonical JSON of the judge's set), or None when it is not one."""
    try:
        return dims.fmt.parse_label(value)
    except ValueError:
        return None


def read_prepared_items(path: str | Path, dims: DimensionLabels | None = None) -> list[PreparedEdit | PreparedReject]:
    """The rows of a prepared parquet (:func:`editjudge.data.prepared_rows.prepared_row`), each judgeable or not;
    ``dims``: labels are a dimension judge's (its set's JSON)."""
    from editjudge.data.prepared_rows import ground_truth_label, prepared_row, read_prepared_table, row_name

    items: list[PreparedEdit | PreparedReject] = []
    for i, raw in enumerate(read_prepared_table(path)):
        row = prepared_row(raw, i)
        if isinstance(row, str):
            extra = raw.get("extra_info") if isinstance(raw.get("extra_info"), dict) else {}
            items.append(PreparedReject(
                id=row_name(raw, i), reason="malformed_row", detail=row,
                instruction=_text(extra.get("instruction")), gt_score=_real(extra.get("score")),
                source_path=_text(extra.get("source_path")), edited_path=_text(extra.get("edited_path")),
            ))
            continue
        known = {
            "id": row["name"] or row["id"], "instruction": row["instruction"], "group": row["group"],
            "gt_score": _real(row["gt_score"]), "source_path": _text(row["source_path"]),
            "edited_path": _text(row["edited_path"]),
        }
        label = ground_truth_label(row["label"]) if dims is None else _dimension_ground_truth(row["label"], dims)
        if label is None:
            wanted = "an integer 0..9" if dims is None else f"a JSON object of {list(dims.fmt.names)} labels"
            items.append(PreparedReject(
                reason="bad_label", detail=f"row {i}: reward_model.ground_truth {row['label']!r:.80} is not {wanted}",
                **known,
            ))
            continue
        items.append(PreparedEdit(source=row["source"], edited=row["edited"], label=label, **known))
    return items


def is_rejected(item: Any) -> bool:
    from editjudge.data.sources import Rejected

    return isinstance(item, (Rejected, PreparedReject))


def judge_row(i: int, item: Any, median: float, mad: float, dims: DimensionLabels | None = None) -> dict[str, Any]:
    """The row a judgeable item becomes (position ``i``): what the record shows, and the judge's input images
    (``source_image``/``edited_image``: a path, or a prepared parquet's bytes). A dimension judge's row
    (``dims``) carries the record's dimension fields (``dimension_fields``: labels per dimension, format)."""
    if isinstance(item, PreparedEdit):
        row = {"i": i, "id": item.id, "source": item.source_path, "edited": item.edited_path,
               "instruction": item.instruction, "group": item.group, "gt_score": item.gt_score, "label": item.label,
               "source_image": item.source, "edited_image": item.edited}
    else:
        from editjudge.data.labels import label_of

        row = {"i": i, "id": item.id, "source": item.source_path, "edited": item.edited_path,
               "instruction": item.instruction, "group": item.group, "gt_score": item.score,
               "label": label_of(item.score, median, mad) if item.score is not None else None,
               "source_image": item.source_path, "edited_image": item.edited_path}
    if dims is not None:
        labels = item.label if isinstance(item, PreparedEdit) else dims.of_scores(item.scores)
        row["dimension_fields"] = dims.record_fields(labels)
        row["label"] = row["dimension_fields"].pop("label")
    return row


def edit_of(row: dict[str, Any]) -> Any:
    """The judge's input for a row: an :class:`editjudge.judge.EditItem`."""
    from editjudge.judge.judge import EditItem

    return EditItem(row["source_image"], row["edited_image"], row["instruction"])


def row_prediction(row: dict[str, Any], result: Any) -> dict[str, Any]:
    """The prediction record of a judged row."""
    from editjudge.judge.output import prediction

    return prediction(id=row["id"], source=row["source"], edited=row["edited"], instruction=row["instruction"],
                      group=row["group"], result=result, gt_score=row["gt_score"], label=row["label"],
                      **row.get("dimension_fields", {}))


def reject_prediction(item: Any, median: float, mad: float, dims: DimensionLabels | None = None) -> dict[str, Any]:
    """The record of an item that is never judged: an ``input_error`` naming the reason, the truth where known."""
    from editjudge.judge.output import manifest_prediction, prediction
    from editjudge.judge.result import JudgeResult

    if dims is not None:  # a dimension judge's record: every dimension, none answered
        result = JudgeResult(error=f"input_error: {item.reason}: {item.detail}",
                             dimensions={n: {"score": None, "mean_score": None, "expected_score": None}
                                         for n in dims.fmt.names})
        source = getattr(item, "source_path", None)
        fields = dims.record_fields(dims.of_scores(getattr(item, "scores", None)))
        return prediction(id=item.id, source=source, edited=item.edited_path, instruction=item.instruction,
                          group=item.group, result=result, gt_score=getattr(item, "gt_score", getattr(item, "score", None)),
                          **fields)
    if not isinstance(item, PreparedReject):
        return manifest_prediction(item, median, mad)
    return prediction(id=item.id, source=item.source_path, edited=item.edited_path, instruction=item.instruction,
                      group=item.group, result=JudgeResult(error=f"input_error: {item.reason}: {item.detail}"),
                      gt_score=item.gt_score, label=item.label)


def fingerprint(items: list[Any]) -> str:
    """A digest of the items (ids, paths, instructions; a parquet row's image bytes): ``--resume`` checks it."""
    digest = hashlib.sha256()
    for item in items:
        parts = [item.id, getattr(item, "source_path", None), getattr(item, "edited_path", None), item.instruction]
        if isinstance(item, PreparedEdit):
            parts += [hashlib.sha256(item.source).hexdigest(), hashlib.sha256(item.edited).hexdigest(), item.label]
        digest.update(json.dumps(parts).encode())
    return digest.hexdigest()


def encode_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON (image bytes as ``{"b64": …}``) to cross a process boundary (Ray); :func:`decode_rows` inverts."""
    def image(value: Any) -> Any:
        return {"b64": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value

    return json.dumps([{**r, "source_image": image(r["source_image"]), "edited_image": image(r["edited_image"])}
                       for r in rows])


def decode_rows(payload: str) -> list[dict[str, Any]]:
    def image(value: Any) -> Any:
        return base64.b64decode(value["b64"]) if isinstance(value, dict) else value

    return [{**r, "source_image": image(r["source_image"]), "edited_image": image(r["edited_image"])}
            for r in json.loads(payload)]
