"""``prepare --pairs``: pair rows for a pairwise judge, built inside each split from candidates of one source.
Imports no torch.

* **Pairs from scores**: within each split, candidates of one comparison group (the same source picture, or the
  same ``group``, and the same instruction: :func:`editjudge.data.labels.compare_key`) are paired two by two; a
  pair is a ``tie`` when their 0–9 labels differ by at most ``tie_margin`` (default 0: equal labels, as TIGER's
  EditReward data calls ``tie_case`` equal overall scores), else the better-labelled one is preferred. No pair
  crosses the split, since whole groups go to one side. Two candidates with the same image bytes are never paired
  (``identical_candidates``).
* **Pairs from preference records** (:mod:`editjudge.data.preferences`): as labelled.
* **Cap**: at most ``max_pairs_per_source`` pairs per comparison group (a seeded choice, ``--seed``); candidates
  whose every pair was dropped are listed in ``rejects.jsonl`` as ``pairs_capped``, candidates with no partner as
  ``no_pair``, so every sample found is still in a row or in the rejects.
* **Both orders**: every pair is written twice, (a, b) and (b, a), the label mirrored (A ↔ B), next to each other:
  a judge that answers by position gets exactly half of the strict pairs right.

A row holds the source image(s), then candidate A, then B (the pairwise format's ``image_roles``), sized together
within ``--max-prompt-length`` (:func:`editjudge.data.images.plan_images`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editjudge.data import labels as lbl
from editjudge.data.sources import Rejected

__all__ = ["DEFAULT_TIE_MARGIN", "DEFAULT_MAX_PAIRS", "PairJob", "PairPlan", "SkippedPair", "account", "counts",
           "plan_pairs", "pair_label", "REASONS"]

DEFAULT_TIE_MARGIN = 0
DEFAULT_MAX_PAIRS = 16
TASK_PAIRS = 8  # pairs per build task (16 rows): a task never mixes groups, so shared images are sized once
MIRROR = {"A": "B", "B": "A", "tie": "tie"}
REASONS: dict[str, str] = {
    "no_pair": "the only usable candidate of its source and instruction: there is nothing to compare it with",
    "pairs_capped": "every pair of this candidate was left out by --max-pairs-per-source (seeded)",
    "tie_left_out": "a tie (a preference record, or a candidate whose every pair was a tie) and --no-ties leaves "
                    "ties out",
}


def pair_label(label_a: int, label_b: int, tie_margin: int = DEFAULT_TIE_MARGIN) -> str:
    """``tie`` when the labels differ by at most ``tie_margin``, else the better one: ``A`` or ``B``."""
    delta = label_a - label_b
    if abs(delta) <= tie_margin:
        return "tie"
    return "A" if delta > 0 else "B"


@dataclass(frozen=True)
class PairJob:
    """One pair to write (both orders): prepare's jobs of candidates ``a`` and ``b`` and the label of (a, b)."""

    a: Any  # editjudge.data.prepare._Job
    b: Any
    label: str
    pair_id: str
    origin: str = "scores"  # "scores" or "preference"


@dataclass(frozen=True)
class SkippedPair:
    """A pair the build could not write (``prompt_too_long``: the two candidates with the source overflow the
    budget); counted in the report, the candidates' other pairs are written."""

    reason: str
    detail: str


@dataclass
class PairPlan:
    """Build tasks per split, rejects for candidates in no pair, and the counts the report shows."""

    tasks: list[list[PairJob]] = field(default_factory=list)
    unpaired: list[Rejected] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    capped: int = 0
    candidates: dict[str, Any] = field(default_factory=dict)  # record id -> job, of every scored candidate paired
    preference_pairs: list[PairJob] = field(default_factory=list)


def _compare_group(job: Any) -> str:
    return lbl.compare_key(job.group, job.record.instruction)


def _seeded_choice(pairs: list[tuple[Any, Any]], cap: int, key: str, seed: int) -> list[tuple[Any, Any]]:
    """At most ``cap`` of ``pairs``, chosen by a seeded draw per group (kept in their original order)."""
    if len(pairs) <= cap:
        return pairs
    rng = np.random.default_rng(int(lbl.seeded_hash(key, seed)[:15], 16))
    keep = sorted(int(i) for i in rng.choice(len(pairs), size=cap, replace=False))
    return [pairs[i] for i in keep]


def _pair_id(a: Any, b: Any) -> str:
    return hashlib.blake2b(f"{a.record.id}\x00{b.record.id}".encode("utf-8", "surrogatepass"),
                           digest_size=8).hexdigest()


def _tasks(pairs: list[PairJob]) -> list[list[PairJob]]:
    tasks: list[list[PairJob]] = []
    for pair in pairs:
        if tasks and len(tasks[-1]) < TASK_PAIRS and _compare_group(tasks[-1][-1].a) == _compare_group(pair.a):
            tasks[-1].append(pair)
        else:
            tasks.append([pair])
    return tasks


