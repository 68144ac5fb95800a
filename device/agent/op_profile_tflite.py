"""A .tflite cut after one operator, in pure Python (the agent has no TensorFlow and no
flatbuffers package): the LiteRT op profile (op_profile_litert.py) times every prefix of a model.

A .tflite is a flatbuffer of tflite's schema.fbs. Only what the cut needs is read: Model ->
operator_codes, subgraphs[0] -> tensors (names), inputs, outputs, operators; Operator ->
opcode_index, inputs, outputs. The cut is a few patches to the model's bytes, which are
otherwise written unchanged: subgraphs[0].operators' length becomes k + 1 (the operators after
it stay in the file, unreachable), a new outputs vector (op k's outputs and what later ops still
read: live_outputs) is appended at the end and the subgraph's outputs field pointed at it
(offsets in a flatbuffer point forward, and the end is after everything), and signature_defs'
length becomes 0: a signature names the model's original outputs, which a prefix no longer
computes (LiteRT's CompiledModel then makes a placeholder signature of the subgraph's own). The
weights stay where they are: a prefix carries the whole file, and the ops it dropped never read
theirs. tests/test_op_profile.py checks every cut against TensorFlow's flatbuffer_utils."""
from __future__ import annotations

import struct
from collections import namedtuple

from .op_profile_tflite_ops import CUSTOM, builtin_name

# Field numbers (declaration order) in tflite's schema.fbs.
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_SIGNATURE_DEFS = 1, 2, 7
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
OPERATOR_OPCODE_INDEX, OPERATOR_INPUTS, OPERATOR_OUTPUTS = 0, 1, 2
OPCODE_DEPRECATED_BUILTIN, OPCODE_CUSTOM, OPCODE_BUILTIN = 0, 1, 3
TENSOR_NAME = 3

# One operator of subgraph 0: its position, type name, builtin code, input and output tensor
# indices, its first output's tensor name (what the profile calls the op by), and whether it
# reads the graph's input at all (an op on constants only, e.g. an fp16 model's DEQUANTIZE of
# its weights, is done once when the interpreter prepares; a prefix cannot end there).
Op = namedtuple("Op", "index op_type code inputs outputs output_name on_input")


class TfliteError(ValueError):
    """A file this reader cannot cut: not a .tflite, or one whose shape it does not expect."""


def _u16(buf, pos: int) -> int:
    return struct.unpack_from("<H", buf, pos)[0]


