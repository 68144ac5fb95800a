"""What each column of the agent's CSV files (schema.RECORDS) means, with its unit: the words of
the documentation's CSV reference, which is generated from schema.py and this table at build time
(docs/hooks/), so a column cannot be added without saying what it holds (tests/test_docs.py).

A column name means the same in every file it appears in, unless PER_FILE says otherwise for
one file. Units: ms, s, MB (2**20 bytes), degrees C, MHz, W, mJ, Hz, "fraction" (0 to 1);
"" for text, names and flags."""
from __future__ import annotations

# name -> (unit, meaning)
COLUMNS = {
    # identity of a line
    "schema_version": ("", "the results schema the line was written under "
                           "(schema.RESULTS_SCHEMA_VERSION); the host migrates older files"),
    "run_id": ("", "the measurement run (bench-host deploy's run id; agent --run-id)"),
    "bundle_id": ("", "the bundle's id (its manifest's run_id); one bundle measured twice is two "
                      "runs with one bundle_id"),
    "model": ("", "the model's name, <architecture>[.<converter>].<recipe>, e.g. resnet18.int8"),
    "architecture": ("", "the network (resnet18, vgg16, ...), from the model card"),
    "recipe": ("", "the quantization recipe (fp32, dynamic, fp16, int8, int16x8, int8-mixed)"),
    "sha256": ("", "sha256 of the model file: the model's identity across runs"),
    "file_size_mb": ("MB", "size of the model file"),
    "threads": ("count", "the runtime's thread count (ONNX Runtime: intra-op threads)"),
    "xnnpack": ("", "on / off: the XNNPACK delegate of the CPU Interpreter (--xnnpack); empty "
                    "on ONNX Runtime rows"),
    "runtime": ("", "the runtime package: litert, tflite-runtime, tensorflow; onnxruntime for "
                    ".onnx models"),
    "runtime_version": ("", "that package's version"),
    "compute_unit": ("", "the unit as asked for, part of the row's key: cpu, gpu, gpu!, npu, npu!, "
                         "delegate:LIB[:k=v;...]"),
    "round": ("count", "1..--rounds: which pass over the plan (models interleaved) measured it"),
    # what ran it
    "accelerator": ("", "cpu, gpu, npu or delegate"),
    "api": ("", "interpreter (TFLite Interpreter), compiled_model (LiteRT CompiledModel) or "
                "inference_session (ONNX Runtime)"),
    "accelerator_device": ("", "what ran the model: the GPU adapter LiteRT selected, the "
                               "delegate library, the CPU kernels (XNNPACK), or ONNX Runtime's "
                               "execution provider (with the Vulkan device of WebGPU)"),
    "software_accelerator": ("", "true for a software GPU (llvmpipe, SwiftShader, any "
                                 "\"CPU / Software\" adapter): timings not representative"),
    "fully_accelerated": ("", "CompiledModel.is_fully_accelerated(), or on an ONNX Runtime gpu "
                              "row no node outside the provider: every op on the accelerator; "
                              "empty where the API does not tell"),
    "delegated_nodes": ("count", "nodes of the model a delegate (ONNX Runtime: the gpu "
                                 "provider) took, where known"),
    "fallback_nodes": ("", "ONNX Runtime gpu rows: the nodes that ran outside the chosen "
                           "provider, each provider:op_type:node, separated by ';' (from a "
                           "profiled run after the timed loop); empty when none did"),
    "status": ("", "ok or error"),
    "error": ("", "an error line's failure; on an ok line, a note on what could not be measured"),
    # load and latency
    "accelerator_init_ms": ("ms", "start-up before the model: importing the runtime; on gpu/npu "
                                  "also a trivial model compiled and run on the accelerator"),
    "load_ms": ("ms", "the model's cold load and tensor allocation, after the start-up"),
    "warm_load_ms": ("ms", "the same model loaded again in the same child, after the cold "
                           "session is released"),
    "first_inference_ms": ("ms", "the first inference, timed apart from the others"),
    "warmup_runs": ("count", "untimed inferences after the first (--warmup)"),
    "count": ("count", "timed inferences"),
    "mean_ms": ("ms", "mean latency of the timed inferences"),
    "std_ms": ("ms", "standard deviation of the timed latencies"),
    "min_ms": ("ms", "fastest timed inference"),
    "p50_ms": ("ms", "median latency of the timed inferences"),
    "p90_ms": ("ms", "90th percentile latency"),
    "p95_ms": ("ms", "95th percentile latency"),
    "p99_ms": ("ms", "99th percentile latency"),
    "max_ms": ("ms", "slowest timed inference"),
    # memory
    "rss_before_mb": ("MB", "resident memory of the row's child before the model is loaded"),
    "rss_after_load_mb": ("MB", "resident memory after load and allocation"),
    "peak_rss_mb": ("MB", "peak resident memory (VmHWM) after the timed loop, before the test "
                          "set is loaded: the model's peak"),
    # accuracy
    "n_test": ("count", "test images the accuracy is measured on"),
    "accuracy": ("fraction", "share of test images classified correctly"),
    "sensitivity": ("fraction", "share of positive (malignant) images found: tp / (tp + fn)"),
    "specificity": ("fraction", "share of negative (benign) images found: tn / (tn + fp)"),
    "auc": ("fraction", "area under the ROC curve of the positive-class score"),
    "tn": ("count", "true negatives"),
    "fp": ("count", "false positives"),
    "fn": ("count", "false negatives"),
    "tp": ("count", "true positives"),
    "agreement": ("fraction", "top-1 agreement with the float (PyTorch) model's logits shipped "
                              "in the bundle (reference/<arch>.npy)"),
    # environment
    "temp_before_c": ("degrees C", "hottest thermal zone before the row"),
    "temp_after_c": ("degrees C", "hottest thermal zone after the row"),
    "throttled": ("", "true when `vcgencmd get_throttled` bits 0-3 were set before or after the "
                      "row; empty off a Raspberry Pi"),
    "throttled_flags": ("", "`vcgencmd get_throttled` as hex; empty off a Raspberry Pi"),
    "device_model": ("", "the board (device tree model, or DMI vendor and product)"),
    "machine": ("", "the machine architecture (platform.machine(): aarch64, x86_64, ...)"),
    "cpu": ("", "the CPU's name (/proc/cpuinfo; ARM part number decoded)"),
    "cores": ("count", "logical CPUs (os.cpu_count())"),
    "governor": ("", "cpu0's cpufreq governor"),
    "freq_mhz": ("MHz", "cpu0's current frequency"),
    "os": ("", "the operating system and kernel"),
    "python": ("", "the device's Python version"),
    "numpy": ("", "the device's numpy version"),
    "emulated": ("", "true when the device runs under an emulator (qemu): timings not "
                     "representative"),
    "hostname": ("", "the device's host name"),
    "started_utc": ("", "when the row started (ISO 8601, UTC)"),
    # energy (--power)
    "power_source": ("", "the power source read (pi5-pmic, ina3221, rapl, nvml, cmd); empty: no "
                         "power measured, the reason in error"),
    "power_rails": ("", "which rails make up the board figure (VDD_IN, sum:RAIL,...)"),
    "power_samples": ("count", "power readings inside the timed window"),
    "power_hz": ("Hz", "the reading rate achieved"),
    "power_window_s": ("s", "length of the timed window the energy is over"),
    "idle_power_w": ("W", "mean power over the idle baseline before the row"),
    "avg_power_w": ("W", "mean power over the window"),
    "energy_mj": ("mJ", "energy of the window per inference"),
    "energy_above_idle_mj": ("mJ", "energy per inference above idle power"),
    # latency_samples.csv
    "run": ("count", "index of the timed inference within its row"),
    "latency_ms": ("ms", "one timed inference"),
    # predictions.csv
    "testset": ("", "clean (testset.npz) or <corruption>-<severity>"),
    "positive_class": ("", "index of the positive class (the card's, malignant)"),
    "image": ("", "index of the image in its test set"),
    "label": ("", "the image's true class"),
    "predicted": ("", "the class the model gave (argmax)"),
    "score": ("fraction", "softmax probability of the positive class"),
    # robustness.csv
    "corruption": ("", "the MedMNIST-C corruption (pixelate, speckle_noise, ...)"),
    "severity": ("", "1 (mild) to 5 (severe)"),
    "n": ("count", "images in the corrupted set"),
    "agreement_fp32": ("fraction", "share of images whose class equals the one the same "
                                   "architecture's fp32 model gave on the same corrupted images "
                                   "and compute unit; empty where that row is not measured"),
    # power_samples.csv
    "phase": ("", "idle (the baseline before the row), timed (the timed loop), a scenario's "
                  "name or soak"),
    "t_s": ("s", "time from the start of the row's timed window (negative before it)"),
    "rail": ("", "a rail of the source, or board (what power_rails adds up)"),
    "watts": ("W", "the reading (a counter source such as RAPL: the mean power since the "
                   "previous reading)"),
    # soak.csv
    "interval": ("count", "the interval's number within the soak"),
    "t_start_s": ("s", "the interval's start, from the soak's start"),
    "t_end_s": ("s", "the interval's end (the invoke that crosses it)"),
    "temp_c": ("degrees C", "the hottest thermal zone at the interval's end"),
    # scenarios.csv
    "scenario": ("", "fps=RATE (--fps) or streams=N (--streams)"),
    "stream": ("count", "the stream, 1..N (1 for an fps scenario)"),
    "seconds": ("s", "the scenario's length (--scenario-seconds)"),
    "target_fps": ("Hz", "the rate frames arrive at (fps scenarios)"),
    "frames": ("count", "frames that arrived, unserved ones included"),
    "achieved_fps": ("Hz", "frames finished / time"),
    "missed_share": ("fraction", "frames whose result came after the next frame's arrival, or "
                                 "that were never served"),
    "throughput_ips": ("1/s", "inferences per second of all streams together"),
    "service_p50_ms": ("ms", "median of the invoke alone, without queueing"),
    # frames.csv
    "frame": ("count", "the frame's number"),
    "arrival_ms": ("ms", "when the frame arrived, from the scenario's start"),
    "start_ms": ("ms", "when its inference started (empty: never served)"),
    "end_ms": ("ms", "when its result came (empty: never served)"),
    # op_profile.csv
    "node": ("", "the node's name in the graph as the runtime optimised it (fused ops are one "
                 "node); LiteRT: \"op<k> <its output tensor>\""),
    "op_type": ("", "the node's operator"),
    "provider": ("", "where it ran (an execution provider or delegate)"),
    "profiled_runs": ("count", "profiled inferences, after 2 uncounted warm-ups (LiteRT: rounds "
                               "over every prefix; 0 for an op on constants, done at load)"),
    "median_ms": ("ms", "the node's median time per inference (LiteRT: the fastest round of "
                        "prefix k less that of prefix k-1; can be negative)"),
    "low_ms": ("ms", "low end of the 95 % bootstrap interval of that median"),
    "high_ms": ("ms", "high end of that interval"),
    "share": ("fraction", "the node's median / the sum of the row's medians"),
    "resolved": ("", "false when the interval's low end is below the profiler's resolution "
                     "(1 us on ONNX Runtime)"),
}

