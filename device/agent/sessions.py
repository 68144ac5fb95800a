"""A model loaded on one compute unit, behind one small interface the timing loop uses:
shape, input_dtype, in_q/out_q (scale, zero point), set_input(x), invoke(), output(), info (the
row's accelerator columns). InterpreterSession: cpu and delegate units; CompiledModelSession: gpu
and npu through LiteRT's CompiledModel; OrtSession (ort_session.py): .onnx models on the CPU."""
from __future__ import annotations

import os

import numpy as np

from ..common import AgentError, one_line
from ..runtimes import load_delegate, make_interpreter
from .ort_session import OrtSession
from .trivial_model import trivial_model
from ..units import (COMPUTE_UNITS, adapter_from_log, check_unit_available,
                     explain_compile_failure, native_stderr, partition_from_log)


class InterpreterSession:
    """cpu and delegate units: the Interpreter of the chosen runtime; invoke() is synchronous."""
    # tflite's interpreter_wrapper.cc releases the GIL around Invoke: --streams runs threads
    holds_gil = False

    def __init__(self, job: dict, module):
        """module: the runtime's interpreter module (its import is the row's start-up)."""
        unit = job["unit"]
        delegates, lib = [], None
        if unit["delegate"]:
            lib = unit["delegate"]["library"]
            delegates = [load_delegate(job["runtime"], module, lib, unit["delegate"]["options"])]
        try:
            interp = make_interpreter(job["runtime"], module, job["path"], job["threads"],
                                      job["xnnpack"], delegates)
        except (ValueError, RuntimeError) as exc:
            if not lib:
                raise
            # TFLite appends its own note to the delegate's message without a separator.
            why = str(exc).replace("Restored original execution plan", "; restored the "
                                   "original execution plan")
            raise AgentError("delegate %s failed on this model: %s" % (lib, one_line(why, 240)))
        # Counted before allocate_tensors(): XNNPACK, the default delegate, is applied there and
        # adds delegate nodes of its own.
        taken = delegated_nodes(interp) if lib else None
        interp.allocate_tensors()
        inputs, outputs = interp.get_input_details(), interp.get_output_details()
        if len(inputs) != 1:
            raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                             % len(inputs))
        inp, out = inputs[0], outputs[0]
        self.shape = [int(s) for s in inp["shape"]]
        self.input_dtype = np.dtype(inp["dtype"])
        self.in_q = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.out_q = (float(out["quantization"][0]), int(out["quantization"][1]))
        self._interp, self._in, self._out = interp, inp["index"], out["index"]
        self.invoke = interp.invoke
        self.info = {"accelerator_device": os.path.basename(lib) if lib else
                     ("XNNPACK" if job["xnnpack"] else "builtin kernels"),
                     "software_accelerator": None if lib else False}
        if lib:
            self.info["delegated_nodes"] = taken

    def set_input(self, x) -> None:
        self._interp.set_tensor(self._in, x)

    def output(self):
        return self._interp.get_tensor(self._out)


def delegated_nodes(interp):
    """How many of the model's nodes a delegate took, or None where the interpreter does not
    say. The Python API has no execution plan, but its op list keeps the replaced nodes and adds
    one DELEGATE node per partition, whose inputs are what the partition reads from outside and
    whose outputs what it hands on: walking back from those outputs through the original
    producers, never past a partition input, visits exactly the nodes it replaced."""
    try:
        ops = interp._get_ops_details()
    except Exception:
        return None
    producer, by_index = {}, {}
    for op in ops:
        by_index[int(op["index"])] = op
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = int(op["index"])
    taken = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = set(int(t) for t in op["inputs"])
        stack = [int(t) for t in op["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"]
                         if int(t) >= 0 and int(t) not in boundary)
    return len(taken)


