"""One deploy is one measurement run: its own id, start time and folder `<results>/<run-id>/`,
recorded in `run.json` there. A deploy resumes only an unfinished run: the one it names with
--run-id, or the last run in the results folder when that one was interrupted and measured the
same bundle with the same agent options on the same targets. A finished run is never measured
into again; the bundle's own id stays in the rows as bundle_id.

run.json: {"run_id", "started_utc", "bundle": {"id", "content", "path"}, "agent_argv": [...],
"targets": {name: "running" | "finished" | "failed"}, "finished_utc"}."""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgebench.device.manifest import Manifest, ManifestError, check_name
from edgebench.host.errors import UserError
from edgebench.host.files import atomic_path

RUN_JSON = "run.json"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunRecord:
    folder: Path
    data: dict
    note: Optional[str] = None     # said once when the deploy starts (a resume, a run not resumed)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    def unfinished(self) -> list:
        return [t for t, state in self.data.get("targets", {}).items() if state != "finished"]

    def mark(self, target: str, state: str) -> None:
        """One target's end ("finished" or "failed"); threads of a fleet deploy share the file."""
        with self._lock:
            self.data["targets"][target] = state
            if not self.unfinished():  # a finished run kept by bench-host run keeps its time
                self.data["finished_utc"] = self.data.get("finished_utc") or utc_now()
            self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / RUN_JSON) as tmp:
            Path(tmp).write_text(json.dumps(self.data, indent=1) + "\n", encoding="utf-8")


def read_run(folder: Path) -> Optional[dict]:
    try:
        data = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("run_id") else None


def _measured(folder: Path) -> bool:
    """A run folder of an edgebench before run.json: a target folder with a results.csv."""
    return folder.is_dir() and any(folder.glob("*/results.csv"))


def _last_run(results: Path) -> Optional[dict]:
    runs = [r for r in (read_run(p) for p in results.iterdir() if p.is_dir()) if r] \
        if results.is_dir() else []
    return max(runs, key=lambda r: (r.get("started_utc") or "", r["run_id"]), default=None)


def _same_work(run: dict, want: dict, targets: bool = True) -> bool:
    """The same bundle content and agent options (and targets): what a resume must keep."""
    return run.get("agent_argv") == want["agent_argv"] \
        and run.get("bundle", {}).get("content") == want["bundle"]["content"] \
        and (not targets or sorted(run.get("targets", {})) == sorted(want["targets"]))


