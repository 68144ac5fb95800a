"""Deploy a bundle to one or many targets: preflight, lock, content-addressed upload, run the agent
with live progress, pull the CSVs home. One device failing never stops the others.

    outcomes = deploy(bundle_dir, [parse_target("pi@192.168.1.20")], "results",
                      AgentOptions(threads="1,4"))

Every deploy is a measurement run of its own (host/run_record.py: a new id, or the unfinished run
it resumes); its results land in `<results_dir>/<run-id>/<target-name>/`. On the device
everything lives under the remote dir (default ~/.edgebench): `store/<sha256>` (content),
`runs/<run-id>-<content>/bundle` (hard links), `runs/<run-id>-<content>/out` (the agent's CSVs,
which a resumed run finds again). <content> is a digest of the bundle's files.

A dropped link (reset, EOF, or silence past the lease timeout) is a LinkDropped whose message says
what was being done and how far it got; the attempt is retried with back-off and resumes: files
already committed stay, the file in flight continues from its partial (targets/transfer.py), the
cut attempt's lease is taken over (targets/lock.py) and the agent skips rows already measured."""
from __future__ import annotations

import concurrent.futures
import csv
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from edgebench.device.schema import AGENT_ARCHIVE
from edgebench.host import liblog
from edgebench.host.deploy_summary import exit_words, summary
from edgebench.host.doctor import preflight
from edgebench.host.errors import UserError
from edgebench.host.files import atomic_path
from edgebench.host.bundle_reader import Bundle, load_bundle
from edgebench.host.run_record import RunRecord, choose_run
from edgebench.host.targets import (
    ConnectOptions, LinkDropped, TargetSpec, open_target, parse_target,
)
from edgebench.host.targets.base import Target, dropped_while
from edgebench.host.targets.lock import DEFAULT_LEASE_TIMEOUT_S, DeviceLock, new_owner
from edgebench.host.targets.progress import TargetProgress
from edgebench.host.targets.transfer import (
    TransferStats, safe_name, sync,
)

DEFAULT_REMOTE_DIR = "~/.edgebench"
DEFAULT_PYTHON = "python3"
PULLED_SUFFIXES = (".csv", ".json", ".log")
DEFAULT_RETRIES = 3
MAX_BACKOFF_S = 30.0
# Attempts that moved the deploy forward (bytes delivered, rows measured) do not use up retries,
# so a link that drops every 100 MB still delivers a 400 MB bundle; this caps them all the same.
MAX_ATTEMPTS = 50
_AGENT_LOG = logging.getLogger("edgebench.agent")  # into host.log (host/liblog.py)
# edgebench's own account of each dropped link: paramiko logs a reset only when its reader thread
# is the one that meets it, so without this line host.log may not say why a reconnect happened
_LOG = logging.getLogger("edgebench.deploy")


@dataclass(frozen=True)
class DeployOptions:
    """How one deploy reaches, runs and retries on every target; built once, passed down whole."""
    agent: object = ()             # AgentOptions (edgebench.device.options), or the agent's argv
    options: ConnectOptions = field(default_factory=ConnectOptions)
    remote_python: Optional[str] = None
    remote_dir: Optional[str] = None
    retries: int = DEFAULT_RETRIES
    backoff_s: float = 2.0
    progress: bool = True
    on_event: Optional[Callable[[str, dict], None]] = None
    agent_timeout_s: Optional[float] = None
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S

    def agent_argv(self) -> list:
        to_argv = getattr(self.agent, "to_argv", None)
        return to_argv() if to_argv else list(self.agent)


@dataclass
class DeployOutcome:
    target: str
    ok: bool
    error: Optional[str] = None
    results: Optional[Path] = None   # local folder holding the pulled CSVs
    rows: int = 0                    # rows in results.csv (all models × thread counts)
    models_done: list = field(default_factory=list)
    transfer: TransferStats = field(default_factory=TransferStats)
    attempts: int = 0
    seconds: float = 0.0
    stale_lock: Optional[dict] = None   # details of a dead run whose lock was recovered
    drops: list = field(default_factory=list)   # the message of every dropped link, in order
    notes: list = field(default_factory=list)   # locks recovered, orphaned agents stopped, ...
    run_id: Optional[str] = None     # the measurement run (host/run_record.py)
    run_note: Optional[str] = None   # how the run was chosen: resumed, or a new one and why


def python_for(spec: TargetSpec, remote_python: Optional[str] = None) -> str:
    """The device's interpreter: the inventory's, else --remote-python, else python3 (on the
    local target: this very interpreter, which has the host's LiteRT)."""
    if spec.python or remote_python:
        return spec.python or remote_python
    return sys.executable if spec.kind == "local" else DEFAULT_PYTHON


