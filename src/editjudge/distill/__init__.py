"""Cold start before GRPO: distil reasoning traces from a teacher, keep what agrees with the label, pick hard rows.

* :mod:`editjudge.distill.rules` — the acceptance rule, the SFT row (verl's multi-turn SFT format) and the report
  counters (no torch).
* :mod:`editjudge.distill.teacher` — a teacher judge (any backend) over the rows of a prepared parquet, K samples each.
* :mod:`editjudge.distill.hard` — ``--select-hard``: the train rows a judge gets wrong in at least M of K samples.
* :mod:`editjudge.distill.cli` — the ``editjudge distill`` verb.
"""