def _new_id(results: Path) -> str:
    """A UTC stamp (runs sort by it) and 4 random hex digits: two labs deploying at the same
    second into one shared database still get two runs."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return _free_id(results, f"{stamp}-{secrets.token_hex(2)}")


def _free_id(results: Path, base: str) -> str:
    """base, or base-2, base-3, ...: the first that names no run (no run.json, no measured target
    folder; a bundle folder alone, as deploy --models-dir makes it, is not a run yet)."""
    run_id, n = base, 1
    while read_run(results / run_id) or _measured(results / run_id):
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def open_run(results, bundle, targets: list, agent_argv: list, run_id: Optional[str] = None,
             resume_finished: bool = False, fork: bool = False) -> RunRecord:
    """The run this deploy measures: resumed or new (see the module's docstring). `bundle` is a
    bundle_reader.Bundle; `targets` the target folder names. resume_finished: a finished run named by
    run_id is resumed too (bench-host run re-run over its own folder measures nothing again).
    fork: a run named by run_id that measured another bundle or other options is not refused;
    this deploy becomes run <run_id>-2 (-3, ...) beside it (bench-host run after a change)."""
    results = Path(results)
    want = {"bundle": {"id": bundle.run_id, "content": bundle.content_id},
            "agent_argv": list(agent_argv), "targets": {t: "running" for t in targets}}
    note = None
    if run_id:
        try:
            check_name(run_id, "run id")
        except ManifestError as exc:
            raise UserError(str(exc)) from None
        old = read_run(results / run_id)
        if old and fork and not _same_work(old, want, targets=False):
            return _fork(results, run_id, bundle, want)
        if old:
            _check_resumable(results / run_id, old, want, resume_finished)
            if old.get("finished_utc") is None:
                note = f"resuming run {run_id} (started {old.get('started_utc')}, unfinished)"
            return _resume(results / run_id, old, want, note)
        if _measured(results / run_id) and not resume_finished:
            raise UserError(f"{results / run_id} holds a run measured by an older edgebench; "
                            f"give this deploy a new --run-id")
    else:
        last = _last_run(results)
        if last and last.get("finished_utc") is None:
            if _same_work(last, want):
                note = (f"resuming run {last['run_id']} (started {last.get('started_utc')}, "
                        f"interrupted); --new-run measures afresh")
                return _resume(results / last["run_id"], last, want, note)
            note = (f"run {last['run_id']} in {results} is unfinished but measured another bundle "
                    f"or other options, so this deploy is a new run (resume that one with "
                    f"--run-id {last['run_id']} and its options)")
        run_id = _new_id(results)
    return _new(results, run_id, bundle, want, note)


def _fork(results: Path, base: str, bundle, want: dict) -> RunRecord:
    """Run base-2, base-3, ...: the first that measured this bundle with these options (kept or
    resumed), else a new one after the last."""
    n = 2
    while read_run(results / f"{base}-{n}") or _measured(results / f"{base}-{n}"):
        old = read_run(results / f"{base}-{n}")
        if old and _same_work(old, want, targets=False):
            note = None if old.get("finished_utc") else (
                f"resuming run {base}-{n} (started {old.get('started_utc')}, unfinished)")
            return _resume(results / f"{base}-{n}", old, want, note)
        n += 1
    note = f"run {base} measured another bundle or other options; this measurement is run {base}-{n}"
    return _new(results, f"{base}-{n}", bundle, want, note)


def _new(results: Path, run_id: str, bundle, want: dict, note: Optional[str]) -> RunRecord:
    data = {"run_id": run_id, "started_utc": utc_now(),
            "bundle": dict(want["bundle"], path=_bundle_path(bundle.path, results / run_id)),
            "agent_argv": want["agent_argv"], "targets": want["targets"], "finished_utc": None}
    record = RunRecord(results / run_id, data, note)
    record.save()
    _keep_manifest(bundle.path, record.folder)
    return record


def choose_run(results, bundle, targets: list, agent_argv: list, run_id: Optional[str] = None,
               new_run: bool = False, resume_finished: bool = False,
               fork: bool = False) -> RunRecord:
    """open_run, or new_run_only with --new-run."""
    if new_run:
        return new_run_only(results, bundle, targets, agent_argv, run_id)
    return open_run(results, bundle, targets, agent_argv, run_id, resume_finished, fork)


def new_run_only(results, bundle, targets, agent_argv, run_id=None) -> RunRecord:
    """--new-run: never resume, whatever the folder holds (a named run must not exist yet)."""
    results = Path(results)
    if run_id and (read_run(results / run_id) or _measured(results / run_id)):
        raise UserError(f"run {run_id} exists in {results}; --new-run needs a new --run-id")
    last = _last_run(results) if not run_id else None
    record = open_run(results, bundle, targets, agent_argv, run_id or _new_id(results))
    if last and last.get("finished_utc") is None:
        record.note = f"run {last['run_id']} stays unfinished (--new-run)"
    return record


def refuse_finished(results, run_id: str) -> None:
    """UserError when run_id names a finished run in `results` (before a bundle is built into
    its folder, which would replace the bundle it measured)."""
    folder = Path(results) / run_id
    old = read_run(folder)
    if (old and old.get("finished_utc")) or (not old and _measured(folder)):
        raise UserError(f"run {run_id} in {folder.parent} is finished; a deploy is a new run: "
                        f"leave out --run-id or give a new one")


def _check_resumable(folder: Path, old: dict, want: dict, resume_finished: bool) -> None:
    run_id = old["run_id"]
    if old.get("bundle", {}).get("content") != want["bundle"]["content"]:
        raise UserError(f"run {run_id} in {folder.parent} measured another bundle (content "
                        f"{old.get('bundle', {}).get('content')}, this one "
                        f"{want['bundle']['content']}); give this deploy a new --run-id")
    if old.get("agent_argv") != want["agent_argv"]:
        raise UserError(f"run {run_id} in {folder.parent} was measured with agent options "
                        f"{' '.join(old.get('agent_argv') or []) or '(defaults)'}; resume it "
                        f"with the same options or give this deploy a new --run-id")
    if not resume_finished:
        refuse_finished(folder.parent, run_id)


def _resume(folder: Path, old: dict, want: dict, note: Optional[str]) -> RunRecord:
    for target in want["targets"]:
        if old.setdefault("targets", {}).get(target) != "finished":
            old["targets"][target] = "running"
    if any(state != "finished" for state in old["targets"].values()):
        old["finished_utc"] = None
    record = RunRecord(folder, old, note)
    record.save()
    return record


def _bundle_path(bundle: Path, run_folder: Path) -> str:
    """Where the bundle is, relative to the run folder (no host path goes into shared files)."""
    try:
        return os.path.relpath(Path(bundle).resolve(), run_folder.resolve())
    except ValueError:
        return str(bundle)


def _keep_manifest(bundle: Path, run_folder: Path) -> None:
    """A run away from its bundle keeps the manifest, so report and database find the cards."""
    if Path(bundle).resolve().parent == run_folder.resolve():
        return
    try:
        manifest = Manifest.load(bundle)
    except ManifestError:  # no manifest there: nothing to keep
        return
    manifest.dump(run_folder)
