"""The plan: reads the bundle, orders model x compute unit x thread count x round (rounds
outermost), skips the rows OUT already holds, has runner.Agent measure the rest and writes each
row as it comes (result_store.ResultStore), with progress events on stdout."""
from __future__ import annotations

import json
import os

from . import environment as sensors
from ..common import AgentError, emit, say, write_atomic
from .runner import Agent
from ..runtimes import file_runtime, resolve_runtime
from ..manifest import Manifest, ManifestError
from ..schema import ENV_JSON, RESULT_COLUMNS, RESULTS_CSV, row_key
from .result_store import ResultStore, cell, read_csv


def private_runtime_dir() -> None:
    """Mesa and Dawn want XDG_RUNTIME_DIR, a private 0700 folder; an SSH session without PAM has
    none, and they then log errors on every model. Children inherit the one made here."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current) and os.access(current, os.W_OK):
        return
    import tempfile
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="edgebench-xdg-")


def select_models(entries: list, names: str) -> list:
    if not names:
        return entries
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = [e.get("name") for e in entries]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise AgentError("unknown model %s; the bundle has: %s"
                         % (", ".join(unknown), ", ".join(map(str, known))))
    return [e for e in entries if e.get("name") in wanted]


def tflite_runtime(requested: str, entries: list) -> tuple:
    """(name, version) of the TFLite interpreter (--runtime); models whose file fixes their
    runtime (.onnx) need none, so a device with onnxruntime alone measures them (runtime
    "none" in env.json)."""
    try:
        name, _, version = resolve_runtime(requested)
    except AgentError:
        if any(file_runtime(e.get("file")) is None for e in entries):
            raise
        return "none", None
    return name, version


def check_one_run(out: str, run_id: str) -> None:
    """One --out folder holds one run: rows of another run would be skipped as done under this
    one's id (and the host would merge two measurement sessions)."""
    rows, _ = read_csv(os.path.join(out, RESULTS_CSV), RESULT_COLUMNS)
    others = sorted(set(r.get("run_id") or "" for r in rows) - {run_id})
    if others:
        raise AgentError("%s holds rows of run %s; measure run %s into a new --out folder"
                         % (out, others[0], run_id))


def run(args) -> int:
    """The whole plan; 0 when it finished (error rows included)."""
    sensors.set_root(args.sysfs_root)
    try:
        manifest = Manifest.load(args.bundle)
    except ManifestError as exc:
        raise AgentError(str(exc)) from None
    entries = select_models(manifest.models, args.models)
    check_one_run(args.out, args.run_id or manifest.run_id)
    runtime, version = tflite_runtime(args.runtime, entries)
    os.makedirs(args.out, exist_ok=True)
    env = sensors.environment(runtime, version)
    write_atomic(os.path.join(args.out, ENV_JSON), lambda fh: json.dump(env, fh, indent=1))

    entries = fp32_first(entries)
    # runner.Agent and accuracy.TestSets read the manifest in its JSON form
    agent = Agent(args, manifest.to_json(), runtime, version, env)
    units = args.units
    if any(u["api"] == "compiled_model" for u in units):
        private_runtime_dir()
    rounds = range(1, args.rounds + 1)
    plan = [(r, e, u, t) for r in rounds for e in entries for u in units for t in args.threads]
    store = _open_store(agent, args, plan)
    _announce(agent, args, entries, len(plan))
    tally = Tally()
    # Rounds outermost: A B C A B C, so drift and a neighbour's load spread over every model
    # instead of landing on whichever was measured during it.
    steps = [(r, e) for r in rounds for e in entries]
    try:
        for index, (round_no, entry) in enumerate(steps, 1):
            name = entry.get("name")
            emit("model_start", model=name, index=index, total=len(steps), threads=args.threads,
                 units=[u["spec"] for u in units], round=round_no)
            _measure_model(agent, store, entry, round_no, tally)
            emit("model_done", model=name, index=index, total=len(steps), round=round_no)
    finally:
        store.close()
    emit("done", rows=tally.written, skipped=tally.skipped, errors=tally.errors, out=args.out)
    return 0