def _u32(buf, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _i32(buf, pos: int) -> int:
    return struct.unpack_from("<i", buf, pos)[0]


def _field(buf, table: int, field: int):
    """The absolute position of a table's field, or None where it is absent (its default)."""
    vtable = table - _i32(buf, table)
    if 4 + 2 * field >= _u16(buf, vtable):
        return None
    offset = _u16(buf, vtable + 4 + 2 * field)
    return table + offset if offset else None


def _ref(buf, pos: int) -> int:
    """Where the offset stored at pos points (tables, vectors, strings)."""
    return pos + _u32(buf, pos)


def _vector(buf, table: int, field: int):
    """(position of the length word, length) of a vector field; (None, 0) where absent."""
    pos = _field(buf, table, field)
    if pos is None:
        return None, 0
    at = _ref(buf, pos)
    return at, _u32(buf, at)


def _tables(buf, table: int, field: int) -> list:
    at, count = _vector(buf, table, field)
    return [_ref(buf, at + 4 + 4 * i) for i in range(count)]


def _ints(buf, table: int, field: int) -> list:
    at, count = _vector(buf, table, field)
    return list(struct.unpack_from("<%di" % count, buf, at + 4)) if count else []


def _string(buf, table: int, field: int) -> str:
    pos = _field(buf, table, field)
    if pos is None:
        return ""
    at = _ref(buf, pos)
    return bytes(buf[at + 4:at + 4 + _u32(buf, at)]).decode("utf-8", "replace")


def _scalar(buf, table: int, field: int, fmt: str, default: int = 0) -> int:
    pos = _field(buf, table, field)
    return default if pos is None else struct.unpack_from(fmt, buf, pos)[0]


def _model(buf) -> int:
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise TfliteError("not a .tflite flatbuffer (no TFL3 identifier)")
    return _ref(buf, 0)


def _subgraph(buf) -> int:
    subgraphs = _tables(buf, _model(buf), MODEL_SUBGRAPHS)
    if not subgraphs:
        raise TfliteError("the model has no subgraph")
    return subgraphs[0]


def op_type_of(buf, code_table: int) -> tuple:
    """(type name, builtin code) of an OperatorCode: the builtin's name, or a custom op's own.
    Codes past 127 live in the int32 builtin_code (the int8 deprecated_builtin_code holds 127,
    a placeholder, for them; older files have only the int8): the larger of the two."""
    code = max(_scalar(buf, code_table, OPCODE_DEPRECATED_BUILTIN, "<b"),
               _scalar(buf, code_table, OPCODE_BUILTIN, "<i"))
    if code == CUSTOM:
        return _string(buf, code_table, OPCODE_CUSTOM) or "CUSTOM", code
    return builtin_name(code), code


def read_ops(data) -> list:
    """The operators of subgraph 0 in execution order (a .tflite stores them so), as Op."""
    buf = memoryview(data)
    codes = [op_type_of(buf, t) for t in _tables(buf, _model(buf), MODEL_OPERATOR_CODES)]
    subgraph = _subgraph(buf)
    tensors = _tables(buf, subgraph, SUBGRAPH_TENSORS)
    live = set(_ints(buf, subgraph, SUBGRAPH_INPUTS))  # tensors that depend on the input
    ops = []
    for index, op in enumerate(_tables(buf, subgraph, SUBGRAPH_OPERATORS)):
        code_index = _scalar(buf, op, OPERATOR_OPCODE_INDEX, "<I")
        if code_index >= len(codes):
            raise TfliteError("operator %d names opcode %d of %d" % (index, code_index,
                                                                     len(codes)))
        inputs = [t for t in _ints(buf, op, OPERATOR_INPUTS) if t >= 0]
        outputs = [t for t in _ints(buf, op, OPERATOR_OUTPUTS) if t >= 0]
        name = _string(buf, tensors[outputs[0]], TENSOR_NAME) if outputs else ""
        on_input = any(t in live for t in inputs)
        if on_input:
            live.update(outputs)
        ops.append(Op(index, codes[code_index][0], codes[code_index][1], inputs, outputs, name,
                      on_input))
    return ops


def graph_outputs(data) -> list:
    buf = memoryview(data)
    return _ints(buf, _subgraph(buf), SUBGRAPH_OUTPUTS)


def live_outputs(ops: list, k: int, model_outputs) -> list:
    """The outputs a prefix ending with op k needs so that none of its ops is dead: op k's
    outputs first, then every tensor an earlier op made (from the input) that a later op or
    the model's outputs read. Without them XNNPACK drops an earlier branch whose result only a
    later op joins (a CONCATENATION of parallel branches), and the next prefix that needs it
    pays for the whole branch. An op on constants only makes a constant, never an output."""
    later = set(model_outputs)
    for op in ops[k + 1:]:
        later.update(op.inputs)
    out = list(ops[k].outputs)
    for op in ops[:k]:
        if op.on_input:
            out += [t for t in op.outputs if t in later and t not in out]
    return out


def cut_patches(data, k: int, outputs=None) -> tuple:
    """(patches [(position, bytes)], tail: bytes to append) that cut the model after op k:
    subgraph 0 keeps operators 0..k, and op k's outputs (or `outputs`, tensor indices) become
    its outputs. k = -1: no operator, the inputs handed back as outputs (the invoke's own cost,
    what op 0's time is measured from). The model's bytes are not copied: a large model's
    prefixes are written straight from them (write_cut)."""
    buf = memoryview(data)
    subgraph = _subgraph(buf)
    at, count = _vector(buf, subgraph, SUBGRAPH_OPERATORS)
    if not -1 <= k < count:
        raise TfliteError("no operator %d in a subgraph of %d" % (k, count))
    if outputs is None:
        outputs = read_ops(data)[k].outputs if k >= 0 else _ints(buf, subgraph, SUBGRAPH_INPUTS)
    if not outputs:
        raise TfliteError("operator %d has no output" % k)
    field = _field(buf, subgraph, SUBGRAPH_OUTPUTS)
    if field is None or at is None:
        raise TfliteError("subgraph 0 has no outputs or operators field to rewrite")
    patches = [(at, struct.pack("<I", k + 1))]
    signatures, _ = _vector(buf, _model(buf), MODEL_SIGNATURE_DEFS)
    if signatures is not None:
        patches.append((signatures, struct.pack("<I", 0)))
    pad = -len(buf) % 4
    patches.append((field, struct.pack("<I", len(buf) + pad - field)))
    tail = b"\0" * pad + struct.pack("<I%di" % len(outputs), len(outputs), *outputs)
    return sorted(patches), tail


def cut_after(data, k: int, outputs=None) -> bytes:
    """The cut model's bytes (cut_patches)."""
    patches, tail = cut_patches(data, k, outputs)
    buf = bytearray(data)
    for pos, value in patches:
        buf[pos:pos + len(value)] = value
    return bytes(buf + tail)


def write_cut(path: str, data, k: int, outputs=None) -> None:
    """cut_after(data, k, outputs) written to path, the unchanged stretches straight from data."""
    patches, tail = cut_patches(data, k, outputs)
    view, start = memoryview(data), 0
    with open(path, "wb") as fh:
        for pos, value in patches:
            fh.write(view[start:pos])
            fh.write(value)
            start = pos + len(value)
        fh.write(view[start:])
        fh.write(tail)
