"""The agent's guide: `python3 agent.pyz --help` prints it (what a row means, the choices worth
knowing, the progress protocol). Its usage line is made from the options' declarations
(options.py), so it lists every flag the agent takes."""
from __future__ import annotations

from ..options import option_fields

DESCRIPTION = ("Measures a bundle's models on this device (latency, memory, accuracy; energy,\n"
               "heat and frame rates when asked) into CSVs in --out.")


def usage(width: int = 98) -> str:
    """`python3 agent.pyz --bundle DIR --out DIR [--threads N,...] ...`, wrapped between flags
    (never inside one)."""
    items = ["[%s %s]" % (flag, declared.placeholder()) for _, flag, declared in option_fields()]
    lines, line = [], "  python3 agent.pyz --bundle DIR --out DIR"
    for item in items + ["[--run-id ID]", "[--sysfs-root DIR]"]:
        if len(line) + 1 + len(item) > width:
            lines.append(line)
            line = "     "
        line += " " + item
    return "\n".join(lines + [line])


GUIDE = "\nUsage:\n" + usage() + """

What one row means (results.csv, RESULT_COLUMNS): one model x compute unit x thread count x
round, measured in a fresh child process (a re-exec of this archive with --child) so that its
memory figures are that model's alone. Inside the child: the start-up (accelerator_init_ms:
importing the interpreter; on gpu/npu LiteRT's environment and a trivial model compiled and run
on the accelerator), RSS before load; load + allocate (load_ms, cold); RSS after load; one first
inference (first_inference_ms);
--warmup invokes; then invokes until both --min-runs and --min-seconds are met, capped by
--max-seconds. Only invoke() is between the two time.perf_counter_ns reads (on an accelerator:
the run and the read of its output); the input is set once before. peak_rss_mb (VmHWM) is read
after the timed loop, before the test set is loaded, so it is the model's peak, not the test
set's. After the accuracy pass the cold session is released and the same model is loaded again
in the same child (warm_load_ms): the load once the runtime and accelerator are up, which does
not depend on the model's place in the plan (the first GPU row of a run also fills the driver's
on-disk shader caches). Accuracy runs the whole testset.npz through the model (inputs normalised
per the card, quantized with the model's own scale/zero point for int8/uint8/int16 inputs,
outputs dequantized); it is measured once per model and configuration and copied to the rows of its
other thread counts and rounds (outputs do not depend on them). MB means 2**20 bytes. Raw
samples: latency_samples.csv; per-image predictions: predictions.csv. When the bundle carries
corrupted test sets (bench-host bundle --robustness), the same child runs each of them after the
clean set (--robustness-images N: the first N images of each) and robustness.csv gets a line per
set; fp32 is measured first within each architecture so the others' agreement_fp32 can be given.

After the timed loop (same child, same loaded model; skipped rows are not re-run):
- --fps 15,30 (scenarios.csv, frames.csv): a frame arrives every 1/RATE s for --scenario-seconds
  (default 10); a frame that arrives while the previous one runs waits (queueing counted, nothing
  dropped); latency = result - arrival; a frame misses when its result comes after the next
  frame's arrival. Frames that arrived but had not started when the time is up are unserved
  (empty start/end in frames.csv) and count as missed. One scenarios.csv line per rate (scenario
  "fps=30", stream 1): frames, achieved_fps, missed_share, p50/p90/p99 (queueing included),
  service_p50_ms (the invoke alone); frames.csv: every frame's arrival, start and end in ms.
- --streams N (scenarios.csv): N interpreters of the model invoke back to back in N threads (the
  Interpreter's invoke releases the GIL; CompiledModel's, on gpu/npu, does not, so there streams
  2..N run in processes of their own, said in each line's error column) for --scenario-seconds:
  one line per stream (scenario "streams=N", stream 1..N) with its latency, and throughput_ips
  for all streams together.
- --soak SECONDS (soak.csv): the model runs back to back; every --soak-interval (default 10 s)
  one line, on disk as the interval ends: count, p50/p90, the hottest thermal zone, cpu0's
  frequency and the vcgencmd throttle flags read at its end, and avg_power_w with --power. A
  soak cut short (agent killed) goes on when the run is repeated: the row is measured again and
  the soak continues from its last finished interval with only the seconds left, numbered on.
  Rows OUT already holds are not soaked again: a longer --soak over them is reported, and a
  new --out soaks them in full.
- --profile-ops N (op_profile.csv): per-operator time. After the row's timed loop and accuracy,
  a session of its own (profiling slows a model down) runs 2 warm-ups and N profiled
  inferences; ONNX Runtime's profiler times each node's kernel in each run. One line per node of
  the graph as the runtime optimised it (fused ops are one node), slowest first: op_type,
  provider, the median over the N runs with a 95 % bootstrap interval, its share of the sum of
  medians, resolved=false when the interval reaches below the profiler's 1 us. The row's note
  says "op profile: N ops, kernels sum to X % of p50". LiteRT rows (no profiler): the model is
  cut after every op and each prefix, loaded as the row loads its model, timed in shuffled rounds
  (up to N, about 4 s, at least 10); an op's time is the fastest round of its prefix less that of
  the prefix before, with a bootstrap interval over rounds. XNNPACK partitions each prefix anew:
  an op fused into the next one in the full model is timed unfused.
A scenario that fails is an error line in scenarios.csv and a note in the row's `error`; a child
that dies in a scenario or the soak keeps the row's timing ("after the timed loop: ..." in
`error`). Each scenario line and soak interval carries the power of its own window (--power).

Choices worth knowing:
- Compute units (--accelerators; `--accelerators help` lists them): cpu is the Interpreter of
  the chosen runtime; gpu and npu run through LiteRT's CompiledModel (ai-edge-litert >= 2.3) with
  the CPU as fallback, and their timed region is run + read of the output, because the run alone
  only enqueues work on the accelerator. `gpu!`/`npu!` make a model that does not run wholly on
  the accelerator an error row. --delegate adds an Interpreter row with an external delegate.
  Accuracy is measured per compute unit, so fp16 arithmetic inside a GPU shows in the agreement.
  Without XDG_RUNTIME_DIR the agent makes a private one for the GPU driver.
- .onnx models (bench-host's ORT recipes) always run on ONNX Runtime, whatever --runtime says
  (that picks the TFLite interpreter of .tflite models): --threads is intra_op_num_threads with
  spinning off, the input bound once through an IOBinding so the clock holds run_with_iobinding
  alone, its NCHW layout fed from the same NHWC test images; runtime "onnxruntime", xnnpack
  blank. cpu is CPUExecutionProvider; gpu the first of CUDAExecutionProvider (onnxruntime-gpu)
  and WebGpuExecutionProvider (onnxruntime-webgpu) the installed onnxruntime has, the CPU taking
  the nodes it lacks: a profiled run after the timed loop names them (fallback_nodes and a note);
  gpu! refuses such a model. onnxruntime is imported only in such a row's child: where it (or a
  GPU provider) is missing, or on npu/--delegate, that row is an error row saying why and what
  to install, and the run goes on.
- A missing testset.npz (or a manifest with "testset": null) is not fatal: timing and memory
  still run, the accuracy columns stay empty, and `error` says "accuracy not measured: ..." on an
  otherwise ok row. The same note appears when the card has no input normalization (a bare
  .tflite bundled without --testset) or the test images do not fit the model's input.
- Resume: rows with status=ok already in OUT/results.csv for the same sha256, threads, xnnpack,
  runtime and compute_unit are skipped. Error rows are retried: the old error row is dropped (the
  file is rewritten atomically) and the new outcome appended. Samples without an ok row are
  dropped too.
- The model file's sha256 is checked against the manifest; a mismatch is an error row.
- Sensors: every environment file (thermal zones, cpufreq, /proc/device-tree/model, /proc/cpuinfo,
  /etc/os-release, binfmt_misc) is read through host_path(), rooted at --sysfs-root. Absent
  sensors are empty cells / null in env.json, never guessed. temp_*_c is the hottest thermal zone.
  throttled = any of `vcgencmd get_throttled` bits 0-3 (under-voltage, capped, throttled, soft
  limit) set before or after the row; throttled_flags is the raw value after it.
- Energy (--power; `--power help` lists the sources and what each needs): a thread in this
  (parent) process reads the source at --power-hz (default 10) while the row's child runs, so it
  takes nothing from the timed loop's process. Before the child starts, --power-idle-seconds
  (default 3) of idle readings give idle_power_w and the rate the source achieves; the timed loop
  then runs long enough for its window to hold >= 20 readings at that rate (the row's note says
  so; --max-seconds still caps it). The child stamps its timed window on CLOCK_MONOTONIC and the
  parent integrates the board power over exactly that window (trapezoid, edges interpolated; a
  counter such as RAPL's energy_uj or NVML's energy: the difference, wrap-corrected):
  energy_mj = that energy / the inferences in the window, energy_above_idle_mj the same less
  idle power x the window, avg_power_w = energy / window. power_rails says what "board" is:
  VDD_IN on a Jetson (the module's input; the carrier board is not in it), the sum of the Pi 5's
  PMIC rails (EXT5V/BATT have voltage only and a rail with current only is named as not
  counted: the USB-C input is not visible), RAPL's package domains (CPU packages only), the
  GPUs for NVML, whatever the meter covers for cmd:COMMAND (its last printed number, watts).
  Raw readings (idle and timed phases, each rail and "board", t_s from the window's start) go to
  power_samples.csv. Faults never give a number that was not read: --power auto finding nothing,
  a source that fails during the window or is too slow for it (fewer than 2 readings inside)
  leave the power columns empty with the reason in `error`; a source named explicitly that is
  absent makes each row an error row before its child starts (the run goes on; a re-run with
  the source retries them). Unreadable sysfs files name the file and the permission fix.
- emulated: EDGEBENCH_EMULATED=1/0 forces it; otherwise true when binfmt_misc has an enabled
  qemu handler for this process's own architecture (a kernel only needs one when it cannot run
  that architecture natively, i.e. we are under qemu-user).

Progress: one JSON object per line on stdout; human messages go to stderr.
  {"event": "start", "run_id", "runtime", "runtime_version", "models", "rows"}
  {"event": "model_start", "model", "index", "total", "threads": [..], "units": [..], "round"}
  {"event": "soak", "model", "threads", "unit", "round", "interval", "t_end_s", "soak_s",
   "p50_ms", "temp_c", "avg_power_w"}        (--soak: as each soak.csv line is written)
  {"event": "skip", "model", "threads", "unit", "round"}     (already measured)
  {"event": "row", "model", "threads", "unit", "round", "status", "p50_ms", "accuracy",
   "peak_rss_mb"}
  {"event": "error", "model", "threads", "unit", "message"}  (also "fatal": true before exit 2)
  {"event": "model_done", "model", "index", "total", "round"}   (index/total count model x round)
  {"event": "done", "rows", "skipped", "errors", "out"}
Exit status: 0 when the run finished (error rows included), 2 for bad input (unknown runtime,
no interpreter, missing bundle, unknown model name), 1 for anything unexpected.
"""
