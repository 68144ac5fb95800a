"""The C test delegates (tests/delegates/) through the real LiteRT `load_delegate`, on the
host's LiteRT 2.1 and on the device side's LiteRT 2.3: what loads, what each failure raises
(the text the agent's error rows will carry), that a crash in Prepare kills only the child, and
that `claim` really takes nodes, computes them like the CPU, and is counted from the Python API
alone (delegates/check.py: delegated_nodes)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from delegates.build import HERE, BuildError, litert23_python
from tflite_factory import ARCH, factory_dir

pytestmark = pytest.mark.timeout(900)

CHECK = HERE / "check.py"
TINYCNN_OPS = ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "REDUCE_MAX", "FULLY_CONNECTED",
               "FULLY_CONNECTED"]


@pytest.fixture(scope="session", params=["2.1", "2.3"])
def runtime(request) -> tuple[str, str]:
    """(python, LiteRT version): the project venv's LiteRT 2.1 (the host's, onnx2tf's pin) and
    a device environment with LiteRT 2.3 (built once in .venv-litert23)."""
    if request.param == "2.1":
        return sys.executable, "2.1.0"
    try:
        return litert23_python(), "2.3.0"
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def tinycnn() -> Path:
    return factory_dir() / "models" / f"{ARCH}.fp32.tflite"


@pytest.fixture(scope="session")
def elementwise(tmp_path_factory) -> Path:
    """Two [1, 16] inputs through a lone RELU, MUL, ADD with a fused RELU, a broadcasting ADD
    (a [16] constant, which `claim` must leave to the CPU) and a MUL after it, so claiming the
    rest gives two partitions."""
    import numpy as np
    import tensorflow as tf

    bias = tf.constant(np.linspace(-1, 1, 16, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)] * 2)
    def f(x, y):
        r = tf.nn.relu(y)
        return (tf.nn.relu(x * r + x) + bias) * r

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    path = tmp_path_factory.mktemp("elementwise") / "elementwise.tflite"
    path.write_bytes(conv.convert())
    return path


def run_check(runtime, model: Path, delegate: Path, options: dict | None = None,
              tmp_path: Path | None = None) -> tuple[subprocess.CompletedProcess, dict | None,
                                                     list[dict]]:
    """One check.py child: (the process, its JSON result or None if it died, the delegate's
    report events)."""
    options = dict(options or {})
    report = None
    if tmp_path is not None:
        report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.jsonl"
        options["report"] = str(report)
    spec = {"model": str(model), "delegate": str(delegate), "options": options}
    proc = subprocess.run([runtime[0], str(CHECK), json.dumps(spec)], capture_output=True,
                          text=True, timeout=300)
    result = json.loads(proc.stdout) if proc.returncode == 0 else None
    if result is not None:
        assert result["runtime_version"] == runtime[1]
    found = ([json.loads(line) for line in report.read_text().splitlines()]
             if report is not None and report.exists() else [])
    return proc, result, found


def event(found: list[dict], name: str) -> dict:
    hits = [e for e in found if e["event"] == name]
    assert len(hits) == 1, found
    return hits[0]


def test_noop_reads_its_options_and_takes_no_node(runtime, test_delegates, tinycnn, tmp_path):
    proc, result, found = run_check(runtime, tinycnn, test_delegates["noop"],
                                    {"mode": "probe"}, tmp_path)
    assert result is not None, proc.stderr
    assert result["stage"] is None and result["error"] is None
    assert result["ops"] == TINYCNN_OPS and result["delegated"] == [] and result["taken"] == 0
    assert result["equal"] is True
    assert event(found, "create")["options"] == {"mode": "probe",
                                                 "report": str(tmp_path / "report-0.jsonl")}
    assert event(found, "prepare") == {"delegate": "noop", "event": "prepare",
                                       "plan_nodes": len(TINYCNN_OPS), "taken": 0}
    event(found, "destroy")


@pytest.mark.parametrize("name, options, message", [
    ("noop", {"fail_create": "1"}, "noop delegate: fail_create=1 was asked for"),
    ("noop", {"colour": "red"},
     "noop delegate: unknown option 'colour' (known: report, mode, fail_create)"),
    ("claim", {"op": "CONV_2D"},
     "claim delegate: op=CONV_2D unknown (ADD, MUL, RELU, FULLY_CONNECTED)"),
    ("claim", {"max_nodes": "many"}, "claim delegate: max_nodes=many is not a count"),
    ("crash", {"signal": "HUP"}, "crash delegate: signal=HUP unknown (SEGV or ABRT)"),
])
def test_create_failure_raises_the_delegates_message(runtime, test_delegates, tinycnn, name,
                                                     options, message):
    proc, result, _ = run_check(runtime, tinycnn, test_delegates[name], options)
    assert result is not None, proc.stderr
    assert result["stage"] == "load" and result["error_type"] == "ValueError"
    assert result["error"] == f"Failed to load delegate from {test_delegates[name]}\n{message}"


def test_missing_library_and_library_without_entry_points(runtime, test_delegates, tinycnn,
                                                          tmp_path):
    missing = tmp_path / "libnot_there.so"
    _, result, _ = run_check(runtime, tinycnn, missing)
    assert (result["stage"], result["error_type"]) == ("load", "OSError")
    assert result["error"] == f"{missing}: cannot open shared object file: No such file or directory"
    lib = test_delegates["not_a_delegate"]
    _, result, _ = run_check(runtime, tinycnn, lib)
    assert (result["stage"], result["error_type"]) == ("load", "AttributeError")
    assert result["error"] == f"{lib}: undefined symbol: tflite_plugin_create_delegate"


def test_prepare_failure_raises_at_interpreter_creation(runtime, test_delegates, tinycnn,
                                                        tmp_path):
    proc, result, found = run_check(runtime, tinycnn, test_delegates["prepare_fails"], {},
                                    tmp_path)
    assert result is not None, proc.stderr
    assert (result["stage"], result["error_type"]) == ("interpreter", "RuntimeError")
    # The context's error reporter and the runtime's own line, joined without a separator.
    assert result["error"] == ("prepare_fails delegate: Prepare refused the graph on purpose "
                               "(6 nodes)Restored original execution plan after delegate "
                               "application failure.")
    assert event(found, "prepare")["plan_nodes"] == len(TINYCNN_OPS)


@pytest.mark.parametrize("sig", ["SEGV", "ABRT"])
def test_crash_in_prepare_kills_the_process(runtime, test_delegates, tinycnn, tmp_path, sig):
    proc, result, found = run_check(runtime, tinycnn, test_delegates["crash"], {"signal": sig},
                                    tmp_path)
    assert proc.returncode == -getattr(signal, f"SIG{sig}"), (proc.returncode, proc.stderr)
    assert result is None and proc.stdout == ""
    # It died in Prepare (the event written just before), not while loading.
    assert event(found, "prepare")["signal"] == getattr(signal, f"SIG{sig}")


@pytest.mark.parametrize("options, taken", [({}, [[4, 5]]), ({"max_nodes": "1"}, [[4]])])
def test_claim_takes_fully_connected_and_matches_the_cpu(runtime, test_delegates, tinycnn,
                                                         tmp_path, options, taken):
    proc, result, found = run_check(runtime, tinycnn, test_delegates["claim"],
                                    {"op": "FULLY_CONNECTED", **options}, tmp_path)
    assert result is not None, proc.stderr
    assert result["stage"] is None, result["error"]
    assert result["ops"] == TINYCNN_OPS + ["DELEGATE"]
    assert result["delegated"] == taken
    prepared = event(found, "prepare")
    assert prepared["taken"] == result["taken"] == len(taken[0])
    assert prepared["partitions"] == 1 and prepared["status"] == 0
    assert prepared["ops"] == {"FULLY_CONNECTED": len(taken[0])}
    # The kernel really ran (both invokes), and summed in another order than the CPU's kernels.
    assert [e["count"] for e in found if e["event"] == "invoke"] == [1, 2]
    assert result["max_abs_diff"] < 1e-5


def test_claim_takes_elementwise_ops_exactly(runtime, test_delegates, elementwise, tmp_path):
    proc, result, found = run_check(runtime, elementwise, test_delegates["claim"],
                                    {"op": "ADD,MUL,RELU"}, tmp_path)
    assert result is not None, proc.stderr
    assert result["stage"] is None, result["error"]
    original = [op for op in result["ops"] if op != "DELEGATE"]
    assert sorted(original) == ["ADD", "ADD", "MUL", "MUL", "RELU"]
    taken = sorted(n for part in result["delegated"] for n in part)
    left = [i for i in range(len(original)) if i not in taken]
    # Everything but the broadcasting ADD, which the delegate does not implement; the MUL after
    # it lands in a second partition.
    assert len(taken) == 4 and [original[i] for i in left] == ["ADD"]
    assert len(result["delegated"]) == 2 == result["ops"].count("DELEGATE")
    prepared = event(found, "prepare")
    assert prepared["taken"] == 4 and prepared["ops"] == {"ADD": 1, "MUL": 2, "RELU": 1}
    assert prepared["partitions"] == 2
    assert sorted(e["nodes"] for e in found if e["event"] == "kernel") == sorted(
        len(p) for p in result["delegated"])
    assert result["equal"] is True  # elementwise float32: bit for bit


def test_claim_one_op_type_in_two_partitions(runtime, test_delegates, elementwise, tmp_path):
    """Only the MULs, which a CPU node separates: two partitions of one node each, counted alike
    by the delegate and from the Python API."""
    proc, result, found = run_check(runtime, elementwise, test_delegates["claim"],
                                    {"op": "MUL"}, tmp_path)
    assert result is not None, proc.stderr
    prepared = event(found, "prepare")
    assert prepared["taken"] == result["taken"] == 2 and prepared["partitions"] == 2
    assert [len(p) for p in result["delegated"]] == [1, 1]
    assert all(result["ops"][p[0]] == "MUL" for p in result["delegated"])
    assert result["equal"] is True
