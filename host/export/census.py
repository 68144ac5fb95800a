"""Op census of a .tflite, read from its flatbuffer (LiteRT's own schema, ai_edge_litert's
schema_py_generated: already a dependency, and it reads any model, ours or a user's).

What it answers before a model is ever timed: which ops it runs and on which tensor types, whether
an "integer" model still computes some ops in float, where it leaves the integer domain
(DEQUANTIZE ... QUANTIZE inside the graph), custom ops a runtime may lack, and quantization scales
no sane activation has (the padded-MaxPool trap: PADV2 with a ~1e36 scale). Activations are the
non-constant tensors; weights (tensors with data in a buffer) do not make an op float or integer.

    census = op_census(Path("resnet18.int8.tflite"))
    census["kind"], census["float_ops"], census["extreme_scales"]
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError

# Anything above this is no activation range (int8 · scale would exceed ±1e8); the trap gives 1e36.
EXTREME_SCALE = 1e6
_INT_TYPES = {"int8", "uint8", "int16"}
_FLOAT_TYPES = {"float32", "float16"}
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
LISTED = 20  # float ops / extreme scales named in full; the counts are always complete


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def op_census(path: Path) -> dict:
    """The census of one .tflite (first subgraph: what the interpreter runs); a file that is no
    TFLite flatbuffer is a UserError."""
    schema = _schema()
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise UserError(f"{path} is not a TFLite model (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(buf, 0)
        return _census(model, schema)
    except UserError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer
        raise UserError(f"{path}: cannot read the model's flatbuffer "
                        f"({type(exc).__name__}: {exc})") from None


def _census(model, schema) -> dict:
    codes = _op_codes(model, schema)
    if model.SubgraphsLength() < 1:
        raise UserError("the model has no subgraph")
    graph = model.Subgraphs(0)
    tensors = _Tensors(model, graph, schema)
    tally = _Tally(inputs={int(graph.Inputs(i)) for i in range(graph.InputsLength())},
                   outputs={int(graph.Outputs(i)) for i in range(graph.OutputsLength())})
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        ins = [int(t) for t in (op.InputsAsNumpy() if op.InputsLength() else []) if t >= 0]
        outs = [int(t) for t in (op.OutputsAsNumpy() if op.OutputsLength() else []) if t >= 0]
        tally.add(i, codes[op.OpcodeIndex()], ins, outs,
                  [tensors.describe(t) for t in ins], [tensors.describe(t) for t in outs])
    return tally.summary(tensors)


def _op_codes(model, schema) -> list[str]:
    """Each operator code's name: the builtin's, or CUSTOM:<the custom code>."""
    op_names = _enum_names(schema.BuiltinOperator)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # schema v3a split
        if op_names.get(builtin) == "CUSTOM":
            codes.append("CUSTOM:" + (code.CustomCode() or b"?").decode(errors="replace"))
        else:
            codes.append(op_names.get(builtin, f"BUILTIN_{builtin}"))
    return codes


class _Tensors:
    """One subgraph's tensors as plain dicts: name, type, largest scale, and whether constant."""

    def __init__(self, model, graph, schema):
        self.model, self.graph = model, graph
        self.type_names = {k: v.lower() for k, v in _enum_names(schema.TensorType).items()}

    def constant(self, t: int) -> bool:
        b = self.graph.Tensors(t).Buffer()
        if b <= 0 or b >= self.model.BuffersLength():
            return False
        buffer = self.model.Buffers(b)
        return buffer.DataLength() > 0 or buffer.Offset() > 1  # offset: weights outside the table

    def describe(self, t: int) -> dict:
        ten = self.graph.Tensors(t)
        q = ten.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        return {"name": (ten.Name() or b"").decode(errors="replace"),
                "type": self.type_names.get(ten.Type(), str(ten.Type())),
                "scale": float(scales.max()) if scales is not None else None,
                "const": self.constant(t)}