def plan_pairs(jobs: dict[str, list[Any]], preferences: Sequence[tuple[Any, Any, str, str]], *,
               tie_margin: int = DEFAULT_TIE_MARGIN, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 42,
               ties: bool = True) -> PairPlan:
    """The pairs of every split: all pairs of scored candidates within each comparison group (capped), and the
    ``preferences`` ((job a, job b, "a" | "b" | "tie", record id)) whose candidates landed in that split.
    ``ties=False`` (``--no-ties``): tie pairs are left out before the cap (counted in ``skipped["tie"]``); a tie
    preference record, or a candidate whose every pair was a tie, is a reject (``tie_left_out``)."""
    plan = PairPlan()
    explicit: dict[str, list[PairJob]] = {}
    in_preference: set[str] = set()
    for a, b, preferred, record_id in preferences:
        label = {"a": "A", "b": "B", "tie": "tie"}[preferred]
        in_preference.update((a.record.id, b.record.id))
        if label == "tie" and not ties:
            plan.unpaired.append(Rejected(record_id, "tie_left_out", f"{record_id} prefers neither candidate (tie)",
                                          (a.record.source_path, a.record.edited_path, b.record.edited_path)))
            continue
        explicit.setdefault(a.split, []).append(PairJob(a, b, label, record_id, "preference"))
    for split in ("train", "test"):
        groups: dict[str, list[Any]] = {}
        for job in jobs.get(split, []):
            if job.label is not None and job.record.id not in in_preference:
                groups.setdefault(_compare_group(job), []).append(job)
        pairs: list[PairJob] = []
        for key, members in groups.items():
            candidates, in_ties = [], set()
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if a.plan.edited_hash and a.plan.edited_hash == b.plan.edited_hash:
                        plan.skipped["identical_candidates"] += 1
                        continue
                    if not ties and pair_label(a.label, b.label, tie_margin) == "tie":
                        plan.skipped["tie"] += 1
                        in_ties.update((a.record.id, b.record.id))
                        continue
                    candidates.append((a, b))
            chosen = _seeded_choice(candidates, max_pairs, key, seed)
            plan.capped += len(candidates) - len(chosen)
            pairs += [PairJob(a, b, pair_label(a.label, b.label, tie_margin), _pair_id(a, b)) for a, b in chosen]
            _unpaired(plan, members, chosen, {job.record.id for pair in candidates for job in pair}, in_ties)
        pairs += explicit.get(split, [])
        for pair in pairs:
            if pair.origin == "scores":
                plan.candidates.setdefault(pair.a.record.id, pair.a)
                plan.candidates.setdefault(pair.b.record.id, pair.b)
            else:
                plan.preference_pairs.append(pair)
        plan.tasks += _tasks(pairs)
    return plan


def account(plan: PairPlan, used: dict[str, set[str]], rejected: set[str], stats: Any) -> list[Rejected]:
    """After the build: every scored candidate in a written row and every preference record written is a kept
    sample (``stats.keep_candidate``); one whose every pair was skipped (and not rejected for its image) is a
    reject naming why, so that kept + rejected == found."""
    out: list[Rejected] = []
    for record_id, job in plan.candidates.items():
        if record_id in used.get("scores", set()):
            stats.keep_candidate(job.split, job.label, job.record.score)
        elif record_id not in rejected:
            out.append(Rejected(record_id, "no_pair", f"every pair of {record_id} was left out of the build "
                                f"({', '.join(sorted(plan.skipped)) or 'skipped'})",
                                (job.record.source_path, job.record.edited_path)))
    for pair in plan.preference_pairs:
        if pair.pair_id in used.get("preference", set()):
            stats.keep_candidate(pair.a.split, None, None)
        elif pair.pair_id not in rejected:
            out.append(Rejected(pair.pair_id, "prompt_too_long", "the source and both candidates do not fit "
                                "--max-prompt-length", (pair.a.record.source_path, pair.a.record.edited_path,
                                                        pair.b.record.edited_path)))
    return out


def _unpaired(plan: PairPlan, members: Iterable[Any], chosen: list[tuple[Any, Any]], paired: set[str],
              in_ties: set[str]) -> None:
    """Rejects for the ``members`` of a group in no chosen pair: capped, only in ties (``--no-ties``), or alone."""
    used = {job.record.id for pair in chosen for job in pair}
    for job in members:
        if job.record.id in used:
            continue
        if job.record.id in paired:
            reason, detail = "pairs_capped", f"all pairs of {job.record.id} were left out by --max-pairs-per-source"
        elif job.record.id in in_ties:
            reason, detail = "tie_left_out", f"every pair of {job.record.id} was a tie (--no-ties)"
        else:
            reason = "no_pair"
            detail = f"{job.record.id} is the only candidate of its source and instruction in {job.split}"
        plan.unpaired.append(Rejected(job.record.id, reason, detail, (job.record.source_path, job.record.edited_path)))


def counts(rows: dict[str, Counter], plan: PairPlan, tie_margin: int, max_pairs: int,
           ties: bool = True) -> dict[str, Any]:
    """The report's ``pairs`` section: rows per split and label (both orders), pairs skipped and capped."""
    out: dict[str, Any] = {"tie_margin": tie_margin, "ties": ties, "max_pairs_per_source": max_pairs,
                           "orders": "both: every pair is written as (a, b) and (b, a)"}
    for split in ("train", "test"):
        by = rows.get(split, Counter())
        out[split] = {"rows": sum(by.values()), "pairs": sum(by.values()) // 2,
                      **{label: by.get(label, 0) for label in ("A", "B", "tie")}}
    out["skipped_pairs"] = {reason: plan.skipped[reason] for reason in sorted(plan.skipped)}
    out["capped_pairs"] = plan.capped
    return out
