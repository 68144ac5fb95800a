"""Does the agent time what a GPU really costs? (the timing trap of asynchronous accelerators)

On LiteRT's CompiledModel, run_by_index() returns once the work is enqueued; the result exists
only when the output buffer is read back. In one run, interleaved round by round (so drift and
the neighbours' load hit every side alike), each in a fresh process on the same model:
  * the agent's GPU p50 (`--accelerators gpu`: it times run + read);
  * a bare synchronous loop: run_by_index() then read() of the output, timed together;
  * the enqueue-only figure: run_by_index() alone, what a benchmark that forgets the read reports
    (LiteRT 2.3's own benchmark_litert_model.py times exactly that).

Model: a MobileNetV2 (Keras, random weights: timing does not depend on them) at --img px, fp32,
on the software GPU of this machine (Mesa's lavapipe: Vulkan on the CPU) through the LiteRT 2.3
device environment the tests use (.venv-litert23, built on first use).

    python benchmarks/accelerators.py [--rounds 5] [--min-seconds 2] [--img 64]
                                      [--readme benchmarks/README.md]

With --readme, the "## Accelerators" section of that file is replaced (or appended)."""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness_overhead import cpu_model
from readme_section import update_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SECTION = "## Accelerators"

BARE_LOOP = r"""
import json, sys, time
import numpy as np
from ai_edge_litert import compiled_model as cm
path, warmup, min_runs, min_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
m = cm.CompiledModel.from_file(path, hardware_accel=cm.HardwareAccelerator.GPU
                               | cm.HardwareAccelerator.CPU)
sig = m.get_signature_by_index(0)
det = m.get_input_tensor_details(sig["key"])[sig["inputs"][0]]
out = m.get_output_tensor_details(sig["key"])[sig["outputs"][0]]
ins, outs = m.create_input_buffers(0), m.create_output_buffers(0)
ins[0].write(np.random.default_rng(0).random(det["shape"]).astype(det["dtype"]))
n, dtype = int(np.prod(out["shape"])), out["dtype"]
def loop(step, seconds):
    for _ in range(warmup):
        step()
    samples, start = [], time.perf_counter_ns()
    while len(samples) < min_runs or time.perf_counter_ns() - start < seconds * 1e9:
        t0 = time.perf_counter_ns()
        step()
        samples.append(time.perf_counter_ns() - t0)
    return float(np.percentile(samples, 50)) / 1e6, len(samples)
sync, n_sync = loop(lambda: (m.run_by_index(0, ins, outs), outs[0].read(n, dtype)), min_s)
# Enqueues alone pile work up on the device: a fixed count, not seconds' worth (thousands of
# queued inferences exhaust the driver).
enqueue, n_enq = loop(lambda: m.run_by_index(0, ins, outs), 0.0)
outs[0].read(n, dtype)  # drain what the enqueue loop left in flight
print(json.dumps({"sync_ms": sync, "enqueue_ms": enqueue, "n_sync": n_sync, "n_enq": n_enq}))
"""


def make_model(work: Path, img: int) -> Path:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    net = tf.keras.applications.MobileNetV2(input_shape=(img, img, 3), weights=None, classes=2,
                                            classifier_activation=None)
    fixed = tf.keras.Sequential([tf.keras.Input((img, img, 3), batch_size=1), net])
    fixed.export(str(work / "saved_model"), verbose=False)
    models = work / "models"
    models.mkdir()
    path = models / "mobilenetv2.fp32.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(work / "saved_model")).convert())
    return models


