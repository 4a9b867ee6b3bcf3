"""``prepare_report.json`` and the terminal summary. Imports no torch.

The report holds: the settings used, counts (found = kept + rejected, kept per split), rejects by reason, the
median/MAD used (and whether they were estimated on train), label histograms per split, a raw-score histogram,
image statistics (original and stored sizes, tokens per image, bytes, originals kept) and prompt-token statistics.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editjudge import __version__
from editjudge.data.labels import histogram
from editjudge.data.pairs import REASONS as PAIR_REASONS
from editjudge.data.preferences import REASONS as PREFERENCE_REASONS
from editjudge.data.sources import REASONS as SOURCE_REASONS

REASONS = {**SOURCE_REASONS, **PREFERENCE_REASONS, **PAIR_REASONS}

__all__ = ["Stats", "build_report", "format_summary", "read_report"]


@dataclass
class Stats:
    """Running counts of kept rows and rejects; memory grows with kept rows only by a few numbers each."""

    rejected: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    labels: dict[str, list[int]] = field(default_factory=lambda: {"train": [], "test": []})
    scores: list[float] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    text_tokens: list[int] = field(default_factory=list)
    image_tokens: list[int] = field(default_factory=list)
    orig_pixels: list[int] = field(default_factory=list)
    image_bytes: int = 0
    kept_original: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    pair_rows: dict[str, Counter] = field(default_factory=dict)  # --pairs: rows per split and label A/B/tie

    def keep(self, split: str, label: int, score: float, row: dict[str, Any]) -> None:
        self.kept[split] += 1
        self.labels.setdefault(split, []).append(label)
        if score is not None:  # a dimension row may carry no single score
            self.scores.append(score)
        self.keep_images(row)

    def keep_images(self, row: dict[str, Any]) -> None:
        """A row's tokens and images (``orig_hw``: one (height, width) per image)."""
        self.prompt_tokens.append(row["prompt_tokens"])
        self.text_tokens.append(row["text_tokens"])
        self.image_tokens += list(row["image_tokens"])
        self.orig_pixels += [h * w for h, w in row["orig_hw"]]
        self.image_bytes += row["bytes"]
        self.kept_original += row["kept_original"]

    def keep_pair(self, split: str, label: str, row: dict[str, Any]) -> None:
        """A pair row (``prepare --pairs``): counted by split and label; its candidates are counted as kept
        samples once, by :meth:`keep_candidate`."""
        self.pair_rows.setdefault(split, Counter())[label] += 1
        self.keep_images(row)

    def keep_candidate(self, split: str, label: int | None, score: float | None) -> None:
        """A sample used in at least one pair row (its label when it was scored)."""
        self.kept[split] += 1
        if label is not None:
            self.labels.setdefault(split, []).append(label)
        if score is not None:
            self.scores.append(score)


def _summary(values: list[int] | list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": float(array.min()),
        "mean": round(float(array.mean()), 3),
        "median": float(np.median(array)),
        "max": float(array.max()),
    }


