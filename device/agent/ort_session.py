"""An .onnx model on ONNX Runtime, behind the same interface as sessions.InterpreterSession
(shape, input_dtype, in_q/out_q, set_input, invoke, output, info, holds_gil), so its row goes
through the same timed loop, accuracy pass and scenarios. The row's compute unit picks the
execution provider (ort_providers.py): cpu the CPUExecutionProvider, gpu a GPU provider with the
CPU taking the nodes it lacks.

The input is bound once per set_input through an IOBinding and the output into a buffer bound
once, so invoke() is run_with_iobinding alone: no feed dict built, no output allocated or copied
inside the clock (what an app that keeps its buffers pays). The test images are N×H×W×C; the
model takes the layout its card names (NCHW from PyTorch): set_input transposes, and `shape` is
the images' N×H×W×C shape so the loops feed it like any other session. On a GPU provider the
input and output stay bound to host memory, so invoke() is the copy in, the run and the copy of
the result back: the completed inference an app pays for, as on LiteRT's GPU rows."""
from __future__ import annotations

import contextlib
import io
import sys

import numpy as np

from ..common import AgentError
from ..metrics import image_shape, to_layout
from ..runtimes import ORT_CPU_PROVIDER
from ..units import native_stderr
from .ort_providers import choose_provider, session_providers, start_failure
from .ort_vulkan import webgpu_adapter

# ORT's element types (the input's and output's `type`) as numpy dtypes.
ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
              "tensor(double)": np.float64, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def session_options(ort, threads: int):
    """--threads means on ORT what it means on LiteRT: that many threads computing one inference,
    the caller's included, and none left spinning between inferences to look faster."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # Optimised here, for this CPU, at load time (part of load_ms); bundles never carry graphs
    # optimised on the host, whose NCHWc rewrites are specific to its CPU.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def static_shape(arg, what: str) -> list:
    """An input's or output's shape as ints; a symbolic batch dimension is 1 (the agent runs
    batch 1), any other symbolic dimension is refused (nothing to feed it)."""
    shape = []
    for position, dim in enumerate(arg.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif position == 0:
            shape.append(1)
        else:
            raise AgentError("the model's %s %r has a dynamic dimension (%s); export it with a "
                             "fixed input size" % (what, arg.name, list(arg.shape)))
    return shape


def element_type(arg, what: str):
    dtype = ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise AgentError("the model's %s %r is a %s; the agent feeds tensors of %s"
                         % (what, arg.name, arg.type, ", ".join(sorted(ORT_DTYPES))))
    return np.dtype(dtype)


def start_session(ort, path: str, options, provider: str, unit: dict):
    """The InferenceSession on `provider`; an AgentError when it did not start there (never a
    row measured on the CPU under a GPU's name). What ORT prints while a GPU provider starts
    is kept for the error and still reaches stderr (runtime.log)."""
    providers = session_providers(provider, unit)
    if provider == ORT_CPU_PROVIDER:
        return ort.InferenceSession(path, sess_options=options, providers=providers)
    if unit["require_full"]:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    printed, session, failure = io.StringIO(), None, None
    with native_stderr() as log, contextlib.redirect_stdout(printed):
        try:
            session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:
            failure = exc
    sys.stderr.write(printed.getvalue())
    if failure is not None or session.get_providers()[0] != provider:
        raise AgentError(start_failure(provider, printed.getvalue() + log.text, unit, failure))
    return session


class OrtSession:
    """.onnx models on the unit's execution provider. invoke() runs the bound IOBinding
    synchronously."""
    # ORT's Python binding releases the GIL around run and run_with_iobinding (checked with
    # 1.23: a Python thread counted as fast beside five 34 ms runs as alone), so --streams runs
    # threads, as on the Interpreter; on WebGPU in processes (holds_gil set in __init__):
    # two WebGPU sessions run from two threads of one process segfault (1.27 on lavapipe).
    holds_gil = False

    def __init__(self, job: dict, ort, profile_prefix=None):
        """ort: the onnxruntime module (its import is the row's start-up). profile_prefix: a
        session that profiles every run into a trace file starting so (op_profile.py's pass and
        ort_providers' placement; never the timed session)."""
        self.provider = choose_provider(ort, job["unit"])  # other units: refused by the parent
        options = session_options(ort, job["threads"])
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        session = start_session(ort, job["path"], options, self.provider, job["unit"])
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                             % len(inputs))
        inp, out = inputs[0], outputs[0]
        self.layout = job["input"].get("layout") or "NHWC"  # the card's (schema.py's default)
        self.model_shape = static_shape(inp, "input")
        self.shape = image_shape(self.model_shape, self.layout)
        self.input_dtype = element_type(inp, "input")
        self.in_q, self.out_q = (0.0, 0), (0.0, 0)  # ORT's QDQ models keep float inputs/outputs
        self._session, self._binding = session, session.io_binding()
        self._ort, self._input_name, self._held = ort, inp.name, None
        self._bind_output(out)
        run, binding = session.run_with_iobinding, self._binding
        self.invoke = lambda: run(binding)
        if self.provider == "WebGpuExecutionProvider":
            self.holds_gil = True
            self.streams_note = ("streams after the first ran in processes of their own (two "
                                 "WebGPU sessions in one process crash)")

    def __del__(self):
        """The binding goes before the session: freed after it, it segfaults on a GPU provider
        (ORT 1.27's WebGPU; on the CPU the order happens not to matter). invoke's closure holds
        both, the output buffer and the input the binding reads from."""
        for name in ("invoke", "_binding", "_output", "_held"):
            self.__dict__.pop(name, None)

    @property
    def info(self) -> dict:
        """The row's fields of what ran it; a property so that naming WebGPU's Vulkan device is
        not part of load_ms. Placement (fully_accelerated ...) comes from ort_providers.measure,
        after the timed loop."""
        if self.provider != "WebGpuExecutionProvider":  # the CPU's kernels, or CUDA's: hardware
            return {"accelerator_device": self.provider, "software_accelerator": False}
        adapter, software = webgpu_adapter()
        return {"accelerator_device": "%s (%s)" % (self.provider, adapter) if adapter
                else self.provider, "software_accelerator": software}

    def _bind_output(self, out) -> None:
        """Into a buffer allocated once, like the Interpreter's output tensor; an output whose
        size only the run knows is allocated by ORT on every run instead (inside the clock)."""
        try:
            shape = static_shape(out, "output")
        except AgentError:
            self._binding.bind_output(out.name, "cpu")
            return
        self._output = self._ort.OrtValue.ortvalue_from_shape_and_type(
            shape, element_type(out, "output"), "cpu", 0)
        self._binding.bind_ortvalue_output(out.name, self._output)

    def set_input(self, x) -> None:
        x = to_layout(np.asarray(x), self.layout)
        if list(x.shape) != self.model_shape:
            raise AgentError("input of shape %s for a model that takes %s"
                             % (list(x.shape), self.model_shape))
        # The OrtValue reads x's memory: keep x alive as long as it is bound.
        self._held = np.ascontiguousarray(x, dtype=self.input_dtype)
        value = self._ort.OrtValue.ortvalue_from_numpy(self._held, "cpu", 0)
        self._binding.bind_ortvalue_input(self._input_name, value)

    def output(self):
        return self._binding.copy_outputs_to_cpu()[0]

    def end_profiling(self) -> str:
        """The trace file of a profiling session (Chrome trace JSON), complete from here on."""
        return self._session.end_profiling()
