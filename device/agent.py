#!/usr/bin/env python3
"""edgebench device agent: times, measures memory and accuracy of .tflite models on the device.

One self-contained file: it imports only the standard library, numpy, a TFLite interpreter
(ai_edge_litert, tflite_runtime or tensorflow.lite) and, where present, psutil. It must run on
Python 3.8 and newer. The host package reads the schema section below (the single definition of
the bundle manifest, the model card and the CSV columns shared by host and device).
"""
from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# SCHEMA: shared by host and device, defined only here. Bump a version when a field changes
# meaning or disappears; adding a trailing CSV column is also a bump (readers check it).
# ---------------------------------------------------------------------------------------------
MODEL_CARD_SCHEMA = "edgebench.model-card/1"
MANIFEST_SCHEMA = "edgebench.manifest/1"
RESULTS_SCHEMA_VERSION = 1

# Model card (JSON beside every .tflite, and one entry per model in manifest.json):
#   schema, name ("resnet18.int8"), file, sha256, size_bytes, recipe, architecture,
#   input:  {shape [1,H,W,C], dtype, layout "NHWC", scale, zero_point,
#            normalization {pixel_scale, mean [C], std [C]}}   # x = (u8*pixel_scale - mean)/std
#   output: {shape, dtype, scale, zero_point}
#   class_names, positive_class (index of the positive class, "malignant"),
#   source {checkpoint, onnx, saved_model, data_spec, img_size, split_seed},
#   tools {torch, onnx, onnx2tf, tensorflow, ...}, conversion_seconds,
#   verification {max_abs_diff, agreement, accuracy, n} (null when not verified)
# Manifest (bundle/manifest.json):
#   schema, run_id, created (ISO 8601 UTC), testset ("testset.npz" or null),
#   models: [card + {"file": "models/<name>.tflite", "reference": "reference/<arch>.npy" or null}]
# testset.npz: images uint8 N×H×W×C, labels int64 N, class_names str[K]
# reference/<arch>.npy: float32 N×K logits of the float (PyTorch) model on the test set

RESULT_COLUMNS = (
    "schema_version", "run_id", "model", "architecture", "recipe", "sha256", "file_size_mb",
    "threads", "xnnpack", "runtime", "runtime_version", "status", "error",
    "load_ms", "first_inference_ms", "warmup_runs",
    "count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
    "rss_before_mb", "rss_after_load_mb", "peak_rss_mb",
    "n_test", "accuracy", "sensitivity", "specificity", "auc", "tn", "fp", "fn", "tp",
    "agreement",
    "temp_before_c", "temp_after_c", "throttled", "throttled_flags",
    "device_model", "machine", "cpu", "cores", "governor", "freq_mhz", "os",
    "python", "numpy", "emulated", "hostname", "started_utc",
)
SAMPLE_COLUMNS = ("schema_version", "run_id", "model", "sha256", "threads", "run", "latency_ms")