def _score_histogram(scores: list[float], bins: int = 20) -> dict[str, Any] | None:
    if not scores:
        return None
    counts, edges = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def build_report(
    *,
    config: dict[str, Any],
    found: int,
    stats: Stats,
    median: float | None,
    mad: float | None,
    estimated: bool,
    limits: dict[str, Any],
    counter: str,
    groups: dict[str, int],
    outputs: dict[str, str],
    seconds: float,
    pairs: dict[str, Any] | None = None,
    dimensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-ready report of one ``prepare`` run (``pairs``: the pair counts of ``--pairs``, shown after the
    counts)."""
    kept = sum(stats.kept.values())
    rejected = sum(stats.rejected.values())
    images = len(stats.image_tokens)
    train, test = stats.kept.get("train", 0), stats.kept.get("test", 0)
    return {
        "editjudge_version": __version__,
        "settings": config,
        "counts": {
            "found": found,
            "kept": kept,
            "rejected": rejected,
            "train": stats.kept.get("train", 0),
            "test": stats.kept.get("test", 0),
            "groups": groups,
        },
        **({"pairs": pairs} if pairs is not None else {}),
        "rejects_by_reason": {reason: stats.rejected[reason] for reason in sorted(stats.rejected)},
        "reason_meanings": {reason: REASONS.get(reason, "") for reason in sorted(stats.rejected)},
        "labels": {
            "median": median,
            "mad": mad,
            "estimated_on_train": estimated,
            "formula": "int(clip((score - median) / mad * 4.5 + 4.5, 0, 9))",
            "histogram": {split: histogram(values) for split, values in stats.labels.items()},
            **({"dimensions": dimensions} if dimensions is not None else {}),
        },
        "raw_scores": {"summary": _summary(stats.scores), "histogram": _score_histogram(stats.scores)},
        "images": {
            "count": images,
            "pixel_limits": limits,
            "original_pixels": _summary(stats.orig_pixels),
            "tokens_per_image": _summary(stats.image_tokens),
            "bytes_total": stats.image_bytes,
            "bytes_per_image_mean": round(stats.image_bytes / images, 1) if images else None,
            "kept_original_bytes": stats.kept_original,
        },
        "tokens": {
            "counter": counter,
            "max_prompt_length": config.get("max_prompt_length"),
            "prompt": _summary(stats.prompt_tokens),
            "text": _summary(stats.text_tokens),
        },
        "warnings": split_warnings(groups, train, test, float(config.get("train_split", 0.9))),
        "outputs": outputs,
        "timing": {"seconds": round(seconds, 3), "samples_per_second": round(found / seconds, 2) if seconds else None},
    }


SPLIT_TOLERANCE = 0.10  # a realised train share further than this from --train-split is reported
COLLAPSE_RATIO = 2.0  # source files per picture group above which grouping "collapsed" them (with few groups)
FEW_GROUPS = 10


def split_warnings(groups: dict[str, int], train: int, test: int, train_split: float) -> list[str]:
    """What a reader of the split should know: grouping that collapsed many sources into few groups, and a
    realised train share more than :data:`SPLIT_TOLERANCE` away from ``--train-split``."""
    out: list[str] = []
    files, pictures, total = groups.get("source_files", 0), groups.get("picture_groups", 0), groups.get("total", 0)
    if pictures and files >= COLLAPSE_RATIO * pictures and total < FEW_GROUPS:
        out.append(
            f"grouping collapsed {files} distinct source files into {pictures} picture group(s) ({total} groups in "
            "all): copies of one picture (re-encoded, resized, rotated) stay on one side of the split; give the "
            "manifest a 'group' column if they are different pictures"
        )
    if train + test:
        realised = train / (train + test)
        if abs(realised - train_split) > SPLIT_TOLERANCE:
            out.append(
                f"the realised split is {train}/{test} (train {realised:.0%}), more than "
                f"{SPLIT_TOLERANCE:.0%} away from --train-split {train_split:g}: whole groups move together and "
                f"there are only {total} group(s); add data (more source pictures) or change --train-split"
            )
    return out


def _dimension_lines(dimensions: dict[str, Any] | None) -> list[str]:
    """One line per dimension: its median / MAD and how many rows label it (the set's overall is the label line)."""
    if not dimensions:
        return []
    lines = [f"dimensions ({dimensions['set']}; overall labels above; a row missing one: "
             f"{dimensions['missing_dimension']}):"]
    for name, d in dimensions["dimensions"].items():
        if "median" not in d:
            continue
        labelled, unlabelled = sum(d["labelled"].values()), sum(d["unlabelled"].values())
        how = "estimated on train" if d["estimated_on_train"] else "given"
        lines.append(f"  {name}: median {d['median']:.4g}, MAD {d['mad']:.4g} ({how}); labelled {labelled}, "
                     f"unlabelled {unlabelled}")
    return lines


def format_summary(report: dict[str, Any]) -> str:
    """A short human-readable summary for the terminal."""
    counts, labels, tokens = report["counts"], report["labels"], report["tokens"]
    lines = [
        f"found {counts['found']}  kept {counts['kept']} (train {counts['train']}, test {counts['test']})  "
        f"rejected {counts['rejected']}  groups {counts['groups']['total']}",
    ]
    if labels["median"] is not None:
        lines.append(
            f"labels: median {labels['median']:.4g}, MAD {labels['mad']:.4g} "
            f"({'estimated on train' if labels['estimated_on_train'] else 'given'})"
        )
    for split, hist in labels["histogram"].items():
        lines.append(f"  {split:5s} labels 0..9: " + " ".join(f"{hist[str(k)]}" for k in range(10)))
    pairs = report.get("pairs")
    if pairs is not None:
        ties = ("tie when labels differ by <= {}".format(pairs["tie_margin"]) if pairs.get("ties", True)
                else "ties left out (--no-ties)")
        lines.append(f"pairs (both orders, {ties}): " + ", ".join(
            f"{split} {pairs[split]['rows']} rows (A {pairs[split]['A']}, B {pairs[split]['B']}, tie "
            f"{pairs[split]['tie']})" for split in ("train", "test"))
            + (f"; {pairs['capped_pairs']} pairs over --max-pairs-per-source left out" if pairs["capped_pairs"] else ""))
    lines += _dimension_lines(labels.get("dimensions"))
    prompt = tokens["prompt"]
    if prompt:
        lines.append(
            f"prompt tokens ({tokens['counter'].split(':')[0]}): mean {prompt['mean']:.0f}, max {prompt['max']:.0f} "
            f"of {tokens['max_prompt_length']}; image tokens/image: mean {report['images']['tokens_per_image']['mean']:.0f}"
        )
    if counts["kept"] and not counts["test"] and report["settings"].get("train_split", 1.0) < 1.0:
        lines.append("note: the test split is empty — too few groups (sources) to split; add data or lower --train-split")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    if report["rejects_by_reason"]:
        lines.append("rejected by reason:")
        lines += [f"  {reason:22s} {n}" for reason, n in report["rejects_by_reason"].items()]
        lines.append(f"  (every one is listed in {report['outputs']['rejects']})")
    lines.append(f"wrote {report['outputs']['train']} and {report['outputs']['test']} "
                 f"in {report['timing']['seconds']:.1f} s")
    return "\n".join(lines)


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``prepare_report.json`` read back (the judge's ``--prepare-report``): a regular file within the size cap,
    UTF-8 JSON text, an object with ``settings``. ``ValueError`` naming the file and the problem otherwise
    (``FileNotFoundError`` when it does not exist); a FIFO is refused, never waited on."""
    from editjudge.data.files import FileRejected, read_file
    from editjudge.data.sources import LONE_SURROGATE, _loads, lone_surrogate

    name = os.fspath(path)
    try:
        text = read_file(name).decode("utf-8")
        report = _loads(text)
    except FileRejected as exc:
        if exc.reason == "missing_file":
            raise FileNotFoundError(exc.detail) from None
        raise ValueError(exc.detail) from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if lone_surrogate(report, text):
        raise ValueError(f"{name}: {LONE_SURROGATE}")
    if not isinstance(report, dict) or not isinstance(report.get("settings"), dict):
        raise ValueError(f"{name}: not a prepare_report.json (no 'settings')")
    return report
