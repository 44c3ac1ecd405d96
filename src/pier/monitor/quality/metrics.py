"""Model-quality metrics: regression (RMSE, MAE, R²) and classification (accuracy, precision,
recall, F1, ROC AUC), in numpy.

Why not scikit-learn's `sklearn.metrics`, which the tests compare every formula against:
importing it costs over a second of CPU (scipy, joblib, threadpoolctl...) in every `pier
quality`, where numpy costs a tenth; and its conventions for undefined values are warnings
(which pytest turns into errors here) plus a substituted 0, NaN or 1. Here an undefined value is
`None`, said as such:

- R² needs at least two distinct labels (scikit-learn answers NaN for one row, and 0.0 or 1.0
  for a constant label);
- binary precision needs a predicted positive, recall an actual positive, F1 either; AUC needs a
  score for every row and both classes among the labels;
- macro averages (multiclass) run over every class seen among the labels or the predictions; a
  class's precision or recall that is 0/0 counts as 0, which is scikit-learn's
  `zero_division=0`; macro AUC is one-vs-rest over the classes present among the labels (each
  needs positives and negatives), where scikit-learn refuses a window in which a class of the
  probability vectors never occurs. Probability vectors need not sum to 1.

AUC is the Mann–Whitney form, `(sum of the positives' ranks − n₊(n₊+1)/2) / (n₊·n₋)` with tied
scores sharing their average rank: the area under the ROC curve with ties drawn as diagonals,
exactly what `roc_auc_score` computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Metrics = dict[str, float | None]

REGRESSION_METRICS = ("rmse", "mae", "r2")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> Metrics:
    """rmse, mae, r2 of paired values (None for all three when there are none)."""
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if truth.shape != predicted.shape:
        raise ValueError(f"{truth.size} labels for {predicted.size} predictions")
    if truth.size == 0:
        return dict.fromkeys(REGRESSION_METRICS)
    error = predicted - truth
    squared = float(np.dot(error, error))
    spread = truth - truth.mean()
    total = float(np.dot(spread, spread))
    return {
        "rmse": math.sqrt(squared / truth.size),
        "mae": float(np.abs(error).mean()),
        "r2": 1.0 - squared / total if total > 0 else None,
    }


def roc_auc(truth: Sequence[bool] | Bools, scores: Sequence[float] | Floats) -> float | None:
    """Area under the ROC curve of `scores` for the positives `truth`; None with one class."""
    positive = np.asarray(truth, dtype=np.bool_)
    values = np.asarray(scores, dtype=np.float64)
    if positive.shape != values.shape:
        raise ValueError(f"{positive.size} labels for {values.size} scores")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties share the mean
    rank_sum = float(average_rank[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def binary_metrics(
    truth: Sequence[bool] | Bools,
    predicted: Sequence[bool] | Bools,
    scores: Sequence[float] | Floats | None = None,
) -> Metrics:
    """accuracy, precision, recall, f1 of the positive class; auc when every row has a score."""
    t = np.asarray(truth, dtype=np.bool_)
    p = np.asarray(predicted, dtype=np.bool_)
    if t.shape != p.shape:
        raise ValueError(f"{t.size} labels for {p.size} predictions")
    if t.size == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS)
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return {
        "accuracy": float(np.count_nonzero(t == p)) / t.size,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": None if scores is None else roc_auc(t, scores),
    }


def multiclass_metrics(
    truth: Sequence[str],
    predicted: Sequence[str],
    probabilities: Sequence[Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
) -> Metrics:
    """accuracy; macro precision, recall, f1; macro one-vs-rest auc when `probabilities` (one
    vector per row, its columns the `classes`) are given."""
    t = np.asarray(truth, dtype=object)
    p = np.asarray(predicted, dtype=object)
    if t.shape != p.shape:
        raise ValueError(f"{t.size} labels for {p.size} predictions")
    if t.size == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS)
    precisions, recalls, f1s = [], [], []
    for c in sorted(set(truth) | set(predicted)):
        is_true, is_pred = t == c, p == c
        tp = int(np.count_nonzero(is_true & is_pred))
        fp = int(np.count_nonzero(~is_true & is_pred))
        fn = int(np.count_nonzero(is_true & ~is_pred))
        precisions.append(_ratio(tp, tp + fp) or 0.0)
        recalls.append(_ratio(tp, tp + fn) or 0.0)
        f1s.append(_ratio(2 * tp, 2 * tp + fp + fn) or 0.0)
    auc = None
    if probabilities is not None and classes is not None:
        auc = macro_auc(t, np.asarray(probabilities, dtype=np.float64), classes)
    return {
        "accuracy": float(np.count_nonzero(t == p)) / t.size,
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "f1": float(np.mean(f1s)),
        "auc": auc,
    }


def macro_auc(
    truth: npt.NDArray[np.object_], probabilities: Floats, classes: Sequence[str]
) -> float | None:
    """Mean one-vs-rest AUC over the classes that have positives and negatives among `truth`."""
    if probabilities.ndim != 2 or probabilities.shape != (truth.size, len(classes)):
        raise ValueError(
            f"probabilities of shape {probabilities.shape} for {truth.size} rows and "
            f"{len(classes)} classes"
        )
    aucs = [roc_auc(truth == c, probabilities[:, j]) for j, c in enumerate(classes)]
    defined = [a for a in aucs if a is not None]
    return float(np.mean(defined)) if defined else None


__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Metrics",
    "binary_metrics",
    "macro_auc",
    "multiclass_metrics",
    "regression_metrics",
    "roc_auc",
]
