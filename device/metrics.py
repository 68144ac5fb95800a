"""Inputs, outputs and metrics (numpy only), shared by the agent and the host (the host imports
edgebench.device.metrics; there is no second copy): model input from uint8 pixels, dequantized
outputs, classification metrics with the card's positive class, latency statistics."""
from __future__ import annotations

import numpy as np


def to_model_input(images_u8, normalization, dtype, scale: float, zero_point: int):
    """uint8 N×H×W×C pixels -> the model's input tensor: normalised per the card, then quantized
    with the model's own scale/zero point for integer inputs (never raw pixels into int8)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and not scale:
        # An integer input without quantization parameters takes pixels as they are.
        return np.clip(images_u8, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    norm = normalization or {"pixel_scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}
    x = images_u8.astype(np.float32) * np.float32(norm["pixel_scale"])
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


# A model input's layout -> where each of its axes is in an N×H×W×C image batch (the test set's
# and to_model_input's order): an ONNX model exported from PyTorch takes NCHW.
LAYOUT_AXES = {"NHWC": (0, 1, 2, 3), "NCHW": (0, 3, 1, 2)}


def layout_axes(layout) -> tuple:
    axes = LAYOUT_AXES.get(layout or "NHWC")
    if axes is None:
        raise ValueError("unknown input layout %r; the agent knows %s"
                         % (layout, ", ".join(LAYOUT_AXES)))
    return axes


def to_layout(x_nhwc, layout):
    """An N×H×W×C batch in the model's layout (contiguous: runtimes want dense tensors)."""
    axes = layout_axes(layout)
    return x_nhwc if axes == LAYOUT_AXES["NHWC"] else np.ascontiguousarray(x_nhwc.transpose(axes))


def image_shape(shape, layout) -> list:
    """The N×H×W×C shape of the images a model input of `shape` in `layout` takes (a shape of
    another rank as it is: it fits no image batch either way)."""
    axes = layout_axes(layout)
    if len(shape) != len(axes):
        return [int(s) for s in shape]
    nhwc = [0] * len(shape)
    for position, axis in enumerate(axes):
        nhwc[axis] = int(shape[position])
    return nhwc


def dequantize(values, scale: float, zero_point: int):
    values = np.asarray(values)
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float32) - zero_point) * np.float32(scale)
    return values.astype(np.float32)


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def roc_auc(labels, scores) -> float:
    """Rank-sum AUC with tied scores averaged; NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1.0
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(labels, logits, positive: int = 1) -> dict:
    labels = np.asarray(labels).astype(np.int64)
    logits = np.asarray(logits)
    pred = logits.argmax(axis=1)
    pos_true, pos_pred = labels == positive, pred == positive
    tp, tn = int((pos_true & pos_pred).sum()), int((~pos_true & ~pos_pred).sum())
    fp, fn = int((~pos_true & pos_pred).sum()), int((pos_true & ~pos_pred).sum())
    n = len(labels)
    nan = float("nan")
    return {"n": n, "accuracy": (tp + tn) / n if n else nan,
            "sensitivity": tp / (tp + fn) if tp + fn else nan,
            "specificity": tn / (tn + fp) if tn + fp else nan,
            "auc": roc_auc(pos_true, softmax(logits)[:, positive]),
            "tn": tn, "fp": fp, "fn": fn, "tp": tp}


def latency_stats(samples_ns) -> dict:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    std = ms.std(ddof=1) if len(ms) > 1 else 0.0
    return {"count": len(ms), "mean_ms": ms.mean(), "std_ms": std,
            "min_ms": ms.min(), "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99,
            "max_ms": ms.max()}



def agreement(logits_a, logits_b) -> float:
    """Fraction of samples whose top-1 class is the same under both models."""
    return float((np.asarray(logits_a).argmax(1) == np.asarray(logits_b).argmax(1)).mean())


def per_image(logits, labels, positive: int, testset: str = "clean") -> list:
    """predictions.csv lines (without the key): test set, positive class, image, label,
    predicted class, positive-class score."""
    logits = np.asarray(logits, dtype=np.float64)
    scores = softmax(logits)[:, positive]
    return [(testset, positive, i, int(label), int(pred), float(score)) for i, (label, pred, score)
            in enumerate(zip(labels, logits.argmax(axis=1), scores))]


def accuracy_fields(logits, labels, reference, positive: int) -> dict:
    logits = np.asarray(logits, dtype=np.float64)
    m = classification_metrics(labels, logits, positive)
    fields = dict((k, m[k]) for k in ("accuracy", "sensitivity", "specificity", "auc",
                                      "tn", "fp", "fn", "tp"))
    fields["n_test"] = m["n"]
    if reference is not None and reference.shape == logits.shape:
        fields["agreement"] = float((reference.argmax(1) == logits.argmax(1)).mean())
    return fields

