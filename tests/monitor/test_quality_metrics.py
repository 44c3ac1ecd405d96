"""Every model-quality metric against scikit-learn and hand-computed values, and the cases
scikit-learn calls undefined (None here, never a warning)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from pier.monitor.quality.metrics import (
    binary_metrics,
    macro_auc,
    multiclass_metrics,
    regression_metrics,
    roc_auc,
)


def test_regression_by_hand() -> None:
    got = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0])
    # errors 0.5, 0, -1, 1: squares 0.25 + 0 + 1 + 1 = 2.25; |e| = 2.5; SStot = 5
    assert got["rmse"] == pytest.approx(math.sqrt(2.25 / 4))
    assert got["mae"] == pytest.approx(2.5 / 4)
    assert got["r2"] == pytest.approx(1 - 2.25 / 5)


@pytest.mark.parametrize("seed", range(5))
def test_regression_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, 200)
    p = y + rng.normal(0, 1, 200)
    got = regression_metrics(y.tolist(), p.tolist())
    assert got["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y, p)), rel=1e-12)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, p), rel=1e-12)
    assert got["r2"] == pytest.approx(sk.r2_score(y, p), rel=1e-12)


def test_regression_undefined() -> None:
    assert regression_metrics([], []) == {"rmse": None, "mae": None, "r2": None}
    one = regression_metrics([2.0], [3.0])
    assert one == {"rmse": 1.0, "mae": 1.0, "r2": None}  # sklearn: NaN and a warning
    constant = regression_metrics([5.0, 5.0, 5.0], [5.0, 6.0, 4.0])
    assert constant["r2"] is None  # sklearn: 0.0 (force_finite)
    with pytest.raises(ValueError, match="2 labels for 1 predictions"):
        regression_metrics([1.0, 2.0], [1.0])


def test_binary_by_hand() -> None:
    truth = [True, True, True, False, False, False, False, True]
    pred = [True, True, False, True, False, False, False, False]
    got = binary_metrics(truth, pred)
    # tp 2, fp 1, fn 2, tn 3
    assert got == {
        "accuracy": 5 / 8,
        "precision": 2 / 3,
        "recall": 2 / 4,
        "f1": 4 / 7,
        "auc": None,
    }


@pytest.mark.parametrize("seed", range(5))
def test_binary_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(300) < 0.3
    scores = np.clip(truth * 0.3 + rng.random(300) * 0.7, 0, 1).round(2)  # ties on purpose
    pred = scores >= 0.5
    got = binary_metrics(truth.tolist(), pred.tolist(), scores.tolist())
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(truth, pred))
    assert got["precision"] == pytest.approx(sk.precision_score(truth, pred))
    assert got["recall"] == pytest.approx(sk.recall_score(truth, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(truth, pred))
    assert got["auc"] == pytest.approx(sk.roc_auc_score(truth, scores), rel=1e-12)


def test_auc_by_hand_with_ties() -> None:
    # positives 0.8, 0.5; negatives 0.5, 0.1: pairs (0.8>0.5) (0.8>0.1) (0.5=0.5: ½) (0.5>0.1)
    assert roc_auc([True, True, False, False], [0.8, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, True], [0.1, 0.9]) is None


def test_binary_undefined() -> None:
    # no predicted positive: precision undefined; no actual positive: recall undefined
    got = binary_metrics([True, False], [False, False], [0.4, 0.3])
    assert got["precision"] is None
    assert got["recall"] == 0.0
    assert got["f1"] == 0.0
    assert got["auc"] == 1.0
    none = binary_metrics([False, False], [False, False], [0.4, 0.3])
    assert none["recall"] is None
    assert none["f1"] is None
    assert none["auc"] is None  # one class: undefined
    assert none["accuracy"] == 1.0
    assert binary_metrics([], []) == dict.fromkeys(("accuracy", "precision", "recall", "f1", "auc"))


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    truth_idx = rng.integers(0, 4, 400)
    logits = rng.normal(0, 1, (400, 4))
    logits[np.arange(400), truth_idx] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred_idx = probs.argmax(axis=1)
    truth = [classes[i] for i in truth_idx]
    pred = [classes[i] for i in pred_idx]
    got = multiclass_metrics(truth, pred, probs.tolist(), classes)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(truth, pred))
    for name, fn in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        assert got[name] == pytest.approx(fn(truth, pred, average="macro", zero_division=0))
    expected = sk.roc_auc_score(truth, probs, multi_class="ovr", average="macro", labels=classes)
    assert got["auc"] == pytest.approx(expected, rel=1e-12)


def test_multiclass_zero_division_counts_zero_like_sklearn() -> None:
    truth = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]  # "c" never predicted: its precision is 0/0
    got = multiclass_metrics(truth, pred)
    for name, fn in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        assert got[name] == pytest.approx(fn(truth, pred, average="macro", zero_division=0))
    assert got["auc"] is None


def test_macro_auc_skips_classes_absent_from_the_labels() -> None:
    truth = np.asarray(["0", "0", "1", "1"], dtype=object)
    probs = np.asarray([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    # class "2" has no positive: left out (scikit-learn refuses the whole window)
    expected = (roc_auc(truth == "0", probs[:, 0]) + roc_auc(truth == "1", probs[:, 1])) / 2
    assert macro_auc(truth, probs, ["0", "1", "2"]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="for 4 rows and 2 classes"):
        macro_auc(truth, probs, ["0", "1"])
