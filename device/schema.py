"""The data shared by host and device, defined once: the bundle manifest, the model card, the CSV
files the agent writes and the events of its progress protocol. The host imports this module
(edgebench.device.schema); the agent ships it in agent.pyz. Bump a version when a field changes
meaning or disappears; adding a trailing CSV column is also a bump (readers check it)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

MODEL_CARD_SCHEMA = "edgebench.model-card/1"
MANIFEST_SCHEMA = "edgebench.manifest/1"
# 2: the compute-unit columns (compute_unit ... delegated_nodes); 3: round, predictions.csv;
# 4: cold/warm load (accelerator_init_ms, warm_load_ms), energy (power_* ... energy_above_idle_mj),
#    power_samples.csv, soak.csv, scenarios.csv, frames.csv
# 5: bundle_id (the manifest's run_id); run_id is the measurement run's (agent --run-id), so one
#    bundle measured twice is two runs
# 6: op_profile.csv (--profile-ops N: per-operator time of a row, from a profiled pass after its
#    timed loop); results.csv unchanged (the row's note says how many ops and their sum)
# 7: fallback_nodes (ONNX Runtime gpu rows: the nodes ORT placed outside the chosen provider)
RESULTS_SCHEMA_VERSION = 7

# Model card (JSON beside every .tflite, and one entry per model in the bundle's manifest):
#   schema, name ("resnet18.int8"), file, sha256, size_bytes, recipe, architecture,
#   input:  {shape [1,H,W,C], dtype, layout "NHWC" (.onnx: [1,C,H,W], "NCHW"), scale, zero_point,
#            normalization {pixel_scale, mean [C], std [C]}}   # x = (u8*pixel_scale - mean)/std
#   output: {shape, dtype, scale, zero_point}
#   class_names, positive_class (index of the positive class, "malignant"),
#   source {checkpoint, onnx, saved_model, data_spec, img_size, split_seed},
#   tools {torch, onnx, onnx2tf, tensorflow, ...}, conversion_seconds,
#   verification {max_abs_diff, agreement, accuracy, n, reference "torch"|"onnxruntime"}
#                (null when not verified)
#   Float tensors carry scale 0.0 and zero_point 0 (as the interpreter reports them). A card the
#   bundle derived from a bare .tflite (no card beside it) has "derived": true.
#   Optional keys, host-side only (the agent ignores them; host/export/card.py EXTRA_KEYS):
#   census {ops, kind "float"|"fp16-weights"|"dynamic-range"|"integer"|"mixed",
#           op_types {OP: {count, types {"in,types->out,types": n}}}, io {input, output},
#           integer_ops, float_op_count, float_ops [{index, op, output}], q_dq_pairs,
#           dequantize_in_graph, quantize_in_graph, requantize, custom_ops [name],
#           extreme_scales [{index, op, tensor, scale}]}   (every model; the bundle adds it)
#   layers_csv "<name>.layers.csv", worst_layers [{rank, tensor, op, scale, rmse_over_scale,
#           mean_error, float_min, float_max}]   (quantize --debug for int8; int8-mixed)
#   mixed {keep_float [tensor], k, layers, agreement, target_agreement, reached, tried [[k, a]],
#           note, ranking}   (int8-mixed only)
# Manifest (bundle/MANIFEST_JSON; its type, reader and writer: manifest.Manifest):
#   schema, run_id, created (ISO 8601 UTC), testset ("testset.npz" or null),
#   models: [card + {"file": "models/<name>.tflite" (or .onnx: ONNX Runtime's rows),
#                    "reference": "reference/<arch>.npy" or null}]
# testset.npz: images uint8 N×H×W×C, labels int64 N, class_names str[K]
# reference/<arch>.npy: float32 N×K logits of the float (PyTorch) model on the test set

# The card as a type: the host builds it (export/card.py, bundle.py) and writes to_json();
# readers take from_json(). Key order in the JSON is the field order. The manifest's type is
# manifest.Manifest, beside the checks that load it (manifest.py imports this module).
CARD_INPUT_KEYS = ("shape", "dtype", "layout", "scale", "zero_point", "normalization")
CARD_OUTPUT_KEYS = ("shape", "dtype", "scale", "zero_point")
CARD_SOURCE_KEYS = ("checkpoint", "onnx", "saved_model", "data_spec", "img_size", "split_seed")
CARD_VERIFICATION_KEYS = ("max_abs_diff", "agreement", "accuracy", "n")
# converter: the route that built the model (host/export/converters; absent: onnx2tf), whose
# files are named <arch>.<converter>.<recipe> except onnx2tf's, <arch>.<recipe>.
CARD_EXTRA_KEYS = ("census", "layers_csv", "worst_layers", "mixed", "converter", "derived")


@dataclass
class ModelCard:
    name: str
    file: str
    sha256: str
    size_bytes: int
    recipe: str
    architecture: str
    input: dict                      # CARD_INPUT_KEYS
    output: dict                     # CARD_OUTPUT_KEYS
    class_names: list
    positive_class: int = 1
    source: Optional[dict] = None    # CARD_SOURCE_KEYS
    tools: dict = field(default_factory=dict)
    conversion_seconds: Optional[float] = None
    verification: Optional[dict] = None   # CARD_VERIFICATION_KEYS, or None: not verified
    extra: dict = field(default_factory=dict)   # CARD_EXTRA_KEYS that apply
    schema: str = MODEL_CARD_SCHEMA

    def to_json(self) -> dict:
        out = {"schema": self.schema}
        out.update((f.name, getattr(self, f.name)) for f in fields(self)
                   if f.name not in ("schema", "extra"))
        out.update((k, v) for k, v in self.extra.items() if k in CARD_EXTRA_KEYS)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "ModelCard":
        names = set(CARD_KEYS)
        return cls(extra=dict((k, v) for k, v in data.items() if k in CARD_EXTRA_KEYS),
                   **dict((k, v) for k, v in data.items() if k in names))


CARD_KEYS = tuple(["schema"] + [f.name for f in fields(ModelCard) if f.name not in ("schema",
                                                                                      "extra")])


# ---------------------------------------------------------------------------------------------
# The CSV files as record types: each column's name, kind, the schema version it arrived in and
# what a file written before that version means by its absence (the host fills it in when it
# reads an older results folder: schema 1 predates the compute-unit axis, every row ran on the
# CPU Interpreter; schema 2 predates the rounds). Each column's unit and meaning, for the
# documentation's CSV reference: schema_docs.py (a new column needs its line there).
# ---------------------------------------------------------------------------------------------
TEXT, INT, FLOAT, BOOL, TRISTATE = "text", "int", "float", "bool", "tristate"


class Column(object):
    __slots__ = ("name", "kind", "since", "before")

    def __init__(self, name: str, kind: str = TEXT, since: int = 1, before=None):
        self.name, self.kind, self.since, self.before = name, kind, since, before

    def __repr__(self):
        return "Column(%r, %r, since=%d)" % (self.name, self.kind, self.since)


class Record(object):
    """One CSV file: its name, its columns in order, and the columns that identify a line."""

    def __init__(self, file: str, columns, key=(), since: int = 1):
        self.file, self.columns, self.key, self.since = file, tuple(columns), tuple(key), since
        self.names = tuple(c.name for c in self.columns)
        self.by_name = dict((c.name, c) for c in self.columns)

    def of_kind(self, *kinds) -> tuple:
        return tuple(c.name for c in self.columns if c.kind in kinds)

    def missing_before(self, version: int) -> dict:
        """{column: value} for the columns a file of `version` does not have yet."""
        return dict((c.name, c.before) for c in self.columns if c.since > version)


def _columns(*groups):
    """Columns from (kind, since, before, "name name ...") groups, in order."""
    out = []
    for kind, since, before, names in groups:
        for name in names.split():
            out.append(Column(name, kind, since, before))
    return out


# The key columns: a row of results.csv is one measurement of RESULT_KEY; a model's outputs (and
# so its accuracy and predictions) depend only on OUTPUT_KEY (fp16 inside a GPU, XNNPACK or not),
# not on the thread count nor the round. Both are read as strings, as a CSV gives them back.
RESULT_KEY = ("sha256", "threads", "xnnpack", "runtime", "compute_unit", "round")
OUTPUT_KEY = ("sha256", "runtime", "xnnpack", "compute_unit")
# One configuration: a row's key without the round (the report folds rounds over it).
CONFIG_KEY = tuple(c for c in RESULT_KEY if c != "round")



RESULTS = Record("results.csv", _columns(
    (INT, 1, None, "schema_version"),
    (TEXT, 1, None, "run_id model architecture recipe sha256"),
    (FLOAT, 1, None, "file_size_mb"),
    (TEXT, 5, None, "bundle_id"),
    (INT, 1, None, "threads"), (TRISTATE, 1, None, "xnnpack"),
    (TEXT, 1, None, "runtime runtime_version"),
    (TEXT, 2, "cpu", "compute_unit"), (INT, 3, "1", "round"),
    (TEXT, 2, "cpu", "accelerator"), (TEXT, 2, "interpreter", "api"),
    (TEXT, 2, None, "accelerator_device"), (BOOL, 2, "false", "software_accelerator"),
    (TRISTATE, 2, None, "fully_accelerated"), (FLOAT, 2, None, "delegated_nodes"),
    (TEXT, 7, None, "fallback_nodes"),
    (TEXT, 1, None, "status error"),
    (FLOAT, 1, None, "load_ms first_inference_ms warmup_runs"),
    (FLOAT, 4, None, "accelerator_init_ms warm_load_ms"),
    (FLOAT, 1, None, "count mean_ms std_ms min_ms p50_ms p90_ms p95_ms p99_ms max_ms"),
    (FLOAT, 1, None, "rss_before_mb rss_after_load_mb peak_rss_mb"),
    (FLOAT, 1, None, "n_test accuracy sensitivity specificity auc tn fp fn tp agreement"),
    (FLOAT, 1, None, "temp_before_c temp_after_c"), (BOOL, 1, None, "throttled"),
    (TEXT, 1, None, "throttled_flags device_model machine cpu"), (FLOAT, 1, None, "cores"),
    (TEXT, 1, None, "governor"), (FLOAT, 1, None, "freq_mhz"),
    (TEXT, 1, None, "os python numpy"), (BOOL, 1, None, "emulated"),
    (TEXT, 1, None, "hostname started_utc"),
    (TEXT, 4, None, "power_source power_rails"), (INT, 4, None, "power_samples"),
    (FLOAT, 4, None, "power_hz power_window_s idle_power_w avg_power_w energy_mj "
                     "energy_above_idle_mj"),
), key=("model",) + RESULT_KEY)
# results.csv: status "ok" | "error"; `error` holds the failure of an error row, and on an ok row a
# note on what could not be measured (e.g. "accuracy not measured: testset.npz is missing").
# The compute unit (schema 2): compute_unit is the unit as asked for and part of the row's key
# ("cpu", "gpu", "gpu!", "npu", "delegate:LIB[:k=v;...]"); accelerator is cpu|gpu|npu|delegate;
# api is interpreter|compiled_model; accelerator_device names what ran it (the GPU adapter as
# LiteRT selected it, the delegate library, or the CPU kernels); software_accelerator is true for
# a software GPU (llvmpipe, SwiftShader, any "CPU / Software" adapter), whose timings say nothing
# about real hardware; fully_accelerated is CompiledModel.is_fully_accelerated() (empty where the
# API does not tell); delegated_nodes is how many nodes of the model a delegate took, where known.
# ONNX Runtime rows (schema 7): accelerator_device is the execution provider the unit took
# (CPUExecutionProvider; gpu: CUDAExecutionProvider or WebGpuExecutionProvider), and on a gpu row
# fully_accelerated/delegated_nodes say whether every node ran on it and how many did;
# fallback_nodes lists the nodes that ran elsewhere, each "provider:op_type:node" (";" between
# them; a ";" in a node's name is written ","), empty when none did and on cpu rows.
# round (schema 3): 1..--rounds; the plan runs that many times, models interleaved (A B C A B C),
# one row per round, so drift between rounds shows as their spread. Accuracy is measured in the
# first round a configuration runs in and copied to its other rounds and thread counts.
# Load (schema 4): accelerator_init_ms is the start-up a row pays before its model, measured in the
# same child: for the Interpreter, importing the runtime module; for CompiledModel, compiling a
# trivial model on the same accelerator (the driver's, Dawn's and the shader caches' start-up).
# load_ms is then the model's cold load (as in schema 1-3, but without that start-up on gpu/npu),
# warm_load_ms the same model loaded a second time in the same child: the cost that does not
# depend on where the model sits in the plan.
# Energy (schema 4, --power): power_source names the source read ("rapl", "ina3221", ...; empty:
# no power measured, the reason in `error`), power_rails which of its rails make up the board
# figure ("VDD_IN", "sum:VDD_CORE,..."), power_samples/power_hz the samples inside the timed
# window and the rate achieved, power_window_s that window, idle_power_w the mean over the idle
# baseline before the row, avg_power_w the mean over the window, energy_mj the energy of the
# window per inference and energy_above_idle_mj the same above idle power.
# latency_samples.csv: one line per timed invoke of an ok row (run = its index), in ms.
SAMPLES = Record("latency_samples.csv", _columns(
    (INT, 1, None, "schema_version"), (TEXT, 1, None, "run_id model sha256"),
    (INT, 1, None, "threads"), (TRISTATE, 1, None, "xnnpack"), (TEXT, 1, None, "runtime"),
    (TEXT, 2, "cpu", "compute_unit"), (INT, 3, "1", "round"),
    (INT, 1, None, "run"), (FLOAT, 1, None, "latency_ms"),
), key=RESULT_KEY)
# predictions.csv (schema 3): one line per test image for each configuration whose accuracy was
# measured (model sha256 x runtime x xnnpack x compute_unit: threads and rounds do not change
# outputs): image is the index in testset.npz, predicted the argmax class, score the softmax
# probability of positive_class (the card's). The raw material of the host's paired tests.
PREDICTIONS = Record("predictions.csv", _columns(
    (INT, 3, None, "schema_version"), (TEXT, 3, None, "run_id model sha256 runtime"),
    (TRISTATE, 3, None, "xnnpack"), (TEXT, 3, None, "compute_unit testset"),
    (INT, 3, None, "positive_class image label predicted"), (FLOAT, 3, None, "score"),
), key=OUTPUT_KEY, since=3)
# robustness.csv (schema 3): one line per configuration (as predictions.csv) x corrupted test set
# of the bundle's "robustness" entry (MedMNIST-C corruptions, written by bench-host bundle):
# accuracy etc. on that set, and agreement_fp32 = share of images whose class equals the class
# the same architecture's fp32 model gave on the same corrupted images under the same compute
# unit (empty where that fp32 row is not measured). predictions.csv carries those images too,
# testset "<corruption>-<severity>" ("clean" for testset.npz). status/error as in results.csv:
# a corrupted set missing on the device or of the wrong shape is an error line, the rest goes on.
ROBUSTNESS = Record("robustness.csv", _columns(
    (INT, 3, None, "schema_version"),
    (TEXT, 3, None, "run_id model architecture recipe sha256 runtime"),
    (TRISTATE, 3, None, "xnnpack"), (TEXT, 3, None, "compute_unit corruption"),
    (INT, 3, None, "severity"),
    (FLOAT, 3, None, "n accuracy sensitivity specificity auc agreement_fp32"),
    (TEXT, 3, None, "status error"),
), key=OUTPUT_KEY + ("corruption", "severity"), since=3)
# power_samples.csv (schema 4, --power): the raw readings of every row measured with power: phase
# "idle" (the baseline before the row), "timed" (the timed loop), a scenario's name or "soak";
# t_s is seconds from the start of the row's timed window (negative before it), rail a rail of
# the source or "board" (what power_rails adds up), watts the reading (a counter source such as
# RAPL: the mean power since the previous reading).
POWER_SAMPLES = Record("power_samples.csv", _columns(
    (INT, 4, None, "schema_version"), (TEXT, 4, None, "run_id model sha256"),
    (INT, 4, None, "threads"), (TRISTATE, 4, None, "xnnpack"), (TEXT, 4, None, "runtime"),
    (TEXT, 4, None, "compute_unit"), (INT, 4, None, "round"),
    (TEXT, 4, None, "power_source phase"), (FLOAT, 4, None, "t_s"), (TEXT, 4, None, "rail"),
    (FLOAT, 4, None, "watts"),
), key=RESULT_KEY, since=4)
# soak.csv (schema 4, --soak SECONDS): one line per interval (--soak-interval, default 10 s) of a
# row's sustained run, written as each interval ends (a killed agent keeps finished intervals and
# a re-run goes on from the last one, numbered on, its clock going on from the last t_end_s):
# t_start_s/t_end_s from the soak's start (an interval ends with the invoke that crosses it),
# count inferences, p50/p90 latency, the hottest thermal zone and cpu0's frequency at the
# interval's end, the `vcgencmd get_throttled` flags (empty off a Pi), the mean board power
# (empty without --power).
SOAK = Record("soak.csv", _columns(
    (INT, 4, None, "schema_version"), (TEXT, 4, None, "run_id model sha256"),
    (INT, 4, None, "threads"), (TRISTATE, 4, None, "xnnpack"), (TEXT, 4, None, "runtime"),
    (TEXT, 4, None, "compute_unit"), (INT, 4, None, "round"), (INT, 4, None, "interval"),
    (FLOAT, 4, None, "t_start_s t_end_s count p50_ms p90_ms temp_c freq_mhz"),
    (TEXT, 4, None, "throttled_flags"), (FLOAT, 4, None, "avg_power_w"),
), key=RESULT_KEY + ("interval",), since=4)
# scenarios.csv (schema 4): one line per scenario and stream of a row. "fps=30" (--fps): a frame
# arrives every 1/30 s for --scenario-seconds and waits while the previous one runs; latency is
# arrival to result (queueing included), a frame misses when its result comes after the next
# frame's arrival; achieved_fps = frames finished / time; frames counts every frame that arrived,
# those not started when the time was up included (unserved: missed, not in the percentiles).
# "streams=N" (--streams N): N interpreters invoke concurrently, one line per stream (stream
# 1..N), throughput_ips is the inferences per second of all streams together. Power columns as
# in results.csv over the scenario's window, energy per frame served (streams: per inference of
# all streams together).
SCENARIOS = Record("scenarios.csv", _columns(
    (INT, 4, None, "schema_version"), (TEXT, 4, None, "run_id model sha256"),
    (INT, 4, None, "threads"), (TRISTATE, 4, None, "xnnpack"), (TEXT, 4, None, "runtime"),
    (TEXT, 4, None, "compute_unit"), (INT, 4, None, "round"), (TEXT, 4, None, "scenario"),
    (INT, 4, None, "stream"),
    (FLOAT, 4, None, "seconds target_fps frames achieved_fps missed_share throughput_ips "
                     "p50_ms p90_ms p99_ms service_p50_ms"),
    (TEXT, 4, None, "power_source"), (FLOAT, 4, None, "avg_power_w energy_mj "
                                                      "energy_above_idle_mj"),
    (TEXT, 4, None, "status error"),
), key=RESULT_KEY + ("scenario", "stream"), since=4)
# frames.csv (schema 4): one line per frame of a scenario: arrival, start and end in ms from the
# scenario's start (latency = end - arrival; missed = end > arrival + 1000/fps, or no end: a frame
# still waiting when the scenario's time was up). --fps scenarios only.
FRAMES = Record("frames.csv", _columns(
    (INT, 4, None, "schema_version"), (TEXT, 4, None, "run_id model sha256"),
    (INT, 4, None, "threads"), (TRISTATE, 4, None, "xnnpack"), (TEXT, 4, None, "runtime"),
    (TEXT, 4, None, "compute_unit"), (INT, 4, None, "round"), (TEXT, 4, None, "scenario"),
    (INT, 4, None, "stream frame"), (FLOAT, 4, None, "arrival_ms start_ms end_ms"),
), key=RESULT_KEY + ("scenario", "stream"), since=4)
# op_profile.csv (schema 6, --profile-ops N): one line per node of a row's model, slowest first,
# from a profiled pass run after the row's timed loop in the same child, on a session of its own
# (profiling slows a model down: the row's own timing never includes it). node is the node's name
# in the graph the runtime optimised (fused ops are one node), op_type its operator, provider
# where it ran (an execution provider or delegate); per node the time of each of profiled_runs
# inferences (after 2 warm-ups that are not counted): median_ms, low_ms-high_ms a 95 % bootstrap
# interval of that median (over the runs), share = its median / the sum of the row's medians
# (negative ones counted as 0). resolved is false when the interval's low end is not above 0 or
# below the profiler's resolution (1 us on ONNX Runtime): the time is not told apart from 0.
# LiteRT rows (runtime litert, tflite-runtime, tensorflow; no profiler): prefix cuts. node is
# "op<k> <its output tensor's name>", op_type the builtin's name (or a custom op's), provider
# "<runtime>:xnnpack|cpu|<delegate library>|gpu|npu"; profiled_runs counts rounds, in each of
# which every prefix of the model (ops 0..k) was timed; median_ms is the fastest round of prefix
# k less that of prefix k-1 (it can be negative), the interval a bootstrap over the rounds. An
# op on constants only (done when the interpreter prepares) has profiled_runs 0, times 0 and no
# provider.
OP_PROFILE = Record("op_profile.csv", _columns(
    (INT, 6, None, "schema_version"), (TEXT, 6, None, "run_id model sha256"),
    (INT, 6, None, "threads"), (TRISTATE, 6, None, "xnnpack"), (TEXT, 6, None, "runtime"),
    (TEXT, 6, None, "compute_unit"), (INT, 6, None, "round"),
    (TEXT, 6, None, "node op_type provider"), (INT, 6, None, "profiled_runs"),
    (FLOAT, 6, None, "median_ms low_ms high_ms share"), (BOOL, 6, None, "resolved"),
), key=RESULT_KEY + ("node",), since=6)
RECORDS = (RESULTS, SAMPLES, PREDICTIONS, ROBUSTNESS, POWER_SAMPLES, SOAK, SCENARIOS, FRAMES,
           OP_PROFILE)
RESULT_COLUMNS, SAMPLE_COLUMNS = RESULTS.names, SAMPLES.names
PREDICTION_COLUMNS, ROBUSTNESS_COLUMNS = PREDICTIONS.names, ROBUSTNESS.names
# The accuracy columns of results.csv: measured once per output key and copied to the rows of
# the configuration's other thread counts and rounds.
ACCURACY_COLUMNS = ("n_test", "accuracy", "sensitivity", "specificity", "auc", "tn", "fp", "fn",
                    "tp", "agreement")

# The files of a results folder.
RESULTS_CSV = RESULTS.file
SAMPLES_CSV = SAMPLES.file
PREDICTIONS_CSV = PREDICTIONS.file
ROBUSTNESS_CSV = ROBUSTNESS.file
POWER_SAMPLES_CSV = POWER_SAMPLES.file
SOAK_CSV = SOAK.file
SCENARIOS_CSV = SCENARIOS.file
FRAMES_CSV = FRAMES.file
OP_PROFILE_CSV = OP_PROFILE.file
ENV_JSON = "env.json"
RUNTIME_LOG = "runtime.log"
# The files of a bundle.
MANIFEST_JSON = "manifest.json"
TESTSET_NPZ = "testset.npz"
AGENT_ARCHIVE = "agent.pyz"
# The agent's progress protocol: one JSON object per line on its stdout, {"event": NAME, ...}
# (guide.py lists each event's fields); the host's deploy reads them.
EVENTS = ("start", "robustness", "model_start", "soak", "skip", "row", "error", "model_done",
          "done")


def row_key(row: dict) -> tuple:
    return tuple(str(row[c]) for c in RESULT_KEY)


def output_key(row: dict) -> tuple:
    return tuple(str(row[c]) for c in OUTPUT_KEY)


def key_values(row: dict, key: tuple = RESULT_KEY) -> dict:
    """{column: value} of `key`'s columns in `row`, a column that is absent, None or empty taking
    what a file written before it meant (its results.csv Column.before: compute_unit "cpu",
    round "1"; None where nothing is implied, e.g. threads not recorded). The host keys rows
    read from older files and database rows by this, so those fallbacks are written once, here."""
    out = {}
    for name in key:
        value = row.get(name)
        out[name] = RESULTS.by_name[name].before if value is None or value == "" else value
    return out