def fp32_first(entries: list) -> list:
    """fp32 first within each architecture (otherwise in the manifest's order), so its
    predictions on the corrupted sets exist when the other recipes' agreement_fp32 needs them."""
    first_seen = {}
    for e in entries:
        first_seen.setdefault(e.get("architecture"), len(first_seen))
    return sorted(entries, key=lambda e: (first_seen[e.get("architecture")],
                                          e.get("recipe") != "fp32"))


def _open_store(agent: Agent, args, plan: list) -> ResultStore:
    """The result files of OUT, the rows it already holds remembered (they are skipped) and a
    word on those measured with a shorter soak than this run asks for."""
    planned = set(row_key(agent.base_row(e, t, u, r)) for r, e, u, t in plan)
    store = ResultStore(args.out, planned)
    agent.store = store
    for row in store.done.values():
        agent.remember(row)
    short = agent.short_soaks(set(store.done) & planned)
    if short:
        say("--soak %g s: %d row%s measured before soaked %.1f s at most; kept as measured (a soak "
            "goes with its row's timed loop): measure into a new output folder to soak in full"
            % (args.soak, len(short), "" if len(short) == 1 else "s", max(short)))
    return store


def _announce(agent: Agent, args, entries: list, rows: int) -> None:
    """What the plan will do, before its first row: the robustness sets' cost, the power meter,
    the plan's size (said for people, and the start event for the host)."""
    units = args.units
    tests = agent.tests
    if tests.corrupted or tests.broken:
        configs = len(entries) * len(units)
        count = tests.robustness_inferences(args.robustness_images, configs)
        say("robustness: %d corrupted set(s) x %d configuration(s) = %d extra inferences%s"
            % (len(tests.corrupted), configs, count, "; %d set(s) unusable: %s" % (
                len(tests.broken), tests.broken[0]["error"]) if tests.broken else ""))
        emit("robustness", sets=len(tests.corrupted), inferences=count,
             unusable=len(tests.broken))
    if agent.meter:
        say(agent.meter.resolve())
    say("%s %s, %d model(s) x units %s x threads %s x %d round(s) -> %s" % (
        agent.runtime, agent.runtime_version, len(entries), ",".join(u["spec"] for u in units),
        args.threads, args.rounds, args.out))
    emit("start", run_id=agent.run_id, runtime=agent.runtime,
         runtime_version=agent.runtime_version, models=len(entries), rows=rows)


class Tally:
    """The rows the plan wrote, skipped (already in OUT) and saw fail, for the done event."""

    def __init__(self):
        self.written = self.skipped = self.errors = 0


def _measure_model(agent: Agent, store: ResultStore, entry: dict, round_no: int,
                   tally: Tally) -> None:
    """One model in one round: each compute unit x thread count not yet in OUT, measured and
    written as it comes."""
    name = entry.get("name")
    for unit, threads in [(u, t) for u in agent.args.units for t in agent.args.threads]:
        spec = unit["spec"]
        key = row_key(agent.base_row(entry, threads, unit, round_no))
        if key in store.done:
            tally.skipped += 1
            emit("skip", model=name, threads=threads, unit=spec, round=round_no)
            continue
        row, samples, predictions, robust, extra = agent.measure(entry, threads, unit, round_no)
        store.write(row, samples, predictions, robust, **extra)
        tally.written += 1
        if row.get("status") != "ok":
            tally.errors += 1
        _report_row(name, threads, spec, round_no, row)


def _report_row(name: str, threads: int, spec: str, round_no: int, row: dict) -> None:
    """A measured row said for people and as events (error, then row) for the host."""
    if row.get("status") == "ok":
        say("%s x%d on %s: p50 %.3f ms, peak %.1f MB%s" % (
            name, threads, spec, row["p50_ms"],
            row.get("peak_rss_mb") or float("nan"),
            ", accuracy %s" % cell(row.get("accuracy"))
            if row.get("accuracy") not in (None, "") else ""))
    else:
        say("%s x%d on %s: error: %s" % (name, threads, spec, row.get("error")))
        emit("error", model=name, threads=threads, unit=spec, message=row.get("error"))
    emit("row", model=name, threads=threads, unit=spec, round=round_no,
         status=row.get("status"),
         p50_ms=row.get("p50_ms"), accuracy=row.get("accuracy"),
         peak_rss_mb=row.get("peak_rss_mb"))