@dataclass
class _Tally:
    """What the census counts, one operator at a time (`add`), in graph order."""
    inputs: set
    outputs: set
    counts: Counter = field(default_factory=Counter)
    signatures: dict = field(default_factory=dict)  # op -> Counter of "in,types->out,types"
    float_ops: list = field(default_factory=list)
    int_ops: int = 0
    extreme: list = field(default_factory=list)
    custom: list = field(default_factory=list)
    dequantize_in_graph: int = 0
    quantize_in_graph: int = 0
    requantize: int = 0
    weight_types: Counter = field(default_factory=Counter)

    def add(self, index: int, name: str, ins: list, outs: list, tin: list, tout: list) -> None:
        self.counts[name] += 1
        sig = ",".join(t["type"] for t in tin) + "->" + ",".join(t["type"] for t in tout)
        self.signatures.setdefault(name, Counter())[sig] += 1
        if name.startswith("CUSTOM:"):
            self.custom.append(name[len("CUSTOM:"):])
        for t in tin:
            if t["const"]:
                self.weight_types[t["type"]] += 1
        self._classify(index, name, ins, outs, tin, tout)
        for t in tout:
            s = t["scale"]
            if s is not None and (not math.isfinite(s) or s > EXTREME_SCALE):
                self.extreme.append({"index": index, "op": name, "tensor": t["name"], "scale": s})

    def _classify(self, index: int, name: str, ins: list, outs: list, tin: list,
                  tout: list) -> None:
        """A domain boundary (QUANTIZE/DEQUANTIZE), a float op or an integer op."""
        acts = [t["type"] for t in tin + tout if not t["const"]]
        if name == "DEQUANTIZE":
            if tin and not tin[0]["const"] and not set(outs) <= self.outputs:
                self.dequantize_in_graph += 1  # an activation leaves the integer domain mid-graph
        elif name == "QUANTIZE":
            if tin and tin[0]["type"] in _INT_TYPES:
                # an int -> int rescale (e.g. before a CONCATENATION): not a boundary
                self.requantize += 1
            elif not set(ins) <= self.inputs:
                self.quantize_in_graph += 1
        elif any(a in _FLOAT_TYPES for a in acts):
            self.float_ops.append({"index": index, "op": name,
                                   "output": tout[0]["name"] if tout else ""})
        elif any(a in _INT_TYPES for a in acts):
            self.int_ops += 1

    def summary(self, tensors: _Tensors) -> dict:
        kind = _kind(self.int_ops, len(self.float_ops), self.weight_types, self.counts)
        io_type = lambda ids: [tensors.describe(t)["type"] for t in sorted(ids)]  # noqa: E731
        return {
            "ops": int(sum(self.counts.values())),
            "kind": kind,
            "op_types": {k: {"count": n, "types": dict(self.signatures[k].most_common())}
                         for k, n in self.counts.most_common()},
            "io": {"input": io_type(self.inputs), "output": io_type(self.outputs)},
            "integer_ops": self.int_ops,
            "float_op_count": len(self.float_ops),
            # Float ops in a model that is integer elsewhere; in a float model every op is float.
            "float_ops": self.float_ops[:LISTED] if self.int_ops else [],
            "q_dq_pairs": min(self.dequantize_in_graph, self.quantize_in_graph),
            "dequantize_in_graph": self.dequantize_in_graph,
            "quantize_in_graph": self.quantize_in_graph,
            "requantize": self.requantize,
            "custom_ops": sorted(set(self.custom)),
            "extreme_scales": self.extreme[:LISTED],
        }


def _kind(int_ops: int, n_float: int, weight_types: Counter, counts: Counter) -> str:
    if int_ops and n_float:
        return "mixed"
    if int_ops:
        return "integer"
    if weight_types.get("int8"):
        return "dynamic-range"  # int8 weights, float activations
    if weight_types.get("float16") or counts.get("DEQUANTIZE"):
        return "fp16-weights"
    return "float"


def summary_line(census: dict) -> str:
    """One line for listings: 'integer, 31 ops, 0 float, 0 Q/DQ pairs'."""
    parts = [census["kind"], f"{census['ops']} ops"]
    if census["kind"] in ("integer", "mixed"):
        parts.append(f"{census['float_op_count']} float")
        parts.append(f"{census['q_dq_pairs']} Q/DQ pair{'s' if census['q_dq_pairs'] != 1 else ''}")
    if census["custom_ops"]:
        parts.append("custom: " + ",".join(census["custom_ops"]))
    if census["extreme_scales"]:
        # A PAD shares its input's scale, so the op before it carries the broken range too:
        # name every op type involved, not just the first tensor.
        worst = max(e["scale"] for e in census["extreme_scales"])
        ops = ", ".join(dict.fromkeys(e["op"] for e in census["extreme_scales"]))
        parts.append(f"extreme scale {worst:.2g} at {ops}")
    return ", ".join(parts)


def census_rows(census: dict) -> list[dict]:
    """Per op type: count and its input -> output type signatures (the report's small table)."""
    return [{"op": op, "count": info["count"],
             "types": "; ".join(f"{sig} ×{n}" if len(info["types"]) > 1 else sig
                                for sig, n in info["types"].items())}
            for op, info in census["op_types"].items()]
