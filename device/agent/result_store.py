"""Results on disk: results.csv, latency_samples.csv, predictions.csv, robustness.csv, and where
the options ask for them power_samples.csv, scenarios.csv, frames.csv, soak.csv and
op_profile.csv, in OUT, appended row by row (flushed and fsynced) and resumable. Rows are dicts written by column name."""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from ..common import AgentError, write_atomic
from ..schema import (FRAMES, OP_PROFILE, POWER_SAMPLES, PREDICTION_COLUMNS, PREDICTIONS_CSV, RESULT_COLUMNS,
                      RESULTS_CSV, RESULTS_SCHEMA_VERSION, ROBUSTNESS_COLUMNS, ROBUSTNESS_CSV,
                      SAMPLE_COLUMNS, SAMPLES_CSV, SCENARIOS, SOAK, output_key, row_key)


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else repr(round(float(value), 6))
    return str(value)


def read_csv(path: str, columns) -> tuple:
    """(rows, whole) of a CSV this agent wrote. A kill can cut the last line short: only lines
    that end in a newline count, and whole is False when a cut tail was found."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return [], True
    with open(path, newline="") as fh:
        text = fh.read()
    whole = text.endswith("\n")
    reader = csv.reader(io.StringIO(text[:text.rfind("\n") + 1]))
    header = next(reader, None)
    if tuple(header or ()) != tuple(columns):
        raise AgentError("%s was written with another schema; use a new --out folder" % path)
    return [dict(zip(columns, r)) for r in reader if len(r) == len(columns)], whole


def rewrite_csv(path: str, columns, rows) -> None:
    def write(fh):
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([[r[c] for c in columns] for r in rows])
    write_atomic(path, write)


def prediction_lines(head: dict, predictions) -> list:
    """predictions.csv rows by name: `head` (the configuration's key fields) + each
    metrics.per_image tuple."""
    head = dict(head, schema_version=RESULTS_SCHEMA_VERSION)
    return [dict(head, testset=t, positive_class=positive, image=i, label=label, predicted=pred,
                 score=score) for t, positive, i, label, pred, score in predictions]


def write_rows(path: str, columns, rows) -> None:
    """A whole CSV of dict rows, by column name (a missing key is an empty cell), atomically."""
    def write(fh):
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([[cell(r.get(c)) for c in columns] for r in rows])
    write_atomic(path, write)


class ResultStore:
    """The files of OUT. On open, keeps ok rows (they are skipped on this run), drops error rows
    that this run retries, and samples, predictions, scenarios and frames that have no ok row.
    soak.csv keeps every finished interval, also of rows not written yet: their soak goes on
    from there (soak_progress) when the row is measured again."""

    def __init__(self, out: str, planned_keys) -> None:
        self.results_path = os.path.join(out, RESULTS_CSV)
        self.samples_path = os.path.join(out, SAMPLES_CSV)
        self.predictions_path = os.path.join(out, PREDICTIONS_CSV)
        rows, rows_whole = read_csv(self.results_path, RESULT_COLUMNS)
        kept = [r for r in rows if r["status"] == "ok" or row_key(r) not in planned_keys]
        self.done = {row_key(r): r for r in kept if r["status"] == "ok"}
        measured = set(output_key(r) for r in self.done.values() if r["accuracy"] != "")
        # Rewritten (atomically) only when something goes: a retried error row, orphans, or a
        # line cut short by a kill, which the next append would otherwise run into.
        if len(kept) != len(rows) or not rows_whole:
            rewrite_csv(self.results_path, RESULT_COLUMNS, kept)
        self._prune(self.samples_path, SAMPLE_COLUMNS, lambda r: row_key(r) in self.done)
        self.power_path = os.path.join(out, POWER_SAMPLES.file)
        self._prune(self.power_path, POWER_SAMPLES.names, lambda r: row_key(r) in self.done)
        kept_predictions = self._prune(self.predictions_path, PREDICTION_COLUMNS,
                                       lambda r: output_key(r) in measured)
        self.robustness_path = os.path.join(out, ROBUSTNESS_CSV)
        self._prune(self.robustness_path, ROBUSTNESS_COLUMNS, lambda r: output_key(r) in measured)
        # (output key, test set) -> predicted class per image: fp32's, for agreement_fp32
        self.predicted = {}
        for r in kept_predictions:
            self.predicted.setdefault((output_key(r), r["testset"]), {})[int(r["image"])] = \
                int(r["predicted"])
        done = lambda r: row_key(r) in self.done  # noqa: E731
        self.scenarios_path = os.path.join(out, SCENARIOS.file)
        self.frames_path = os.path.join(out, FRAMES.file)
        self._prune(self.scenarios_path, SCENARIOS.names, done)
        self._prune(self.frames_path, FRAMES.names, done)
        # a row's profile lines are written before it: lines without an ok row are a kill's
        # leftovers, measured again with their row
        self.op_profile_path = os.path.join(out, OP_PROFILE.file)
        self._prune(self.op_profile_path, OP_PROFILE.names, done)
        self.soak_path = os.path.join(out, SOAK.file)
        # row key -> (last interval, its t_end_s): where an interrupted soak goes on
        self.soak_progress = {}
        for r in self._prune(self.soak_path, SOAK.names, lambda r: True):
            last = self.soak_progress.get(row_key(r), (0, 0.0))
            if int(r["interval"]) > last[0]:
                self.soak_progress[row_key(r)] = (int(r["interval"]), float(r["t_end_s"]))
        self.results = self._open(self.results_path, RESULT_COLUMNS)
        self.samples = self._open(self.samples_path, SAMPLE_COLUMNS)
        self.predictions = self._open(self.predictions_path, PREDICTION_COLUMNS)
        self.robustness = self._open(self.robustness_path, ROBUSTNESS_COLUMNS)
        # The optional files are opened by their first line, so a run without --power, --fps,
        # --streams, --soak or --profile-ops leaves none of them behind.
        self.optional = {}

    @staticmethod
    def _prune(path: str, columns, keep) -> list:
        lines, whole = read_csv(path, columns)
        kept = [r for r in lines if keep(r)]
        if len(kept) != len(lines) or not whole:
            rewrite_csv(path, columns, kept)
        return kept

    @staticmethod
    def _open(path: str, columns):
        fresh = not os.path.isfile(path) or os.path.getsize(path) == 0
        fh = open(path, "a", newline="")
        if fresh:
            csv.writer(fh).writerow(columns)
            fh.flush()
        return fh

    def _append(self, fh, columns, rows) -> None:
        """Rows (dicts) in the file's column order, by name: a missing key is an empty cell."""
        csv.writer(fh).writerows([[cell(r.get(c)) for c in columns] for r in rows])
        fh.flush()
        os.fsync(fh.fileno())

    def _append_optional(self, record, path: str, lines) -> None:
        if record.file not in self.optional:
            self.optional[record.file] = self._open(path, record.names)
        self._append(self.optional[record.file], record.names, lines)

    def write_soak(self, line: dict) -> None:
        """One soak.csv line, on disk (fsynced) before the next interval begins."""
        self._append_optional(SOAK, self.soak_path,
                              [dict(line, schema_version=RESULTS_SCHEMA_VERSION)])
        self.soak_progress[row_key(line)] = (int(line["interval"]), float(line["t_end_s"]))

    def write(self, row: dict, samples_ns, predictions=None, robustness=None, scenarios=None,
              frames=None, power=None, op_profile=None) -> None:
        """One results.csv row with its raw material: latency samples (ns), predictions.csv lines
        (metrics.per_image tuples), robustness.csv rows, scenarios.csv, frames.csv and
        op_profile.csv lines and power_samples.csv lines (dicts with power_source, phase, t_s,
        rail, watts)."""
        # Predictions, robustness and samples first: a kill before the row leaves orphans
        # (dropped on the next run), never a row whose raw material is missing.
        head = dict(row, schema_version=RESULTS_SCHEMA_VERSION)
        if predictions:
            self._append(self.predictions, PREDICTION_COLUMNS, prediction_lines(head, predictions))
            for t, _, i, _, pred, _ in predictions:
                self.predicted.setdefault((output_key(row), t), {})[i] = pred
        if robustness:
            self._append(self.robustness, ROBUSTNESS_COLUMNS, robustness)
        for lines, record, path in ((scenarios, SCENARIOS, self.scenarios_path),
                                    (frames, FRAMES, self.frames_path),
                                    (op_profile, OP_PROFILE, self.op_profile_path)):
            if lines:
                self._append_optional(record, path, [dict(r, schema_version=RESULTS_SCHEMA_VERSION)
                                                     for r in lines])
        if samples_ns:
            self._append(self.samples, SAMPLE_COLUMNS,
                         [dict(head, run=i, latency_ms=round(ns / 1e6, 6))
                          for i, ns in enumerate(samples_ns)])
        if power:
            self._append_optional(POWER_SAMPLES, self.power_path,
                                  [dict(head, **p) for p in power])
        self._append(self.results, RESULT_COLUMNS, [row])

    def close(self) -> None:
        for fh in [self.results, self.samples, self.predictions, self.robustness] + list(
                self.optional.values()):
            fh.close()

