"""Statistics of tabular data, as SageMaker Model Monitor computes them. Pure: no files written.

sketches (KLL as weighted samples) → summaries (one column) → profile (a dataset, mergeable)
→ baseline (statistics.json and constraints.json) → drift (a window against the baseline)
→ violations (constraint_violations.json); formats types the three files.
"""
