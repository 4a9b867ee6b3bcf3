"""Data preparation: scored edits on disk -> verl parquet. The whole package imports no torch.

Modules: :mod:`~editjudge.data.sources` (folders / manifests -> records), :mod:`~editjudge.data.images` (safe
loading, Qwen2.5-VL token-budget sizing), :mod:`~editjudge.data.tokens` (prompt token counts),
:mod:`~editjudge.data.labels` (labels, split, sampling), :mod:`~editjudge.data.writer` (atomic parquet),
:mod:`~editjudge.data.report` (report + summary), :mod:`~editjudge.data.prepare` (the ``prepare`` verb).
"""
