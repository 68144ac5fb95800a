"""Accuracy: the test sets a bundle carries (clean and corrupted), the child's pass over them and
the parent's rows from what it returned. Measured once per configuration (schema.output_key):
threads and rounds do not change a model's outputs."""
from __future__ import annotations

import os

import numpy as np

from ..common import one_line, say
from ..metrics import (classification_metrics, dequantize, image_shape, per_image,
                       to_model_input)


# --- the child's side ---------------------------------------------------------------------------
def logits_of(session, images, normalization) -> list:
    """One inference per image through the session; dequantized outputs as lists."""
    (in_scale, in_zp), (out_scale, out_zp) = session.in_q, session.out_q
    logits = []
    for i in range(len(images)):
        session.set_input(to_model_input(images[i:i + 1], normalization, session.input_dtype,
                                         in_scale, in_zp))
        session.invoke()
        logits.append(dequantize(session.output(), out_scale, out_zp).ravel())
    return np.stack(logits).tolist()


def measure_logits(session, job: dict, result: dict) -> None:
    """The whole test set, then the first N images of each corrupted set."""
    norm = job["input"].get("normalization")
    with np.load(job["testset"], allow_pickle=False) as data:
        images = data["images"]
    result["logits"] = logits_of(session, images, norm)
    corrupted = {}
    for item in job.get("robustness") or ():
        with np.load(item["path"], allow_pickle=False) as data:
            images = data["images"][:job["robustness_images"]]
        corrupted[item["name"]] = logits_of(session, images, norm)
    result["robustness_logits"] = corrupted


# --- the parent's side --------------------------------------------------------------------------
class TestSets:
    """The bundle's clean test set (path, labels, image shape; or why there is none) and its
    corrupted sets: `corrupted` [{name, corruption, severity, path}] can be measured, `broken`
    [{corruption, severity, error}] cannot, and say why."""

    def __init__(self, bundle: str, manifest: dict):
        self.bundle = bundle
        self.path, self.labels, self.image_shape, self.missing = self._load_clean(manifest)
        self.corrupted, self.broken = self._load_corrupted(manifest)

    def _load_clean(self, manifest: dict):
        name = manifest.get("testset")
        path = os.path.join(self.bundle, name) if name else None
        if not path or not os.path.isfile(path):
            why = ("testset.npz is missing from the bundle" if name
                   else "the bundle has no test set")
            say("%s: timing and memory only, accuracy columns stay empty" % why)
            return None, None, None, "accuracy not measured: " + why
        with np.load(path, allow_pickle=False) as data:
            return path, data["labels"].astype(np.int64), list(data["images"].shape[1:]), None

    def _load_corrupted(self, manifest: dict):
        spec = manifest.get("robustness") or {}
        usable, broken = [], []
        for item in spec.get("sets") or []:
            name = "%s-%s" % (item.get("corruption"), item.get("severity"))
            path = os.path.join(self.bundle, item.get("file", ""))
            error = None
            if self.path is None:
                error = "no clean test set to take labels from"
            elif not os.path.isfile(path):
                error = "corrupted set missing on the device: %s" % item.get("file")
            else:
                try:
                    with np.load(path, allow_pickle=False) as data:
                        shape = list(data["images"].shape)
                    if shape[1:] != self.image_shape or shape[0] != len(self.labels):
                        error = ("corrupted set %s is %s but the test set is %s"
                                 % (item.get("file"), "x".join(map(str, shape)),
                                    "x".join(map(str, [len(self.labels)] + self.image_shape))))
                except Exception as exc:
                    error = "corrupted set %s unreadable: %s" % (item.get("file"), one_line(exc, 120))
            entry = {"name": name, "corruption": item.get("corruption"),
                     "severity": item.get("severity")}
            if error:
                broken.append(dict(entry, error=error))
            else:
                usable.append(dict(entry, path=path))
        return usable, broken

    def robustness_inferences(self, robustness_images: int, configurations: int) -> int:
        n = min(len(self.labels), robustness_images or len(self.labels)) \
            if self.labels is not None else 0
        return len(self.corrupted) * n * configurations

    def block(self, entry: dict):
        """Why accuracy cannot be measured for this model, or None when it can."""
        if self.missing:
            return self.missing
        if not entry.get("input", {}).get("normalization"):
            return "accuracy not measured: the model card has no input normalization"
        card = entry["input"]
        shape = image_shape(card.get("shape") or [], card.get("layout"))[1:]
        if shape and shape != self.image_shape:
            return ("accuracy not measured: test images are %s but the model takes %s"
                    % ("x".join(map(str, self.image_shape)), "x".join(map(str, shape))))
        return None

    def robustness_rows(self, base: dict, positive: int, corrupted: dict, predictions: list,
                        fp32_predicted) -> list:
        """robustness.csv rows for one configuration (`base`: its key fields); adds its
        corrupted-set predictions to `predictions`. fp32_predicted(test set name) gives the
        architecture's fp32 predictions {image: class} under the same unit, or None."""
        rows = [dict(base, corruption=b["corruption"], severity=b["severity"], status="error",
                     error=b["error"]) for b in self.broken]
        for item in self.corrupted:
            logits = np.asarray(corrupted.get(item["name"], []), dtype=np.float64)
            if not len(logits):
                continue
            labels = self.labels[:len(logits)]
            m = classification_metrics(labels, logits, positive)
            predicted = logits.argmax(axis=1)
            row = dict(base, corruption=item["corruption"], severity=item["severity"],
                       n=m["n"], status="ok", **dict((k, m[k]) for k in
                                                     ("accuracy", "sensitivity", "specificity",
                                                      "auc")))
            theirs = fp32_predicted(item["name"])
            if base.get("recipe") == "fp32":
                row["agreement_fp32"] = 1.0
            elif theirs and all(i in theirs for i in range(len(predicted))):
                row["agreement_fp32"] = float(np.mean([theirs[i] == p for i, p in
                                                       enumerate(predicted)]))
            rows.append(row)
            predictions.extend(per_image(logits, labels, positive, item["name"]))
        return rows
