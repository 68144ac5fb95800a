"""The op profile's heavy-convolution model as .tflite (fp32 and int8), for the LiteRT half of
tests/test_op_profile.py: onnx_factory.heavy_conv_graph's architecture (a stem convolution, then
parallel branches of a convolution + ReLU + global average pool each, one of them the
deliberately heavy 5x5 224-channel convolution, concatenated into one dense layer) built in
Keras with random weights and converted with tflite_factory's converter, cached beside the
factory's models. Its 32x32x1 input and card follow the factory's, so it joins a factory bundle
and its test set."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from onnx_factory import HEAVY_ARCH, HEAVY_BRANCHES
from tflite_factory import (ARCH, IMG, REPO, _cache_key, _card, _convert, factory_dir,
                            normalize, synthetic_images)

RECIPES = ("fp32", "int8")
STEM = 16


def _keras_model():
    # Keras 3 itself, not tf.keras: importing onnx2tf sets TF_USE_LEGACY_KERAS=1, after which
    # tf.keras in the same process is tf_keras (other weights, no export(verbose=))
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((IMG, IMG, 1), batch_size=1)
    stem = keras.layers.Conv2D(STEM, 3, padding="same", activation="relu",
                                  name="conv_stem")(inp)
    pooled = [keras.layers.GlobalAveragePooling2D(name="pool_" + name)(
                  keras.layers.Conv2D(width, kernel, padding="same", activation="relu",
                                         name=name)(stem))
              for name, width, kernel in HEAVY_BRANCHES]
    out = keras.layers.Dense(2, name="fc")(keras.layers.Concatenate(name="concat")(pooled))
    return keras.Model(inp, out)


def _build(dest: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="heavy-tflite-"))
    try:
        _keras_model().export(str(work / "saved_model"), verbose=False)
        calib = normalize(synthetic_images(32, seed=7)[0])
        models = dest / "models"
        models.mkdir(parents=True)
        for recipe in RECIPES:
            path = models / f"{HEAVY_ARCH}.{recipe}.tflite"
            path.write_bytes(_convert(work / "saved_model", recipe, calib))
            card = _card(path, recipe)
            card.update(name=f"{HEAVY_ARCH}.{recipe}", architecture=HEAVY_ARCH)
            (models / f"{HEAVY_ARCH}.{recipe}.json").write_text(json.dumps(card, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def heavy_dir() -> Path:
    """Folder with models/heavyconv.{fp32,int8}.{tflite,json}; built once, then cached."""
    root = REPO / ".cache" / "tflite-factory"
    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]  # this recipe's own edits
    dest = root / f"{_cache_key()}-heavy-{own}"
    if all((dest / "models" / f"{HEAVY_ARCH}.{r}.json").is_file() for r in RECIPES):
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-heavy-", dir=root))
    try:
        _build(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # built by someone else meanwhile
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def make_heavy_bundle(out: Path, tiny_recipes=("fp32",), onnx_too: bool = True) -> Path:
    """A bundle (real build_bundle) with heavyconv.fp32 and heavyconv.int8 and the factory's
    tinycnn in `tiny_recipes` as .tflite, and the factory's test set; `onnx_too` adds
    heavyconv.ort.fp32 (onnx_factory)."""
    from edgebench.host.bundle import build_bundle

    from onnx_factory import add_heavy_conv_model

    models = Path(tempfile.mkdtemp(prefix="models-", dir=out.parent))
    names = ([(factory_dir(), f"{ARCH}.{r}") for r in tiny_recipes]
             + [(heavy_dir(), f"{HEAVY_ARCH}.{r}") for r in RECIPES])
    for src, name in names:
        for ext in ("tflite", "json"):
            shutil.copy(src / "models" / f"{name}.{ext}", models)
    bundle = build_bundle(models, out, testset=factory_dir() / "testset.npz", run_id="test-run")
    shutil.rmtree(models)
    if onnx_too:
        add_heavy_conv_model(bundle)
    return bundle