def agent_p50(python: str, bundle: Path, out: Path, args, env: dict) -> float:
    from edgebench.device.options import AgentOptions, agent_command

    gpu = AgentOptions(accelerators="gpu", warmup=args.warmup, min_runs=args.min_runs,
                       min_seconds=args.min_seconds)
    cmd = agent_command(python, bundle / "agent.pyz", bundle, out, gpu)
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    with open(out / "results.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    if row["status"] != "ok":
        raise SystemExit(f"agent failed: {row['error']}")
    return float(row["p50_ms"]), row["accelerator_device"]


def bare(python: str, model: Path, args, env: dict) -> dict:
    done = subprocess.run([python, "-c", BARE_LOOP, str(model), str(args.warmup),
                           str(args.min_runs), str(args.min_seconds)],
                          check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args) -> dict:
    from delegates.build import litert23_python
    from edgebench.host.bundle import build_bundle

    python = litert23_python()
    work = Path(tempfile.mkdtemp(prefix="accel-bench-"))
    env = dict(os.environ, XDG_RUNTIME_DIR=str(work))
    os.chmod(work, 0o700)
    bundle = build_bundle(make_model(work, args.img), work / "bundle", run_id="accel-bench")
    model = next((bundle / "models").glob("*.tflite"))
    data = {"agent": [], "sync": [], "enqueue": [], "adapter": None,
            "load": [os.getloadavg()[0]]}
    for r in range(args.rounds):
        order = ("agent", "bare") if r % 2 == 0 else ("bare", "agent")
        for side in order:
            if side == "agent":
                p50, data["adapter"] = agent_p50(python, bundle, work / f"out-{r}", args, env)
                data["agent"].append(p50)
            else:
                b = bare(python, model, args, env)
                data["sync"].append(b["sync_ms"])
                data["enqueue"].append(b["enqueue_ms"])
        print(f"round {r + 1}/{args.rounds}: agent {data['agent'][-1]:.3f} ms, sync "
              f"{data['sync'][-1]:.3f} ms, enqueue {data['enqueue'][-1]:.4f} ms", file=sys.stderr)
    data["load"].append(os.getloadavg()[0])
    return data


def summarize(data: dict, args) -> str:
    med = statistics.median
    ratio = med([a / s for a, s in zip(data["agent"], data["sync"])])
    trap = med([s / e for s, e in zip(data["sync"], data["enqueue"])])
    spread = (max(data["agent"]) - min(data["agent"])) / med(data["agent"])
    ok = 0.95 <= ratio <= 1.05 and trap >= 10
    return "\n".join([
        SECTION, "",
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {platform.machine()}, "
        f"{cpu_model()} ({os.cpu_count()} cores, load average {data['load'][0]:.1f} at the "
        f"start, {data['load'][1]:.1f} at the end), LiteRT 2.3.0 CompiledModel on the GPU "
        f"adapter \"{data['adapter']}\", MobileNetV2 @ {args.img} px fp32 (random weights), "
        f"{args.rounds} interleaved rounds, each side in a fresh process with {args.warmup} "
        f"warm-up runs and at least {args.min_runs} runs / {args.min_seconds:g} s. Command: "
        f"`python benchmarks/accelerators.py --rounds {args.rounds} --min-seconds "
        f"{args.min_seconds:g} --img {args.img} --readme benchmarks/README.md`.", "",
        "| agent GPU p50 (median of rounds) | bare run + read p50 | agent / bare (median of "
        "per-round ratios) | enqueue-only p50 | bare sync / enqueue-only | agent p50 spread "
        "over rounds |",
        "|---|---|---|---|---|---|",
        f"| {med(data['agent']):.2f} ms | {med(data['sync']):.2f} ms | {ratio:.3f} | "
        f"{med(data['enqueue']):.4f} ms | {trap:.0f}× | {100 * spread:.1f} % |", "",
        "The enqueue-only figure is wrong as a latency: run_by_index() returns as soon as the "
        "work is queued, so a loop of it measures how fast the queue accepts work, not when a "
        "result exists; an app cannot use an output it has not read. The agent times run + "
        "read, so its figure must sit with the synchronous loop's. Targets: agent / bare within "
        f"0.95–1.05 and the enqueue-only figure at least 10× smaller: {'met' if ok else 'NOT met'}"
        ". This is a software GPU (Vulkan on this CPU): the absolute figures say nothing about a "
        "real GPU, the ratios are what this benchmark checks.", ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-runs", type=int, default=20)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--img", type=int, default=64)
    p.add_argument("--readme", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the raw p50s here")
    args = p.parse_args(argv)
    data = measure(args)
    section = summarize(data, args)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    if args.readme:
        update_section(args.readme, "Accelerators", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
