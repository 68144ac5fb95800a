"""Does each API's invoke release the GIL? `--streams N` runs N interpreter threads in one
process, which only scales if the runtime lets go of Python's GIL while it computes.

Two probes per API, each in a fresh process of the LiteRT 2.3 device environment the tests use
(.venv-litert23): the TFLite Interpreter (cpu rows), CompiledModel on the CPU, and CompiledModel on
the GPU (here Mesa's lavapipe, Vulkan on the CPU):
  * GIL wake-up: a Python thread sleeps 1 ms over and over and records how late it wakes, alone
    and while another thread invokes back to back. Waking needs the GIL: if invoke held it, the
    late wake-ups would reach the length of an invoke; if it lets go, they stay near the
    scheduler's (the CPU is shared, so some delay remains either way).
  * Streams: inferences per second of one thread invoking, then of two threads, each with its
    own model instance (what --streams 2 does).
Model: the tests' slowcnn (fp32, ~15 ms per invoke on one CPU thread), so an invoke is long
against the 5 ms switch interval.

    python benchmarks/streams_gil.py [--seconds 3] [--readme benchmarks/README.md]

With --readme, the "## Streams and the GIL" section of that file is replaced (or appended)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from harness_overhead import cpu_model
from readme_section import update_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SECTION = "## Streams and the GIL"
TITLE = "Streams and the GIL"
APIS = ("interpreter", "compiled-cpu", "compiled-gpu")

PROBE = r"""
import json, subprocess, sys, threading, time
import numpy as np
api, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
serving = sys.argv[4:] == ["serve"]

def make():
    if api == "interpreter":
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=path, num_threads=1)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        return it.invoke
    from ai_edge_litert import compiled_model as cm
    accel = cm.HardwareAccelerator.CPU
    if api == "compiled-gpu":
        accel |= cm.HardwareAccelerator.GPU
    m = cm.CompiledModel.from_file(path, hardware_accel=accel)
    sig = m.get_signature_by_index(0)
    det = m.get_input_tensor_details(sig["key"])[sig["inputs"][0]]
    out = m.get_output_tensor_details(sig["key"])[sig["outputs"][0]]
    ins, outs = m.create_input_buffers(0), m.create_output_buffers(0)
    ins[0].write(np.zeros(det["shape"], det["dtype"]))
    n, dtype = int(np.prod(out["shape"])), out["dtype"]
    def invoke():  # the agent's invoke on a CompiledModel: run, then read the output back
        m.run_by_index(0, ins, outs)
        outs[0].read(n, dtype)
    return invoke

def late_wakes(seconds):
    late, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t0 - 0.001) * 1e3)
    return np.percentile(late, [50, 99]).tolist()

def invoking(invoke, stop, counts):
    n = 0
    while not stop.is_set():
        invoke()
        n += 1
    counts.append(n)

def until(invoke, end, done):
    n = 0
    while time.perf_counter() < end:
        invoke()
        n += 1
    done.append((n, time.perf_counter()))

def run_threads(invokes, seconds):
    # every thread invokes until the deadline; the window ends with the last invoke to finish
    # (as the agent's streams=N: an invoke of 200 ms would otherwise bias short windows)
    done, start = [], time.perf_counter()
    threads = [threading.Thread(target=until, args=(i, start + seconds, done)) for i in invokes]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return sum(n for n, _ in done) / (max(t for _, t in done) - start)

def warm(invoke):
    end = time.perf_counter() + 2.0
    while time.perf_counter() < end:
        invoke()

def count_from(invoke, start):
    # (invokes from `start` (time.time, one clock for both processes) for `seconds`, end time)
    while time.time() < start:
        time.sleep(0.0005)
    n, end = 0, start + seconds
    while time.time() < end:
        invoke()
        n += 1
    return n, time.time()

if serving:  # the second stream as a process of its own: ready, then the start time on stdin
    invoke = make()
    warm(invoke)
    print("ready", flush=True)
    print(json.dumps(count_from(invoke, float(sys.stdin.readline()))), flush=True)
    sys.exit(0)

