"""Model quality: captured predictions joined with ground truth, and metrics per variant.

ground_truth (validate uploads, store, read a window) + captures (the endpoint's captured
predictions of a window) → quality (join by event id, bucket, pure) → metrics (regression and
classification, numpy).
"""
