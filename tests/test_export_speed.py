"""The faster conversion path builds the same models as the one it replaced (issue 29):
onnx-simplifier's passes in one process give the graph onnx2tf's three `onnxsim` runs gave, and a
run whose models convert in worker processes while the next model trains writes the same cards,
verify results and models as converting each one here, one after the other."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench.host.export.onnx_export import export_onnx, read_onnx_input
from edgebench.host.export.onnx_simplify import LEFT_ALONE, simplify_in_place


def _overwrite(path: Path) -> str:
    spec = read_onnx_input(path, None)
    return f"{spec.name}:{','.join(map(str, spec.shape))}"


@pytest.fixture(scope="module")
def exported_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from edgebench.host.checkpoint import build_from_checkpoint

    model, meta = build_from_checkpoint(tiny_checkpoint)
    out = tmp_path_factory.mktemp("simplify") / "resnet18.onnx"
    return export_onnx(model, meta.in_channels, meta.img_size, out)


def test_one_process_simplifies_to_the_graph_of_onnx2tfs_three_onnxsim_runs(exported_onnx,
                                                                           tmp_path):
    theirs, ours = tmp_path / "theirs.onnx", tmp_path / "ours.onnx"
    shutil.copyfile(exported_onnx, theirs)
    shutil.copyfile(exported_onnx, ours)
    shape = _overwrite(exported_onnx)
    onnxsim = Path(sys.executable).parent / "onnxsim"
    for _ in range(3):  # exactly what onnx2tf 1.29 runs (onnx2tf.py, "Simplify")
        subprocess.run([str(onnxsim), str(theirs), str(theirs), "--overwrite-input-shape", shape],
                       check=True, capture_output=True)
    assert simplify_in_place(ours, shape)
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.read_bytes() != exported_onnx.read_bytes()  # the passes did change the export


def test_a_graph_onnx2tf_treats_specially_is_left_to_it(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2])
    node = helper.make_node("Einsum", ["x"], ["y"], equation="abc->acb")
    path = tmp_path / "einsum.onnx"
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 18)]), path)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "edgebench.host.export.onnx_simplify", str(path),
                           "x:1,2,3"], capture_output=True)
    assert proc.returncode == LEFT_ALONE
    assert not simplify_in_place(path, "x:1,2,3") and path.read_bytes() == before
    assert not simplify_in_place(tmp_path / "missing.onnx", "x:1,2,3")  # onnx2tf then reports it


# --- the pipeline's export workers --------------------------------------------------------------

MODELS = ("resnet18", "mobilenet_v2")  # the two quickest to train and convert
RECIPES = ("fp32", "int8")


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    """Two tiny models through run_pipeline with two export workers (the default on 2 cores)."""
    from edgebench.host.pipeline import run_pipeline
    from edgebench.host.profiles import PROFILES
    from edgebench.host.targets import parse_target

    root = tmp_path_factory.mktemp("parallel")
    profile = PROFILES["quick"].with_overrides(models=MODELS, recipes=RECIPES, img_size=32,
                                               epochs=1, data="phantom:120", calib=16)
    target = dataclasses.replace(parse_target("local"), remote_dir=str(root / "device"))
    result = run_pipeline(profile, root, "t", [target], quiet=True, export_workers=2)
    return profile, result.run_dir


# What differs between two conversions of one model, whichever path: times, paths, and the
# file's bytes. TensorFlow names a model's functions after a counter of the process that converts
# it, so the same model converted after another one in the same process (the serial path, model
# after model) comes out a few hundred bytes longer than in a fresh process (measured on
# GoogLeNet at 32 px: 61,659,780 against 61,659,500 bytes, same weights and outputs).
_VARIES = ("checkpoint", "onnx", "saved_model", "created_utc", "path", "size_bytes", "sha256",
           "size_ratio_vs_fp32")


def _card(path: Path) -> dict:
    """A model card without what varies between two conversions of one model."""
    card = json.loads(path.read_text())

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()
                    if not (k.endswith("_s") or k.endswith("seconds") or k in _VARIES)}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip(card)


def _verify_rows(path: Path) -> tuple:
    """(verify.csv's rows without the sizes, the sizes): see _VARIES."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    sizes = [int(row.pop("size_bytes")) for row in rows]
    for row in rows:
        row.pop("size_ratio_vs_fp32")
    return rows, np.array(sizes)


def _outputs(model: Path, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for image in images:
        interp.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    return np.stack(rows)


def test_models_converted_aside_equal_models_converted_one_after_the_other(parallel_run,
                                                                          tmp_path):
    from edgebench.host.pipeline import _export

    profile, run_dir = parallel_run
    stages = json.loads((run_dir / "stages.json").read_text())
    assert {f"export:{m}" for m in MODELS} <= set(stages)  # recorded once each worker ended
    rng = np.random.default_rng(0)
    for arch in MODELS[:1]:  # the one converted while the other trained (the second: alike)
        aside = run_dir / "models" / arch
        here = tmp_path / arch
        here.mkdir()
        shutil.copyfile(aside / "best.pt", here / "best.pt")
        handed = _export(profile, here / "best.pt", here, True)
        assert handed["reference"].shape[0] == len(handed["test"]["labels"])
        (rows, sizes), (rows_here, sizes_here) = (_verify_rows(aside / "verify.csv"),
                                                  _verify_rows(here / "verify.csv"))
        assert rows == rows_here
        assert np.all(np.abs(sizes - sizes_here) <= 1e-4 * sizes), (sizes, sizes_here)
        for recipe in RECIPES:
            name = f"{arch}.{recipe}"
            assert _card(aside / f"{name}.json") == _card(here / f"{name}.json"), name
            images = _inputs(aside / f"{name}.tflite", rng)
            np.testing.assert_array_equal(_outputs(aside / f"{name}.tflite", images),
                                          _outputs(here / f"{name}.tflite", images))


def _inputs(model: Path, rng) -> np.ndarray:
    """Four random inputs of the model's own shape and type."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(model)).get_input_details()[0]
    shape, dtype = (4, *details["shape"][1:]), details["dtype"]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, shape).astype(dtype)
    return rng.random(shape, dtype=np.float32)


def _crash():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _refuse():
    from edgebench.host.errors import UserError

    raise UserError("onnx2tf cannot convert ONNX op 'Foo'")


def _fine(x):
    return x * 2


def test_a_conversion_process_that_dies_or_raises_is_one_line_and_the_others_are_kept():
    from edgebench.host.errors import UserError
    from edgebench.host.export_pool import ExportPool

    kept = []
    pool = ExportPool(1)
    try:
        pool.submit("[1/3] convert a", _fine, (21,), kept.append)
        pool.submit("[2/3] convert b", _refuse, (), kept.append)
        with pytest.raises(UserError, match="cannot convert ONNX op 'Foo'"):
            pool.finished(block=True)
    finally:
        pool.close(abort=True)
    assert kept == [42]  # the stage that ended before the failure was recorded

    pool = ExportPool(1)
    try:
        pool.submit("[2/3] convert b", _crash, (), kept.append)
        with pytest.raises(UserError) as err:
            pool.finished(block=True)
    finally:
        pool.close(abort=True)
    message = str(err.value)
    assert message.startswith("[2/3] convert b: the conversion process died") and "\n" not in message
