"""``editjudge bench``: public edit-judge benchmarks read in their published layouts, scored with their metrics."""
