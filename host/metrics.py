"""Binary classification metrics with malignant as the positive class (numpy only).

The device agent carries its own copy (it may not import the host package); a test checks the two
agree on the same predictions."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged.
    NaN when only one class is present (AUC is undefined then)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(labels: np.ndarray, logits: np.ndarray, positive: int = 1) -> dict:
    """accuracy, sensitivity (recall of the positive class), specificity, AUC and the confusion
    matrix counts tn/fp/fn/tp, from logits (or probabilities) of shape N×K."""
    labels = np.asarray(labels).astype(np.int64)
    logits = np.asarray(logits)
    pred = logits.argmax(axis=1)
    pos_true, pos_pred = labels == positive, pred == positive
    tp = int((pos_true & pos_pred).sum())
    tn = int((~pos_true & ~pos_pred).sum())
    fp = int((~pos_true & pos_pred).sum())
    fn = int((pos_true & ~pos_pred).sum())
    n = len(labels)
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else float("nan"),
        "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "auc": roc_auc(pos_true, softmax(logits)[:, positive]),
        "tn": tn, "fp": fp, "fn": fn, "tp": tp,
    }


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the same under both models."""
    return float((np.asarray(logits_a).argmax(1) == np.asarray(logits_b).argmax(1)).mean())