# (file, name) -> (unit, meaning), where a column means something else in that file
PER_FILE = {
    ("soak.csv", "count"): ("count", "inferences in the interval"),
    ("soak.csv", "p50_ms"): ("ms", "median latency over the interval"),
    ("soak.csv", "p90_ms"): ("ms", "90th percentile latency over the interval"),
    ("soak.csv", "freq_mhz"): ("MHz", "cpu0's frequency at the interval's end"),
    ("soak.csv", "throttled_flags"): ("", "`vcgencmd get_throttled` at the interval's end; empty "
                                          "off a Raspberry Pi"),
    ("soak.csv", "avg_power_w"): ("W", "mean board power over the interval (empty without "
                                       "--power)"),
    ("scenarios.csv", "p50_ms"): ("ms", "median latency, arrival to result (queueing included)"),
    ("scenarios.csv", "p90_ms"): ("ms", "90th percentile latency, queueing included"),
    ("scenarios.csv", "p99_ms"): ("ms", "99th percentile latency, queueing included"),
    ("scenarios.csv", "avg_power_w"): ("W", "mean power over the scenario's window"),
    ("scenarios.csv", "energy_mj"): ("mJ", "energy per frame served (streams: per inference of "
                                           "all streams together)"),
    ("scenarios.csv", "energy_above_idle_mj"): ("mJ", "the same above idle power"),
    ("scenarios.csv", "power_source"): ("", "the power source read over the scenario's window"),
    ("scenarios.csv", "status"): ("", "ok or error (a scenario that failed)"),
    ("power_samples.csv", "power_source"): ("", "the source the reading came from"),
    ("robustness.csv", "accuracy"): ("fraction", "accuracy on the corrupted set"),
    ("robustness.csv", "status"): ("", "ok or error (a corrupted set missing or of the wrong "
                                       "shape on the device)"),
}


def describe(file: str, name: str):
    """(unit, meaning) of column `name` of `file`, or None where none is written yet."""
    return PER_FILE.get((file, name)) or COLUMNS.get(name)