class CompiledModelSession:
    """gpu and npu units: LiteRT's CompiledModel. On an asynchronous accelerator run_by_index()
    returns once the work is enqueued (0.06 ms against 1.4 ms for the finished inference on the
    test model), so invoke() is the run *and* the read of the output into host memory: the
    completed inference that an app pays for."""
    # LiteRT 2.3 keeps the GIL through run_by_index (benchmarks/streams_gil.py: a Python thread
    # beside it waits out the whole invoke), so --streams runs its streams in processes.
    holds_gil = True

    def __init__(self, job: dict, started: "AcceleratorStart"):
        unit = job["unit"]
        failure = None
        with native_stderr() as log:
            try:
                model = started.compile(job["path"])
            except Exception as exc:
                failure = exc
        if failure is not None:
            raise AgentError(explain_compile_failure(unit, started.log + log.text, failure))
        if unit["accelerator"] == "npu" and "NPU accelerator could not be loaded" in log.text:
            # With CPU fallback the model then runs on the CPU and still calls itself "fully
            # accelerated": that row would be a CPU row under an NPU label.
            raise AgentError("the NPU accelerator did not register (LiteRT: NPU accelerator "
                             "could not be loaded); no NPU was used")
        # The adapter is logged once per environment: by the start-up's trivial model.
        adapter, software = adapter_from_log(started.log + log.text)
        fully = bool(model.is_fully_accelerated())
        if unit["require_full"] and not fully:
            raise AgentError("not fully accelerated: some ops of this model fall back to the CPU "
                             "on the %s (%s asks for the whole model there)"
                             % (unit["accelerator"], unit["spec"]))
        signature = model.get_signature_by_index(0)
        if len(signature["inputs"]) != 1:
            raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                             % len(signature["inputs"]))
        inp = model.get_input_tensor_details(signature["key"])[signature["inputs"][0]]
        out = model.get_output_tensor_details(signature["key"])[signature["outputs"][0]]
        self.shape = [int(s) for s in inp["shape"]]
        self.input_dtype = np.dtype(inp["dtype"])
        # CompiledModel does not report quantization parameters: the card carries the model's own.
        card_in, card_out = job["input"], job.get("output") or {}
        self.in_q = (float(card_in.get("scale") or 0.0), int(card_in.get("zero_point") or 0))
        self.out_q = (float(card_out.get("scale") or 0.0), int(card_out.get("zero_point") or 0))
        self._model = model
        self._ins, self._outs = model.create_input_buffers(0), model.create_output_buffers(0)
        run, ins, outs, read = model.run_by_index, self._ins, self._outs, self._outs[0].read
        count, dtype, last = int(np.prod(out["shape"])), np.dtype(out["dtype"]), [None]

        def invoke():
            run(0, ins, outs)
            last[0] = read(count, dtype)

        self.invoke, self._last = invoke, last
        self.info = {"accelerator_device": adapter or (
                         "%s (adapter not reported)" % unit["accelerator"]),
                     "software_accelerator": software, "fully_accelerated": fully,
                     "delegated_nodes": partition_from_log(log.text)}

    def set_input(self, x) -> None:
        try:
            self._ins[0].write(np.ascontiguousarray(x))
        except ValueError as exc:  # e.g. int16x8: LiteRT 2.3's TensorBuffer has no int16 type
            raise AgentError("CompiledModel cannot take this model's %s input: %s"
                             % (self.input_dtype.name, one_line(exc, 120)))

    def output(self):
        return self._last[0]



class AcceleratorStart:
    """LiteRT's start-up on one accelerator, paid once per child before its model: one shared
    Environment, and a trivial model compiled and run on the same accelerator in it (without a
    shared environment every CompiledModel creates its own, and Dawn's WebGPU instance with it:
    ~45 ms per model on lavapipe). compile() then builds the row's model in that environment."""

    def __init__(self, job: dict):
        unit = job["unit"]
        check_unit_available(unit, "%s %s" % (job["runtime"], job["runtime_version"]))
        from ai_edge_litert import compiled_model as cm
        self._cm, self._unit = cm, unit
        self._flags = 0
        for name in COMPUTE_UNITS[unit["accelerator"]]["flags"]:
            self._flags |= getattr(cm.HardwareAccelerator, name)
        self._threads = job["threads"]
        self.environment, self.note, self.log = None, None, ""
        with native_stderr() as log:
            try:
                if hasattr(cm, "Environment"):
                    self.environment = cm.Environment.create()
                trivial = self._build(trivial_model(), cm.CompiledModel.from_buffer)
                ins, outs = trivial.create_input_buffers(0), trivial.create_output_buffers(0)
                ins[0].write(np.ones((1, 4), np.float32))
                trivial.run_by_index(0, ins, outs)
                outs[0].read(4, np.float32)
            except Exception as exc:
                # The model's own compile then says what is wrong, if anything is.
                self.note = ("accelerator start-up not timed apart (%s); load_ms includes it"
                             % one_line(exc, 120))
        self.log = log.text

    def _build(self, source, make):
        cm, kwargs = self._cm, {}
        if self.environment is not None:
            kwargs["environment"] = self.environment
        if hasattr(cm, "Options"):
            kwargs["options"] = cm.Options(hardware_accelerators=self._flags,
                                           cpu_options=cm.CpuOptions(num_threads=self._threads))
        else:
            kwargs["hardware_accel"] = self._flags
        return make(source, **kwargs)

    def compile(self, path: str):
        return self._build(path, self._cm.CompiledModel.from_file)


# A row's api (its unit's, or for a model whose file fixes the runtime, runtimes.FILE_RUNTIMES')
# -> the session that loads its model.
SESSIONS = {"interpreter": InterpreterSession, "compiled_model": CompiledModelSession,
            "inference_session": OrtSession}
