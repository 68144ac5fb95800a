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
cut attempt's lease is taken over (targets/lock.py) and the agent skips rows already measured.
When to retry is host/deploy_retry.py's; the agent's output is read by host/agent_events.py."""
from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from edgebench.device.options import AgentOptions, agent_command
from edgebench.device.schema import AGENT_ARCHIVE
from edgebench.host import liblog
from edgebench.host.agent_events import AgentEvents
from edgebench.host.bundle_reader import Bundle, load_bundle
from edgebench.host.deploy_results import measured, pull_results
from edgebench.host.deploy_retry import (
    DEFAULT_BACKOFF_S, DEFAULT_RETRIES, RetryPolicy, attempt_until_done,
)
from edgebench.host.doctor import preflight
from edgebench.host.errors import UserError
from edgebench.host.run_record import RunRecord, choose_run
from edgebench.host.targets import (
    ConnectOptions, LinkDropped, TargetSpec, open_target, parse_target,
)
from edgebench.host.targets.base import Target, dropped_while
from edgebench.host.targets.lock import DEFAULT_LEASE_TIMEOUT_S, DeviceLock, new_owner
from edgebench.host.targets.progress import TargetProgress
from edgebench.host.targets.transfer import TransferStats, sync

DEFAULT_REMOTE_DIR = "~/.edgebench"


def default_remote_dir() -> str:
    """The device's working folder when neither --remote-dir nor the inventory names one:
    $EDGEBENCH_REMOTE_DIR (relative: under the device user's home), else ~/.edgebench."""
    return os.environ.get("EDGEBENCH_REMOTE_DIR") or DEFAULT_REMOTE_DIR
DEFAULT_PYTHON = "python3"
_LOG = logging.getLogger("edgebench.deploy")


@dataclass(frozen=True)
class DeployOptions:
    """How one deploy reaches, runs and retries on every target; built once, passed down whole."""
    agent: AgentOptions = AgentOptions()   # None fields: the agent's own defaults
    options: ConnectOptions = field(default_factory=ConnectOptions)
    remote_python: Optional[str] = None
    remote_dir: Optional[str] = None
    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S
    progress: bool = True
    on_event: Optional[Callable[[str, dict], None]] = None
    agent_timeout_s: Optional[float] = None
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S

    def agent_argv(self) -> list:
        """The agent's options as flags: part of the run's identity (run.json)."""
        return self.agent.to_argv()


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


def deploy(bundle_dir, targets: Sequence, results_dir="results",
           agent: Optional[AgentOptions] = None, *,
           settings: Optional[DeployOptions] = None, run_id: Optional[str] = None,
           new_run: bool = False, resume_finished: bool = False, fork: bool = False,
           run: Optional[RunRecord] = None, **fields) -> list:
    """Deploy to every target concurrently; returns one DeployOutcome per target, in order.
    `agent` is an AgentOptions (None: the agent's defaults); `settings` a DeployOptions, or its fields
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
    settings = settings or DeployOptions(agent=agent or AgentOptions(), **fields)
    record = run or choose_run(results_dir, bundle, names, settings.agent_argv(), run_id,
                               new_run, resume_finished, fork)
    results_root = record.folder
    with liblog.to_file(results_root / "host.log"), \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        if record.note and run is None:
            _LOG.warning("%s", record.note)
            if settings.progress:
                print(f"deploy: {record.note}", file=sys.stderr)
        target_runs = [TargetRun.start(spec, i, bundle, results_root / names[i], settings,
                                       record.run_id) for i, spec in enumerate(targets)]
        futures = [pool.submit(_deploy_one, r) for r in target_runs]
        outcomes = [f.result() for f in futures]
    for o, name in zip(outcomes, names):
        o.run_id, o.run_note = record.run_id, record.note
        record.mark(name, "finished" if o.ok else "failed")
    return outcomes


@dataclass
class TargetRun:
    """One target's deploy: what its attempts share, and the outcome they fill in."""
    spec: TargetSpec
    bundle: Bundle
    results: Path                 # the local folder its result files are pulled into
    settings: DeployOptions
    run_id: str                   # the measurement run's (run_record), not the bundle's
    owner: str                    # the lease token: a retry recognises its own cut attempt
    bar: TargetProgress
    outcome: DeployOutcome
    rows: int = 0                 # rows the agent measured (its "row" events), every attempt

    @classmethod
    def start(cls, spec: TargetSpec, position: int, bundle: Bundle, results: Path,
              settings: DeployOptions, run_id: str) -> "TargetRun":
        """position: the target's line for its progress bar."""
        return cls(spec=spec, bundle=bundle, results=results, settings=settings, run_id=run_id,
                   owner=new_owner(), bar=TargetProgress(spec.name, position,
                                                         enabled=settings.progress),
                   outcome=DeployOutcome(target=spec.name, ok=False))


def _deploy_one(run: TargetRun) -> DeployOutcome:
    """Never raises: whatever goes wrong on this device is its outcome's error."""
    outcome, settings = run.outcome, run.settings
    start = time.monotonic()
    try:
        attempt_until_done(lambda stats: _attempt_once(run, stats), run,
                           RetryPolicy(settings.retries, settings.backoff_s))
    except UserError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a bug or an unexpected device answer: this device only
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        run.bar.close()
    outcome.ok = outcome.error is None
    outcome.seconds = time.monotonic() - start
    outcome.rows, outcome.models_done = measured(outcome.results)
    return outcome


def _attempt_once(run: TargetRun, stats: TransferStats) -> None:
    with open_target(run.spec, run.settings.options) as target:
        _attempt(target, run, stats)


def _attempt(target: Target, run: TargetRun, stats: TransferStats) -> None:
    """Preflight, lock, upload, run the agent, pull its results: one connection's worth."""
    outcome, bundle, bar = run.outcome, run.bundle, run.bar
    outcome.error = None
    python = python_for(run.spec, run.settings.remote_python)
    root = target.expand(run.spec.remote_dir or run.settings.remote_dir
                         or default_remote_dir()).rstrip("/")
    run_dir = f"{root}/runs/{run.run_id}-{bundle.content_id}"
    bar.note("preflight")
    try:
        preflight(target, python, root, need_bytes=bundle.size)
    except LinkDropped as exc:
        raise dropped_while(target, "checking the device (preflight)", exc) from None
    with DeviceLock(target, python, root, run.run_id, owner=run.owner,
                    timeout_s=run.settings.lease_timeout_s) as lock:
        outcome.stale_lock = lock.stale or outcome.stale_lock
        for note in lock.notes:
            outcome.notes.append(note)
            bar.note(note)
        bar.start_bytes(bundle.size)
        sync(target, bundle.files, root, f"{run_dir}/bundle", python,
             progress=bar.add_bytes, stats=stats)
        bar.start_agent(len(bundle.models))
        agent_error = _run_agent(target, lock, python, run_dir, run)
        try:
            pull_results(target, f"{run_dir}/out", run.results)
        except LinkDropped as exc:
            raise dropped_while(target, "fetching the results", exc) from None
    outcome.results = run.results
    outcome.error = agent_error


def _run_agent(target: Target, lock: DeviceLock, python: str, run_dir: str,
               run: TargetRun) -> Optional[str]:
    """Runs the agent under the lock, its events feeding the bar; None, or why it failed."""
    settings = run.settings
    events = AgentEvents(run.spec.name, run.bar, run.results / "agent-stderr.log",
                         on_event=settings.on_event)
    argv = lock.wrap_agent(agent_command(python, f"{run_dir}/bundle/{AGENT_ARCHIVE}",
                                         f"{run_dir}/bundle", f"{run_dir}/out", settings.agent,
                                         extra=["--run-id", run.run_id]),
                           f"{run_dir}/agent.pid")
    with events:
        try:
            target.run(["mkdir", "-p", f"{run_dir}/out"])
            res = target.run(argv, cwd=run_dir, on_stdout=events.on_stdout,
                             on_stderr=events.on_stderr, timeout=settings.agent_timeout_s)
        except LinkDropped as exc:
            words = events.progress_words(len(run.bundle.models))
            raise dropped_while(target, f"running the agent ({words})", exc) from None
        finally:
            run.rows += events.rows
    return events.exit_error(res.exit_code, run.results)


__all__ = ["DeployOptions", "DeployOutcome", "DEFAULT_REMOTE_DIR", "default_remote_dir", "deploy", "python_for",
           "target_dirname"]
