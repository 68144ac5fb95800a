"""The parent's rows: for one model x compute unit x thread count x round, runs one child
(timing.run_child) with the power meter around it, and turns what it sends into the row, its
samples and its optional lines (plan.py orders the rows and writes them)."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from . import environment as sensors
from .accuracy import TestSets
from ..common import AgentError, emit, say, sha256_file, utc_now, write_atomic
from ..metrics import accuracy_fields, latency_stats, per_image
from ..power import POWER_COLUMNS, Meter
from ..runtimes import BY_NAME, file_runtime, import_runtime, installed_version
from ..schema import (ACCURACY_COLUMNS, RESULT_KEY, RESULTS_SCHEMA_VERSION, RUNTIME_LOG,
                      output_key, row_key)
from .result_store import ResultStore, cell
from .timing import CHILD_TIMEOUT_S, run_child

COOLDOWN_POLL_S = 2.0
# Copied from the environment into every row.
ENV_COLUMNS = ("device_model", "machine", "cpu", "cores", "os", "python", "numpy", "emulated",
               "hostname")
# The columns a scenarios.csv, frames.csv, soak.csv or op_profile.csv line takes from its row.
SCENARIO_HEAD = ("run_id", "model", "sha256") + RESULT_KEY
# What a child's result hands on to the row.
# runtime_version: what the child imported (ONNX Runtime's, which the parent never imports).
RESULT_FIELDS = ("status", "error", "runtime_version", "accelerator_init_ms", "load_ms",
                 "warm_load_ms", "first_inference_ms", "warmup_runs",
                 "rss_before_mb", "rss_after_load_mb", "peak_rss_mb", "accelerator_device",
                 "software_accelerator", "fully_accelerated", "delegated_nodes",
                 "fallback_nodes")


def fp32_slot(entry: dict) -> tuple:
    """Whose fp32 a recipe is compared with: its architecture's, on its file's runtime."""
    return entry.get("architecture"), (file_runtime(entry.get("file")) or {}).get("name")


def unit_refused(row: dict):
    """Why a row's runtime, fixed by its model's file, cannot run on the row's compute unit
    (ONNX Runtime: cpu and gpu, gpu! included), or None. Said without starting a child."""
    spec = BY_NAME.get(row["runtime"])
    if spec is None or row["accelerator"] in spec["units"]:
        return None
    return ("%s rows run on %s here, not on %s: %s" % (
        spec["name"], ", ".join(spec["units"]), row["compute_unit"], spec["elsewhere"]))


class Agent:
    """The parent side: turns (model, thread count, unit, round) into rows, one child each."""

    def __init__(self, args, manifest: dict, runtime: str, runtime_version: str, env: dict):
        self.args, self.manifest, self.env = args, manifest, env
        # the measurement run's id (deploy gives each deploy its own); the bundle's is bundle_id
        self.run_id = getattr(args, "run_id", None) or manifest.get("run_id")
        self.runtime, self.runtime_version = runtime, runtime_version
        self.litert_version = self._litert_version(runtime, runtime_version)
        self.bundle = args.bundle
        self.tests = TestSets(args.bundle, manifest)
        self.store = None   # the ResultStore, once open: fp32's predictions for agreement_fp32
        # (architecture, file runtime) -> sha256 of its fp32 model (agreement_fp32): an ORT
        # recipe is compared with ORT's fp32, a LiteRT one with LiteRT's
        self.fp32_sha = {}
        for e in manifest.get("models") or []:
            if e.get("recipe") == "fp32":
                self.fp32_sha.setdefault(fp32_slot(e), e.get("sha256"))
        self.file_runtime_versions = {}  # name -> version (metadata; the parent never imports)
        self.accuracy_cache = {}
        # --power: the Meter reads the source from this (parent) process around each row's child.
        power = getattr(args, "power", "none") or "none"
        self.meter = None if power == "none" else Meter(power, args.power_hz,
                                                        args.power_idle_seconds)

    @staticmethod
    def _litert_version(runtime: str, runtime_version: str):
        """CompiledModel rows always run on ai-edge-litert, whatever --runtime picked for cpu."""
        if runtime == "litert":
            return runtime_version
        try:
            return import_runtime("litert")[1]
        except Exception:
            return None

    def row_runtime(self, entry: dict, unit: dict) -> tuple:
        """(runtime, its version, xnnpack, the unit as the row's child runs it) of a row: a
        model whose file fixes its runtime (.onnx: ONNX Runtime, its own API, xnnpack not
        applicable: blank) runs on it; otherwise CompiledModel units on LiteRT and the rest on
        the --runtime interpreter."""
        fixed = file_runtime(entry.get("file"))
        if fixed:
            name = fixed["name"]
            if name not in self.file_runtime_versions:
                self.file_runtime_versions[name] = installed_version(name)
            return (name, self.file_runtime_versions[name], "", dict(unit, api=fixed["api"]))
        if unit["api"] == "compiled_model":
            return "litert", self.litert_version, self.args.xnnpack, unit
        return self.runtime, self.runtime_version, self.args.xnnpack, unit

    def base_row(self, entry: dict, threads: int, unit: dict, round_no: int) -> dict:
        row = dict((k, self.env.get(k)) for k in ENV_COLUMNS)
        runtime, version, xnnpack, unit = self.row_runtime(entry, unit)
        row.update(schema_version=RESULTS_SCHEMA_VERSION, run_id=self.run_id,
                   bundle_id=self.manifest.get("run_id"),
                   model=entry.get("name"), architecture=entry.get("architecture"),
                   recipe=entry.get("recipe"), sha256=entry.get("sha256"), threads=threads,
                   xnnpack=xnnpack, runtime=runtime, runtime_version=version,
                   compute_unit=unit["spec"], round=round_no, accelerator=unit["accelerator"],
                   api=unit["api"])
        return row

    def _window_power(self, window, count: int, phase: str) -> dict:
        """The power columns (plus power_error: why they are empty) of one window of the current
        row, [t0_ns, t1_ns] in time.monotonic_ns, asked while the child still runs (a soak
        interval, a scenario); `phase` labels its readings in power_samples.csv. {} without
        --power or without a window (a failed scenario)."""
        if self.meter is None or not window:
            return {}
        return self.meter.columns(int(window[0]), int(window[1]), count, phase)

    def measure(self, entry: dict, threads: int, unit: dict, round_no: int) -> tuple:
        """One row, its samples, (when its accuracy was measured now) its predictions and
        robustness rows, and its scenario lines, frames, power readings and op profile lines
        ({"scenarios", "frames", "power", "op_profile"}, for store.write), for one model at one
        thread count on one compute unit in one round. Soak intervals are written as they
        arrive."""
        row = self.base_row(entry, threads, unit, round_no)
        extra = {"scenarios": [], "frames": [], "power": []}
        path = os.path.join(self.bundle, entry.get("file", ""))
        self.cooldown()
        row.update(started_utc=utc_now(), governor=sensors.governor(),
                   freq_mhz=sensors.freq_mhz(), temp_before_c=sensors.soc_temp_c())
        flags_before = sensors.throttled_flags()
        if not os.path.isfile(path):
            result = {"status": "error", "error": "model file missing: %s" % entry.get("file")}
        else:
            row["file_size_mb"] = os.path.getsize(path) / 2.0 ** 20
            digest = sha256_file(path)
            refused = unit_refused(row)
            if entry.get("sha256") and digest != entry["sha256"]:
                result = {"status": "error", "error": "sha256 of %s is %s, the manifest says %s"
                          % (entry["file"], digest[:12], entry["sha256"][:12])}
            elif refused:
                result = {"status": "error", "error": refused}
            else:
                result = self._run_model(entry, path, row, unit,
                                         self._on_message(row, extra))
        row["temp_after_c"] = sensors.soc_temp_c()
        flags = sensors.throttled_flags()
        if flags is not None:
            row["throttled"] = bool((flags | (flags_before or 0)) & 0xF)
            row["throttled_flags"] = hex(flags)
        for key in RESULT_FIELDS:
            if key in result:
                row[key] = result[key]
        samples = result.get("samples_ns") or []
        if result.get("status") == "ok" and samples:
            row.update(latency_stats(samples))
        if result.get("status") != "ok":
            return row, [], None, None, {}
        power = result.get("power") or {}
        row.update((c, power.get(c)) for c in POWER_COLUMNS)
        notes = [result.get("error")] + (result.get("power_notes") or [])
        row["error"] = "; ".join(n for n in notes if n) or None
        extra["power"] = [dict(power_source=row["power_source"] or self.meter.chosen,
                               phase=phase, t_s=(t - result["timed_window_ns"][0]) / 1e9,
                               rail=rail, watts=watts)
                          for phase, t, rail, watts in result.get("power_lines") or []]
        row.update(result.get("accuracy_fields") or {})
        head = dict((c, row.get(c)) for c in SCENARIO_HEAD)
        extra["op_profile"] = [dict(head, **line) for line in result.get("op_profile") or []]
        return row, samples, result.get("predictions"), result.get("robustness_rows"), extra

    def _on_message(self, row: dict, extra: dict):
        """The child's progress lines (timing.py's protocol) for this row: soak intervals go to
        soak.csv at once, and out as "soak" events (a soak is minutes of silence otherwise);
        scenario lines and frames wait in `extra` for the row."""
        head = dict((c, row.get(c)) for c in SCENARIO_HEAD)

        def on_message(message: dict) -> None:
            kind = message.get("type")
            if kind == "soak":
                line = dict(head, **dict((k, v) for k, v in message.items()
                                         if k not in ("type", "window")))
                line["avg_power_w"] = self._window_power(message.get("window"),
                                                         message.get("count") or 0, "soak"
                                                         ).get("avg_power_w")
                self.store.write_soak(line)
                emit("soak", model=row.get("model"), threads=row.get("threads"),
                     unit=row.get("compute_unit"), round=row.get("round"),
                     interval=line.get("interval"), t_end_s=line.get("t_end_s"),
                     soak_s=float(self.args.soak), p50_ms=line.get("p50_ms"),
                     temp_c=line.get("temp_c"), avg_power_w=line["avg_power_w"])
            elif kind == "scenario":
                name = message["scenario"]
                power = self._window_power(message.get("window"), message.get("count") or 0,
                                           name)
                for line in message.get("lines") or []:
                    # power_error: why the energy of an ok line is empty, as its note
                    out = dict(head, scenario=name, status="ok")
                    out.update((k, v) for k, v in power.items() if k != "power_error")
                    out.update((k, v) for k, v in line.items() if k != "error")
                    # the line's own note or error, then why its energy is empty
                    out["error"] = "; ".join(n for n in (line.get("error"),
                                                         power.get("power_error")) if n) or None
                    extra["scenarios"].append(out)
                for frame, arrival, start, end in message.get("frames") or []:
                    extra["frames"].append(dict(head, scenario=name, stream=1, frame=frame,
                                                arrival_ms=arrival, start_ms=start, end_ms=end))
        return on_message

    def _soak_job(self, key: tuple) -> dict:
        """The soak part of a row's job: only what an interrupted soak of this row left to do."""
        total = float(self.args.soak or 0.0)
        if total <= 0:
            return {}
        last, offset = self.store.soak_progress.get(key, (0, 0.0))
        left = total - offset
        if last:
            say("soak of this row resumes after interval %d (%.1f s of %.1f s done)"
                % (last, min(offset, total), total))
        return {"soak": left if left > 1e-6 else 0.0, "soak_interval": self.args.soak_interval,
                "soak_first_interval": last + 1, "soak_offset_s": offset}

    def short_soaks(self, done_keys) -> list:
        """The seconds soaked by each row measured before that soaked less than this run's
        --soak asks (0 for none): those rows are kept as they are."""
        total = float(self.args.soak or 0.0)
        soaked = [self.store.soak_progress.get(key, (0, 0.0))[1] for key in done_keys]
        return [s for s in soaked if s + 1e-6 < total]

    def _run_model(self, entry: dict, path: str, row: dict, unit: dict,
                   on_message=None) -> dict:
        """The child's result for `row` (base_row's fields) on `unit`, its accuracy scored now or
        taken from its configuration's (output key's) cache."""
        cache_key = output_key(row)
        block = self.tests.block(entry)
        need_accuracy = block is None and cache_key not in self.accuracy_cache
        job = self._child_job(entry, path, row, unit, need_accuracy)
        job.update(self._soak_job(row_key(row)))
        title = "%s threads=%d unit=%s" % (entry.get("name"), row["threads"], unit["spec"])
        result = self._run_child_metered(job, title, on_message)
        if result.get("status") != "ok":
            return result
        # An ok row's `error` holds its notes: what could not be measured, and how.
        notes = [n for n in (result.get("error"), result.pop("note", None), block) if n]
        if notes:
            result["error"] = "; ".join(notes)
        if need_accuracy and not block:
            self._score(result, entry, row, cache_key)
        result["accuracy_fields"] = self.accuracy_cache.get(cache_key)
        return result

    def _child_job(self, entry: dict, path: str, row: dict, unit: dict,
                   need_accuracy: bool) -> dict:
        """What the row's child is asked to do (timing.py reads it), the soak aside."""
        args, tests = self.args, self.tests
        runtime, version, xnnpack, unit = self.row_runtime(entry, unit)
        if unit["api"] == "compiled_model":
            # CompiledModel is LiteRT's own; the job names the interpreter this device has, for
            # the message that says what to install when LiteRT is missing or too old.
            runtime, version = self.runtime, self.runtime_version
        return {"path": path, "runtime": runtime, "runtime_version": version,
                "threads": row["threads"],
                "xnnpack": xnnpack == "on", "warmup": args.warmup, "min_runs": args.min_runs,
                "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
                "input": entry.get("input") or {}, "output": entry.get("output") or {},
                "testset": tests.path, "accuracy": need_accuracy, "unit": unit,
                "robustness": tests.corrupted if need_accuracy else [],
                "robustness_images": args.robustness_images or None,
                "sysfs_root": args.sysfs_root, "fps": getattr(args, "fps_rates", None) or [],
                "streams": args.streams, "scenario_seconds": args.scenario_seconds,
                "profile_ops": getattr(args, "profile_ops", 0) or 0}

    def _run_child_metered(self, job: dict, title: str, on_message) -> dict:
        """The child's result, with the power meter (--power) around it: its columns, notes and
        samples added to the result."""
        args, unit = self.args, job["unit"]
        # The soak and the scenarios run in the child too: its time limit grows by theirs.
        timeout = CHILD_TIMEOUT_S + float(job.get("soak") or 0.0) + args.scenario_seconds * (
            len(job["fps"]) + (1 if args.streams else 0))
        # The sampler (--power) runs from the idle baseline before the child to the child's end,
        # so the timed loop, the scenarios and the soak each get their own window's energy.
        power = self.meter.begin_row() if self.meter else {}
        if power.get("error"):
            return {"status": "error", "error": power["error"]}
        if self.meter:
            job["min_seconds"] = self.meter.min_seconds(args.min_seconds, args.max_seconds)
        result = {"status": "error", "error": "interrupted"}
        try:
            result = run_child(job, os.path.join(args.out, RUNTIME_LOG), title, on_message,
                               timeout)
            result["power_notes"] = [power["note"]] if power.get("note") else []
            if self.meter:
                ok = result.get("status") == "ok"
                cols, notes = self.meter.timed(result.get("timed_window_ns") if ok else None,
                                               len(result.get("samples_ns") or []))
                result.update(power=cols)
                result["power_notes"] += notes
        finally:  # the sampler stops whatever happened to the child
            if self.meter:
                result["power_lines"] = self.meter.end_row()
        if unit["delegate"] and "child killed by signal" in (result.get("error") or ""):
            # also on an ok row whose child died after its timed loop (in a scenario or soak)
            result["error"] += " (in delegate %s)" % unit["delegate"]["library"]
        return result

    def _score(self, result: dict, entry: dict, row: dict, cache_key: tuple) -> None:
        """Accuracy from the child's logits (cached for the model's other rows), its per-image
        predictions and its robustness rows, into result."""
        tests = self.tests
        reference = None
        ref_name = entry.get("reference")
        if ref_name and os.path.isfile(os.path.join(self.bundle, ref_name)):
            reference = np.load(os.path.join(self.bundle, ref_name))
        positive = int(entry.get("positive_class", 1))
        logits = result.pop("logits")
        self.accuracy_cache[cache_key] = accuracy_fields(logits, tests.labels, reference,
                                                         positive)
        result["predictions"] = per_image(logits, tests.labels, positive)
        result["robustness_rows"] = self._robustness_rows(
            entry, row, result.pop("robustness_logits", {}), result["predictions"])

    def _robustness_rows(self, entry: dict, row: dict, corrupted: dict, predictions: list):
        base = {"schema_version": RESULTS_SCHEMA_VERSION, "run_id": self.run_id,
                "model": entry.get("name"), "architecture": entry.get("architecture"),
                "recipe": entry.get("recipe"), "sha256": entry.get("sha256"),
                "runtime": row["runtime"], "xnnpack": row["xnnpack"],
                "compute_unit": row["compute_unit"]}
        fp32 = output_key(dict(base, sha256=self.fp32_sha.get(fp32_slot(entry))))
        return self.tests.robustness_rows(
            base, int(entry.get("positive_class", 1)), corrupted, predictions,
            lambda testset: self.store.predicted.get((fp32, testset)))

    def cooldown(self) -> None:
        limit = self.args.cooldown_temp
        if limit is None:
            return
        temp, waited = sensors.soc_temp_c(), 0.0
        if temp is None:
            say("no temperature sensor: --cooldown-temp has nothing to wait on")
            return
        while temp is not None and temp >= limit and waited < self.args.cooldown_timeout:
            if waited == 0:
                say("SoC at %.1f C; waiting (at most %.0f s) to cool below %.1f C"
                    % (temp, self.args.cooldown_timeout, limit))
            time.sleep(COOLDOWN_POLL_S)
            waited += COOLDOWN_POLL_S
            temp = sensors.soc_temp_c()

    def remember(self, row: dict) -> None:
        """An ok row from an earlier run lends its accuracy to this run's other thread counts and
        rounds (its predictions are in predictions.csv already)."""
        if row.get("accuracy") not in (None, ""):
            self.accuracy_cache.setdefault(output_key(row),
                                           dict((c, row[c]) for c in ACCURACY_COLUMNS))
