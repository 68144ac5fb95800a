"""Op census of an ONNX Runtime .onnx, read from its graph, in the same shape as census.py's for a
.tflite so the report and listings read both alike.

In a QDQ graph (the ort route's int8) QuantizeLinear/DequantizeLinear pairs are how every
quantized op is written, not places where it leaves the integer domain: ONNX Runtime fuses
DQ -> op -> Q into an integer kernel (QLinearConv, ...). So an op counts as integer when its
activation inputs come from DequantizeLinear, float otherwise, and only a DQ feeding a float op
(or a Q fed by one) is a boundary. Weights (initializers) do not make an op float or integer;
float16 initializers make a graph "fp16-weights"."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.export.census import LISTED

_QDQ = {"QuantizeLinear", "DequantizeLinear"}
# Ops that only move or reshape data: integer or float as their input is, never a boundary
_PASS_THROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"}


def onnx_census(path: Path) -> dict:
    """The census of one .onnx (its main graph); a file that is no ONNX model is a UserError."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UserError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
    return _census(model.graph)


def _op_name(node) -> str:
    return f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def _census(graph) -> dict:
    import onnx

    nodes = list(graph.node)
    weights = {i.name: i.data_type for i in graph.initializer}
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    outputs = {o.name for o in graph.output}
    counts = Counter(_op_name(n) for n in nodes)
    float_ops, float_nodes, int_ops = [], set(), 0
    for index, node in enumerate(nodes):
        if node.op_type in _QDQ or node.op_type == "Constant":
            continue
        if _quantized(node, nodes, weights, producer, consumers):
            int_ops += node.op_type not in _PASS_THROUGH
        else:
            float_nodes.add(index)
            float_ops.append({"index": index, "op": _op_name(node),
                              "output": node.output[0] if node.output else ""})
    dq_out = sum(1 for n in nodes if n.op_type == "DequantizeLinear"
                 and n.input[0] not in weights and n.output[0] not in outputs
                 and any(c in float_nodes for c in consumers.get(n.output[0], [])))
    q_in = sum(1 for n in nodes if n.op_type == "QuantizeLinear"
               and producer.get(n.input[0]) in float_nodes)
    weight_types = Counter(onnx.helper.tensor_dtype_to_np_dtype(t).name for t in weights.values())
    kind = ("mixed" if int_ops and any(_computes(f["op"]) for f in float_ops)
            else "integer" if int_ops
            else "fp16-weights" if weight_types.get("float16") else "float")
    io_type = lambda values: [_elem_type(v) for v in values]  # noqa: E731
    return {
        "ops": int(sum(counts.values())),
        "kind": kind,
        "op_types": {k: {"count": n, "types": {}} for k, n in counts.most_common()},
        "io": {"input": io_type([i for i in graph.input if i.name not in weights]),
               "output": io_type(graph.output)},
        "integer_ops": int_ops,
        "float_op_count": len(float_ops),
        "float_ops": float_ops[:LISTED] if int_ops else [],
        "q_dq_pairs": min(dq_out, q_in),
        "dequantize_in_graph": dq_out,
        "quantize_in_graph": q_in,
        "requantize": 0,
        "custom_ops": sorted({_op_name(n) for n in graph.node
                              if n.domain not in ("", "ai.onnx")}),
        "extreme_scales": [],
    }


def _quantized(node, nodes: list, weights: dict, producer: dict, consumers: dict) -> bool:
    """DQ -> op -> Q: what ONNX Runtime runs as one integer kernel. Every activation input comes
    from a DequantizeLinear and every output goes only to QuantizeLinear."""
    acts = [i for i in node.input if i and i not in weights]
    if not acts or any(a not in producer or nodes[producer[a]].op_type != "DequantizeLinear"
                       for a in acts):
        return False
    users = [nodes[c] for out in node.output for c in consumers.get(out, [])]
    return bool(users) and all(c.op_type == "QuantizeLinear" for c in users)


def _computes(op: str) -> bool:
    """A float op that costs time (a Cast or Reshape between integer ops does not make a model
    mixed)."""
    return op not in _PASS_THROUGH and op not in ("Cast", "Shape", "Gather", "Concat")


def _elem_type(value) -> str:
    import numpy as np
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).name
