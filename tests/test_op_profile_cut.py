"""The LiteRT op profile's cutter (device/agent/op_profile_tflite.py), the agent's own flatbuffer
patcher, against TensorFlow's own tools on real converted models (the factory's tinycnn in every
recipe, heavy_tflite.py's heavy-convolution model in fp32 and int8): every prefix the agent
would time computes what TensorFlow's flatbuffer_utils cut computes, and the agent's table of
builtin op names is the schema's."""
from __future__ import annotations

import numpy as np
import pytest

from heavy_tflite import heavy_dir
from onnx_factory import HEAVY_ARCH
from tflite_factory import factory_dir

pytestmark = pytest.mark.timeout(300)


def test_the_builtin_op_table_is_the_schemas():
    """The agent's table against the generated schemas of TensorFlow and of LiteRT."""
    from ai_edge_litert import schema_py_generated as litert_schema
    from tensorflow.lite.python import schema_py_generated as tf_schema

    from edgebench.device.agent.op_profile_tflite_ops import BUILTIN_OPS, builtin_name

    for schema in (tf_schema, litert_schema):
        codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        assert [builtin_name(code) for code in sorted(codes)] == [codes[c] for c in sorted(codes)]
        assert len(BUILTIN_OPS) == len(codes)
    assert builtin_name(len(BUILTIN_OPS)) == "BUILTIN_%d" % len(BUILTIN_OPS)


def tf_cut(data: bytes, k: int, outputs) -> bytes:
    """TensorFlow's own prefix: the model as an object tree, subgraph 0's operators and outputs
    (None: its inputs) replaced, signatures dropped, written anew."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    subgraph = model.subgraphs[0]
    subgraph.operators = subgraph.operators[:k + 1]
    subgraph.outputs = np.array(subgraph.inputs if outputs is None else outputs, dtype=np.int32)
    model.signatureDefs = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def run_model(content: bytes, x, xnnpack: bool) -> list:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=content, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    return [(d["name"], it.get_tensor(d["index"])) for d in it.get_output_details()]


CUT_MODELS = [("tinycnn", r) for r in ("fp32", "fp16", "dynamic", "int8", "int16x8")] + [
    (HEAVY_ARCH, r) for r in ("fp32", "int8")]


@pytest.mark.parametrize("arch,recipe", CUT_MODELS, ids=["%s.%s" % m for m in CUT_MODELS])
def test_a_cut_computes_what_tensorflows_own_cut_computes(arch, recipe):
    """Every prefix the agent would time, cut by the agent's patcher and by TensorFlow's
    flatbuffer_utils, run on the same input: the same output tensors, bit for bit (the same
    kernels on the same graph), on XNNPACK and on the builtin kernels. The ops read from the
    file are the interpreter's own."""
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.device.agent.op_profile_tflite import (cut_after, graph_outputs,
                                                          live_outputs, read_ops)

    folder = factory_dir() if arch == "tinycnn" else heavy_dir()
    data = (folder / "models" / f"{arch}.{recipe}.tflite").read_bytes()
    ops = read_ops(data)
    details = Interpreter(model_content=data)._get_ops_details()
    assert [(op.op_type, op.outputs) for op in ops] == [
        (d["op_name"], [int(t) for t in d["outputs"]]) for d in details]
    inp = Interpreter(model_content=data).get_input_details()[0]
    x = np.random.default_rng(0).uniform(-100, 100, size=inp["shape"])
    cuts = [op.index for op in ops if op.on_input]
    assert len(cuts) == (6 if arch == "tinycnn" else 21)
    for xnnpack in (True, False):
        for k in [-1] + cuts:
            outputs = live_outputs(ops, k, graph_outputs(data)) if k >= 0 else None
            mine = run_model(cut_after(data, k, outputs), x, xnnpack)
            theirs = run_model(tf_cut(data, k, outputs), x, xnnpack)
            assert [name for name, _ in mine] == [name for name, _ in theirs]
            for (name, a), (_, b) in zip(mine, theirs):
                assert a.dtype == b.dtype and np.array_equal(a, b), (k, name)
            if k >= 0:
                assert mine[0][0] == ops[k].output_name  # op k's own output comes first


def test_the_cutter_refuses_what_it_cannot_cut():
    from edgebench.device.agent.op_profile_tflite import TfliteError, cut_after

    data = (factory_dir() / "models" / "tinycnn.fp32.tflite").read_bytes()
    with pytest.raises(TfliteError, match="not a .tflite"):
        cut_after(b"\0" * 64, 0)
    with pytest.raises(TfliteError, match="no operator 6 in a subgraph of 6"):
        cut_after(data, 6)