def target_dirname(spec) -> str:
    """A folder name for a target's results (a TargetSpec's or a name's): anything odd made '_'."""
    name = spec if isinstance(spec, str) else spec.name
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name).strip("._") or "target"


def deploy(bundle_dir, targets: Sequence, results_dir="results", agent=(), *,
           settings: Optional[DeployOptions] = None, run_id: Optional[str] = None,
           new_run: bool = False, resume_finished: bool = False, fork: bool = False,
           run: Optional[RunRecord] = None, **fields) -> list:
    """Deploy to every target concurrently; returns one DeployOutcome per target, in order.
    `agent` is an AgentOptions (or the agent's argv); `settings` a DeployOptions, or its fields
    as keywords (options, remote_python, remote_dir, retries, backoff_s, progress, on_event,
    agent_timeout_s, lease_timeout_s).

    targets are TargetSpecs or --target strings ("local", "pi@host:22", an ssh config alias).
    A target's own `python` / `remote_dir` (from an inventory) beat remote_python / remote_dir.
    on_event(target_name, event) receives every JSON event the agent prints. A dropped link is
    retried (backoff_s, doubling) up to `retries` times in a row without progress, and resumed;
    lease_timeout_s: a device lock whose run has not heartbeated for this long is taken over.
    run_id, new_run, resume_finished, fork: which run this is (host/run_record.py), or `run` one
    already chosen (a labgrid fleet's places deploy one by one into one run); every outcome
    carries its run_id, and the results land in results_dir/<run_id>/<target>/."""
    bundle = load_bundle(bundle_dir)
    targets = [parse_target(t) if isinstance(t, str) else t for t in targets]
    names = [target_dirname(s) for s in targets]
    if len(set(names)) != len(names):
        raise UserError("two targets share a name; give fleet devices distinct names")
    if fields.get("options") is None:
        fields.pop("options", None)
    settings = settings or DeployOptions(agent=agent, **fields)
    record = run or choose_run(results_dir, bundle, names, settings.agent_argv(), run_id,
                               new_run, resume_finished, fork)
    results_root = record.folder
    with liblog.to_file(results_root / "host.log"), \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        if record.note and run is None:
            _LOG.warning("%s", record.note)
            if settings.progress:
                print(f"deploy: {record.note}", file=sys.stderr)
        futures = [pool.submit(_deploy_one, spec, i, bundle, results_root / names[i], settings,
                               record) for i, spec in enumerate(targets)]
        outcomes = [f.result() for f in futures]
    for o, name in zip(outcomes, names):
        o.run_id, o.run_note = record.run_id, record.note
        record.mark(name, "finished" if o.ok else "failed")
    return outcomes


def _deploy_one(spec, position, bundle, results, settings: DeployOptions, record):
    outcome = DeployOutcome(target=spec.name, ok=False)
    start = time.monotonic()
    bar = TargetProgress(spec.name, position, enabled=settings.progress)
    run = _Run(owner=new_owner(), lease_timeout_s=settings.lease_timeout_s,
               run_id=record.run_id)
    retries, backoff_s = settings.retries, settings.backoff_s
    idle = 0        # dropped attempts in a row that moved nothing forward
    try:
        while True:
            outcome.attempts += 1
            attempt = TransferStats()
            rows_before = run.rows
            try:
                with open_target(spec, settings.options) as target:
                    _attempt(target, spec, bundle, results, settings, bar, outcome, run, attempt)
                outcome.transfer.add(attempt)
                break
            except LinkDropped as exc:
                outcome.transfer.add(attempt)
                outcome.error = str(exc)
                outcome.drops.append(str(exc))
                moved = attempt.bytes_sent > 0 or run.rows > rows_before
                idle = 0 if moved else idle + 1
                if retries <= 0 or idle > retries or outcome.attempts >= MAX_ATTEMPTS:
                    outcome.error = f"{exc} (gave up after {outcome.attempts} attempts)"
                    _LOG.error("%s", outcome.error)
                    break
                delay = min(backoff_s * 2 ** max(idle - 1, 0), MAX_BACKOFF_S)
                _LOG.warning("%s; retry %d in %.1f s", exc, outcome.attempts, delay)
                bar.note(f"link dropped, retrying in {delay:.0f} s")
                time.sleep(delay)
    except UserError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a bug or an unexpected device answer: this device only
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        bar.close()
    outcome.ok = outcome.error is None
    outcome.seconds = time.monotonic() - start
    _count_rows(outcome)
    return outcome


