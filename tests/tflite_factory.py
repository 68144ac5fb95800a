"""Tiny real .tflite models in every recipe, with model cards and a matching test set, made with
TensorFlow alone so the agent and bundle tests do not depend on the conversion pipeline.

A small Keras CNN is trained for a few seconds on a synthetic "bright square or not" task (so the
metrics are not degenerate), exported with `export()` and converted with
`TFLiteConverter.from_saved_model` (TOOLCHAIN.md: `from_concrete_functions` silently drops Keras 3
weights). The output is cached under `.cache/tflite-factory/<key>/` (git-ignored) because several
test modules need the same models and TensorFlow conversion costs seconds per recipe."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgebench.device.schema import MODEL_CARD_SCHEMA

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("fp32", "dynamic", "fp16", "int8", "int16x8")
IMG = 32
CLASS_NAMES = ["benign", "malignant"]
# Deliberately not (0, 1): a harness that skips normalization gets visibly different numbers.
NORMALIZATION = {"pixel_scale": 1.0 / 255.0, "mean": [0.5], "std": [0.25]}
ARCH = "tinycnn"


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×32×32×1 speckle-like noise; label 1 (malignant) images carry a bright square."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(labels)
    images = rng.normal(90, 30, size=(n, IMG, IMG, 1))
    for i in np.flatnonzero(labels):
        y, x, s = rng.integers(2, 18), rng.integers(2, 18), rng.integers(6, 12)
        images[i, y:y + s, x:x + s, 0] += rng.uniform(40, 90)
    # A few hard cases per class so accuracy is not trivially 1.
    flip = rng.random(n) < 0.08
    labels[flip] = 1 - labels[flip]
    return np.clip(images, 0, 255).astype(np.uint8), labels


def normalize(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32) * NORMALIZATION["pixel_scale"]
    return ((x - np.float32(NORMALIZATION["mean"][0])) / np.float32(NORMALIZATION["std"][0])
            ).astype(np.float32)


def _cache_key() -> str:
    """The source, TensorFlow's version and the kernel limits in force: models trained under
    another setting of tests/kernels.py are other models, and must not be taken from the cache."""
    import tensorflow as tf

    from kernels import active

    src = Path(__file__).read_bytes()
    limits = json.dumps(active(), sort_keys=True).encode()
    return hashlib.sha256(src + tf.__version__.encode() + limits).hexdigest()[:16]


def _train_keras(seed: int = 0):
    # Keras 3 itself, not tf.keras: importing onnx2tf sets TF_USE_LEGACY_KERAS=1, after which
    # tf.keras in the same process is tf_keras (other weights, no export(verbose=))
    import keras

    keras.utils.set_random_seed(seed)
    images, labels = synthetic_images(256, seed=seed + 100)
    def build(batch_size):
        return keras.Sequential([
            keras.Input((IMG, IMG, 1), batch_size=batch_size),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalMaxPooling2D(),
            # 32x64 weights: above the 1024-element floor under which dynamic-range quantization
            # leaves a layer in float (the FULLY_CONNECTED that tflite-runtime 2.14 cannot run).
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(2),
        ])

    # Trained with a free batch size, then copied into a batch-1 model: the shape the device runs.
    twin = build(None)
    twin.compile(optimizer=keras.optimizers.Adam(3e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    twin.fit(normalize(images), labels, epochs=8, batch_size=32, verbose=0)
    model = build(1)
    model.set_weights(twin.get_weights())
    return model


def _convert(saved_model: Path, recipe: str, calib: np.ndarray) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if recipe == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif recipe == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif recipe in ("int8", "int16x8"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        if recipe == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        else:
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            conv.inference_input_type = tf.int16
            conv.inference_output_type = tf.int16
    return conv.convert()


def _card(path: Path, recipe: str) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    return {
        "schema": MODEL_CARD_SCHEMA, "name": f"{ARCH}.{recipe}", "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size_bytes": path.stat().st_size, "recipe": recipe, "architecture": ARCH,
        "input": {"shape": [int(s) for s in i["shape"]], "dtype": np.dtype(i["dtype"]).name,
                  "layout": "NHWC", "scale": float(i["quantization"][0]),
                  "zero_point": int(i["quantization"][1]), "normalization": NORMALIZATION},
        "output": {"shape": [int(s) for s in o["shape"]], "dtype": np.dtype(o["dtype"]).name,
                   "scale": float(o["quantization"][0]),
                   "zero_point": int(o["quantization"][1])},
        "class_names": CLASS_NAMES, "positive_class": 1, "source": None,
        "tools": {"tensorflow": __import__("tensorflow").__version__}, "conversion_seconds": None,
        "verification": None,
    }


# What the tests built on these models take for granted, whatever CPU trained them: accuracy well
# above chance, and no test image within rounding of the decision boundary, so that two runtimes,
# two CPUs or fp16 on a GPU can be asked for the same class image by image. Measured: 46 of 48
# right (8 % of the labels are flipped on purpose) and every image at least 1.02 apart
# in logits, for seeds 0-4 with native kernels and seed 0 under SSE4.1 (tests/kernels.py), whose
# model differed from the native one in the sixth decimal.
MIN_LOGIT_MARGIN = 0.25
MIN_ACCURACY = 0.75


def _check_premise(logits: np.ndarray, labels: np.ndarray) -> None:
    margin = float(np.abs(logits[:, 1] - logits[:, 0]).min())
    accuracy = float((logits.argmax(1) == labels).mean())
    if margin < MIN_LOGIT_MARGIN or accuracy < MIN_ACCURACY:
        raise AssertionError(
            f"tflite_factory: the Keras model trained on this CPU has accuracy {accuracy:.3f} "
            f"(needs {MIN_ACCURACY}) and a smallest logit margin of {margin:.3g} (needs "
            f"{MIN_LOGIT_MARGIN}): the tests that compare runtimes image by image would depend "
            f"on rounding; train it longer or on a clearer task")


def _build(dest: Path) -> None:
    model = _train_keras()
    work = Path(tempfile.mkdtemp(prefix="tflite-factory-"))
    try:
        model.export(str(work / "saved_model"), verbose=False)
        calib = normalize(synthetic_images(64, seed=7)[0])
        models = dest / "models"
        models.mkdir(parents=True)
        for recipe in RECIPES:
            path = models / f"{ARCH}.{recipe}.tflite"
            path.write_bytes(_convert(work / "saved_model", recipe, calib))
            (models / f"{ARCH}.{recipe}.json").write_text(json.dumps(_card(path, recipe), indent=1))
        images, labels = synthetic_images(48, seed=1234)
        np.savez(dest / "testset.npz", images=images, labels=labels,
                 class_names=np.array(CLASS_NAMES))
        logits = np.concatenate([np.asarray(model(normalize(images)[k:k + 1]))
                                 for k in range(len(images))]).astype(np.float32)
        _check_premise(logits, labels)
        np.save(dest / "reference.npy", logits)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def factory_dir() -> Path:
    """Folder with models/<tinycnn.RECIPE>.{tflite,json}, testset.npz (48 images) and
    reference.npy (the Keras float logits on that test set); built once, then cached."""
    root = REPO / ".cache" / "tflite-factory"
    dest = root / _cache_key()
    if (dest / "reference.npy").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        _build(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # built by someone else meanwhile
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def make_bundle(out: Path, recipes=RECIPES, reference: bool = True) -> Path:
    """A bundle built by the real `build_bundle` from the factory's models and test set, plus the
    Keras float reference (the factory's cards have no checkpoint to derive one from)."""
    from edgebench.host.bundle import build_bundle

    src = factory_dir()
    models = Path(tempfile.mkdtemp(prefix="models-", dir=out.parent))
    for recipe in recipes:
        for ext in ("tflite", "json"):
            shutil.copy(src / "models" / f"{ARCH}.{recipe}.{ext}", models)
    bundle = build_bundle(models, out, testset=src / "testset.npz", run_id="test-run")
    shutil.rmtree(models)
    if reference:
        (bundle / "reference").mkdir(exist_ok=True)
        shutil.copy(src / "reference.npy", bundle / "reference" / f"{ARCH}.npy")
        manifest = json.loads((bundle / "manifest.json").read_text())
        for entry in manifest["models"]:
            entry["reference"] = f"reference/{ARCH}.npy"
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return bundle


# A deliberately slow fp32 model with the same 32x32x1 input and card layout: the input upsampled
# to 96x96, then four 64-channel 3x3 convolutions (~2.7 GFLOP, ~15 ms on one thread here)
# so frame-rate tests have a model that cannot meet a short deadline, and stream tests an invoke
# long enough for the runtime's own concurrency to show. Random weights (it is timed, not judged).
SLOW_ARCH = "slowcnn"
SLOW_LAYERS, SLOW_FILTERS = 4, 64


def _build_slow(dest: Path) -> None:
    import keras  # Keras 3, as in _train_keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((IMG, IMG, 1), batch_size=1)]
    layers += [keras.layers.UpSampling2D(3)]
    layers += [keras.layers.Conv2D(SLOW_FILTERS, 3, padding="same", activation="relu")
               for _ in range(SLOW_LAYERS)]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    model = keras.Sequential(layers)
    work = Path(tempfile.mkdtemp(prefix="tflite-factory-slow-"))
    try:
        model.export(str(work / "saved_model"), verbose=False)
        models = dest / "models"
        models.mkdir(parents=True)
        path = models / f"{SLOW_ARCH}.fp32.tflite"
        path.write_bytes(_convert(work / "saved_model", "fp32", np.zeros((0,))))
        card = _card(path, "fp32")
        card.update(name=f"{SLOW_ARCH}.fp32", architecture=SLOW_ARCH)
        (models / f"{SLOW_ARCH}.fp32.json").write_text(json.dumps(card, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def slow_dir() -> Path:
    """Folder with models/slowcnn.fp32.{tflite,json}; built once, then cached like factory_dir()."""
    root = REPO / ".cache" / "tflite-factory"
    dest = root / (_cache_key() + "-slow")
    if (dest / "models" / f"{SLOW_ARCH}.fp32.tflite").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-slow-", dir=root))
    try:
        _build_slow(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def make_slow_bundle(out: Path) -> Path:
    """A bundle (real build_bundle) with tinycnn.fp32 (fast, ~0.05 ms) and slowcnn.fp32 (slow) and
    the factory's test set."""
    from edgebench.host.bundle import build_bundle

    models = Path(tempfile.mkdtemp(prefix="models-", dir=out.parent))
    for src, name in ((factory_dir(), f"{ARCH}.fp32"), (slow_dir(), f"{SLOW_ARCH}.fp32")):
        for ext in ("tflite", "json"):
            shutil.copy(src / "models" / f"{name}.{ext}", models)
    bundle = build_bundle(models, out, testset=factory_dir() / "testset.npz", run_id="test-run")
    shutil.rmtree(models)
    return bundle
