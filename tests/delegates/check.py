"""Runs one model through one external delegate and prints what happened as one JSON line.

Standalone (ai_edge_litert and numpy only, no project imports) so that the same check runs
under the host's LiteRT 2.1 and a device environment's LiteRT 2.3, and in a child process, so a
delegate that kills the process shows as a signal in the parent.

    python check.py '{"model": PATH, "delegate": PATH, "options": {...}}'

Prints {"runtime_version", "stage": null | "load" | "interpreter" | "allocate" | "invoke",
"error_type", "error", "ops", "delegated", "taken", "max_abs_diff", "equal"}: `ops` are the op
names right after the delegate was applied, `delegated` the original nodes each user delegate
node took (see delegated_nodes), and the outputs are compared with a plain CPU interpreter's."""
from __future__ import annotations

import json
import sys

import numpy as np


def delegated_nodes(interpreter) -> list[list[int]]:
    """For each DELEGATE node in the graph, the original nodes it replaced.

    The Python API has no execution plan, but `_get_ops_details()` keeps the replaced nodes and
    adds one DELEGATE node per partition whose inputs are every tensor the partition reads from
    outside (constants included) and whose outputs are what it hands on. Walking back from those
    outputs through the original producers, never past a partition input, visits exactly the
    partition. Call it before `allocate_tensors()` to see only the delegates passed in
    `experimental_delegates`: the default XNNPACK delegate is applied lazily at allocation and
    adds DELEGATE nodes of its own."""
    ops = interpreter._get_ops_details()
    producer = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = int(op["index"])
    by_index = {int(op["index"]): op for op in ops}
    partitions = []
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in op["inputs"]}
        taken, stack = set(), [int(t) for t in op["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"]
                         if int(t) >= 0 and int(t) not in boundary)
        partitions.append(sorted(taken))
    return partitions


def _inputs(interpreter, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d["shape"]).astype(d["dtype"]) for d in
            interpreter.get_input_details()]


def _run(interpreter, inputs) -> list[np.ndarray]:
    for d, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(d["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def check(spec: dict) -> dict:
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter, load_delegate

    out = {"runtime_version": ai_edge_litert.__version__, "stage": None, "error_type": None,
           "error": None, "ops": None, "delegated": None, "taken": None, "max_abs_diff": None,
           "equal": None}
    stage = "load"
    try:
        delegate = load_delegate(spec["delegate"], spec.get("options") or {})
        stage = "interpreter"
        it = Interpreter(model_path=spec["model"], experimental_delegates=[delegate])
        out["ops"] = [op["op_name"] for op in it._get_ops_details()]
        out["delegated"] = delegated_nodes(it)
        out["taken"] = sum(len(p) for p in out["delegated"])
        stage = "allocate"
        it.allocate_tensors()
        stage = "invoke"
        cpu = Interpreter(model_path=spec["model"])
        cpu.allocate_tensors()
        inputs = _inputs(cpu, spec.get("seed", 0))
        want = _run(cpu, inputs)
        _run(it, inputs)
        got = _run(it, inputs)  # the second run: a kernel that keeps stale state shows here
    except Exception as e:  # noqa: BLE001  (what each failure raises is the point of the check)
        out.update(stage=stage, error_type=type(e).__name__, error=str(e))
        return out
    out["max_abs_diff"] = max(float(np.max(np.abs(g.astype(np.float64) - w)))
                              for g, w in zip(got, want))
    out["equal"] = all(np.array_equal(g, w) for g, w in zip(got, want))
    return out


if __name__ == "__main__":
    print(json.dumps(check(json.loads(sys.argv[1]))), flush=True)