def with_a_process(invoke):
    # one stream here, one in a process of its own (what the agent does on CompiledModel)
    other = subprocess.Popen([sys.executable, "-c", PROBE_TEXT, api,
                              path, str(seconds), "serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    while other.stdout.readline().strip() != "ready":  # past any line the runtime prints
        if other.poll() is not None:
            raise RuntimeError("the second stream's process ended")
    start = time.time() + 0.05
    other.stdin.write("%r\n" % start)
    other.stdin.close()
    n, mine = count_from(invoke, start)
    theirs, their_end = json.loads([line for line in other.stdout if line.startswith("[")][-1])
    other.wait()
    return (n + theirs) / (max(mine, their_end) - start)

first, second = make(), make()
for invoke in (first, second):  # two seconds of warm-up each: lavapipe's first runs are slower
    end = time.perf_counter() + 2.0
    while time.perf_counter() < end:
        invoke()
# one and two streams alternate, twice: drift and the neighbours' load hit both alike
ones, twos, procs = [], [], []
for _ in range(2):
    ones.append(run_threads([first], seconds))
    twos.append(run_threads([first, second], seconds))
    procs.append(with_a_process(first))
one, two, proc = (float(np.median(x)) for x in (ones, twos, procs))
alone = late_wakes(seconds)
stop, counts = threading.Event(), []
busy_thread = threading.Thread(target=invoking, args=(first, stop, counts))
busy_thread.start()
busy = late_wakes(seconds)
stop.set()
busy_thread.join()
print(json.dumps({"api": api, "invoke_ms": 1e3 / one, "one_ips": one, "two_ips": two,
                  "process_ips": proc,
                  "late_alone_ms": alone, "late_busy_ms": busy}))
"""


def probe(python: str, api: str, model: Path, seconds: float) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # the probe starts its second-stream process from its own text (PROBE_TEXT)
    code = PROBE.replace("PROBE_TEXT", repr(PROBE))
    proc = subprocess.run([python, "-c", code, api, str(model), str(seconds)],
                          capture_output=True, text=True, timeout=600, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"api": api, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def agent_streams(python: str, seconds: float) -> dict:
    """unit -> (the agent's streams=2 throughput) x (its timed loop's p50): 2 streams / 1, as the
    agent runs them (threads on the Interpreter, processes on CompiledModel)."""
    import csv

    from agent_helpers import FAST, bundle_command
    from tflite_factory import make_slow_bundle

    with tempfile.TemporaryDirectory(prefix="edgebench-streams-") as tmp:
        bundle = make_slow_bundle(Path(tmp) / "bundle")
        out = Path(tmp) / "out"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        streams = replace(FAST, models="slowcnn.fp32", accelerators="cpu,gpu", streams=2,
                          scenario_seconds=seconds)
        proc = subprocess.run(bundle_command(bundle, out, streams, python=python),
                              capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            return {}
        with open(out / "results.csv", newline="") as fh:
            p50 = {r["compute_unit"]: float(r["p50_ms"]) for r in csv.DictReader(fh)
                   if r["status"] == "ok"}
        with open(out / "scenarios.csv", newline="") as fh:
            ips = {r["compute_unit"]: float(r["throughput_ips"]) for r in csv.DictReader(fh)
                   if r["status"] == "ok"}
    return {unit: ips[unit] * p50[unit] / 1e3 for unit in ips if unit in p50}


def table(results: list) -> list:
    out = ["| API | invoke | 2 thread streams ÷ 1 | thread + process ÷ 1 | late wake-up p50 / "
           "p99, alone | … while a thread invokes |", "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            out.append(f"| {r['api']} | {r['error']} | | | | |")
            continue
        alone, busy = r["late_alone_ms"], r["late_busy_ms"]
        out.append(f"| {r['api']} | {r['invoke_ms']:.1f} ms | {r['two_ips'] / r['one_ips']:.2f}× "
                   f"| {r['process_ips'] / r['one_ips']:.2f}× "
                   f"| {alone[0]:.2f} / {alone[1]:.2f} ms | {busy[0]:.2f} / {busy[1]:.2f} ms |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    ap.add_argument("--readme", type=Path, help="replace the section in this markdown file")
    args = ap.parse_args()
    from delegates.build import litert23_python
    from tflite_factory import SLOW_ARCH, slow_dir

    python = litert23_python()
    model = slow_dir() / "models" / f"{SLOW_ARCH}.fp32.tflite"
    with tempfile.TemporaryDirectory(prefix="edgebench-xdg-") as xdg:
        os.environ.setdefault("XDG_RUNTIME_DIR", xdg)
        results = [probe(python, api, model, args.seconds) for api in APIS]
    agent = agent_streams(python, args.seconds)
    lines = table(results)
    cores = os.cpu_count()
    lines += ["", "The agent's own `--streams 2` (slowcnn.fp32, `--scenario-seconds "
              f"{args.seconds:g}`), throughput × the row's p50: "
              + ", ".join(f"{unit} {ratio:.2f}×" for unit, ratio in sorted(agent.items()))
              + " (cpu: two Interpreter threads; gpu: stream 2 in a process of its own)."
              if agent else "The agent's own `--streams 2` run failed."]
    body = [SECTION, "",
            f"`python benchmarks/streams_gil.py --seconds {args.seconds:g}` on {cpu_model()} "
            f"({cores} cores), {platform.python_version()} host, LiteRT 2.3 device environment; "
            f"model {SLOW_ARCH}.fp32 (the tests' slow model).", "", *lines, "",
            "A late wake-up that stays far below the invoke while another thread invokes means "
            "invoke lets go of the GIL; near the invoke's length means it holds it. "
            "compiled-cpu (CompiledModel on the CPU, not an agent unit: the agent's cpu rows are "
            "the Interpreter's) shows what that costs where one stream leaves a core free: "
            "two threads take turns, a second process runs beside; hence the agent's "
            "CompiledModel streams after the first run in processes of their own. "
            f"Two streams cannot pass {cores}× on {cores} cores; on lavapipe one GPU stream "
            "already keeps every core busy (its Vulkan device is the CPU), so the GPU rows "
            "cannot gain from a second stream here, in threads or processes: the GPU's figure "
            "that matters is the late wake-up."]
    print("\n".join(body))
    if args.readme:
        update_section(args.readme, TITLE, "\n".join(body) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