@dataclass
class _Run:
    """What the attempts of one target's deploy share."""
    owner: str                    # the lease token: a retry recognises its own cut attempt
    lease_timeout_s: float
    run_id: str                   # the measurement run's (run_record), not the bundle's
    rows: int = 0                 # rows the agent measured (its "row" events), every attempt


def _attempt(target: Target, spec, bundle, results, settings: DeployOptions, bar, outcome, run,
             stats) -> None:
    outcome.error = None
    python = python_for(spec, settings.remote_python)
    root = target.expand(spec.remote_dir or settings.remote_dir or DEFAULT_REMOTE_DIR).rstrip("/")
    run_dir = f"{root}/runs/{run.run_id}-{bundle.content_id}"
    bar.note("preflight")
    try:
        preflight(target, python, root, need_bytes=bundle.size)
    except LinkDropped as exc:
        raise dropped_while(target, "checking the device (preflight)", exc) from None
    with DeviceLock(target, python, root, run.run_id, owner=run.owner,
                    timeout_s=run.lease_timeout_s) as lock:
        outcome.stale_lock = lock.stale or outcome.stale_lock
        for note in lock.notes:
            outcome.notes.append(note)
            bar.note(note)
        bar.start_bytes(bundle.size)
        sync(target, bundle.files, root, f"{run_dir}/bundle", python,
             progress=bar.add_bytes, stats=stats)
        bar.start_agent(len(bundle.models))
        code, err_tail = _run_agent(target, lock, python, run_dir, settings, bar, spec.name,
                                    results, run, len(bundle.models))
        try:
            _pull(target, f"{run_dir}/out", results)
        except LinkDropped as exc:
            raise dropped_while(target, "fetching the results", exc) from None
    outcome.results = results
    if code != 0:
        why = exit_words(code)
        last = err_tail[-1] if err_tail else ""
        outcome.error = (f"agent {why}{': ' + last if last else ''}; measured rows are kept in "
                         f"{results}, rerun the same deploy to resume")


def _run_agent(target, lock, python, run_dir, settings: DeployOptions, bar, name, results, run,
               models):
    on_event = settings.on_event
    err_lines: list = []
    results.mkdir(parents=True, exist_ok=True)
    log = open(results / "agent-stderr.log", "a", encoding="utf-8")
    now = {"model": None, "done": 0}

    def on_stdout(line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            kind = event.get("event")
            if kind == "row":
                run.rows += 1
            if kind in ("row", "skip"):
                now["done"] += 1
            if kind == "model_start":
                now["model"] = event.get("model")
            bar.agent_event(event)
            if on_event:
                on_event(name, event)

    def on_stderr(line: str) -> None:
        err_lines.append(line)
        del err_lines[:-20]
        _AGENT_LOG.info("%s: %s", name, line)
        log.write(line + "\n")
        log.flush()
    argv = lock.wrap_agent([python, f"{run_dir}/bundle/{AGENT_ARCHIVE}", "--bundle",
                            f"{run_dir}/bundle", "--out", f"{run_dir}/out", "--run-id",
                            run.run_id,
                            *settings.agent_argv()],
                           f"{run_dir}/agent.pid")
    try:
        target.run(["mkdir", "-p", f"{run_dir}/out"])
        res = target.run(argv, cwd=run_dir, on_stdout=on_stdout, on_stderr=on_stderr,
                         timeout=settings.agent_timeout_s)
    except LinkDropped as exc:
        at = f"{now['model']} in progress; " if now["model"] else ""
        done = now["done"]
        raise dropped_while(target, f"running the agent ({at}{done} row{'s' * (done != 1)} of "
                                    f"{models} models done so far, kept on the device)",
                            exc) from None
    finally:
        log.close()
    return res.exit_code, err_lines


def _pull(target: Target, out_dir: str, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for name in sorted(target.listdir(out_dir)):
        if not name.endswith(PULLED_SUFFIXES):
            continue
        safe_name(name, "result file name")
        with atomic_path(results / name) as tmp:
            target.get(f"{out_dir}/{name}", tmp)


def _count_rows(outcome: DeployOutcome) -> None:
    path = outcome.results / "results.csv" if outcome.results else None
    if not path or not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    outcome.rows = len(rows)
    outcome.models_done = sorted({r.get("model", "") for r in rows
                                  if r.get("status", "ok") == "ok"})


__all__ = ["DeployOptions", "DeployOutcome", "DEFAULT_REMOTE_DIR", "deploy", "python_for",
           "summary", "target_dirname"]
