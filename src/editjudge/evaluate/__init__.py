"""Measure a judge: accuracy, correlation, pairwise and best-of-N metrics, and a report people can look at.

``records`` defines the one record type, ``readers`` builds records from predictions, verl dumps or a judge run,
``metrics`` computes the numbers, ``report`` writes ``metrics.json`` plus a Markdown page with plots, and ``cli``
is the ``editjudge eval`` verb. Heavy libraries (scipy, matplotlib, torch) are imported inside functions.
"""

from editjudge.evaluate.records import EvalRecord

__all__ = ["EvalRecord"]
