"""A deploy over labgrid places: each place is held (acquired, power-cycled if asked) for exactly
its own deploy, which goes through edgebench's unchanged SSH deploy, and released as soon as that
deploy ends. Places run concurrently, a place that cannot be had is a failed outcome while the
others go on, and every place's results folder gets a place.json (name, tags, coordinator,
resources) that the report turns into `place` and `place_tags` columns.

The deploy function is passed in (host/deploy.py's `deploy`), so this module adds holding around
it and nothing inside it: known_hosts, jump hosts, resumable uploads and the device lease apply to
a place exactly as to any `user@host` target."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from edgebench.host.errors import UserError
from edgebench.host.targets.labgrid_places import (
    LabgridOptions, PlaceHold, place_info, select_places,
)

PLACE_FILE = "place.json"


def is_labgrid(spec) -> bool:
    return getattr(spec, "kind", None) == "labgrid"


def uses_labgrid(specs: Sequence, lab: LabgridOptions | None) -> bool:
    return any(is_labgrid(s) for s in specs) or bool(lab and lab.tags)


def deploy_fleet(deploy_fn: Callable, bundle_dir, specs: Sequence, results_dir,
                 agent=None, *, lab: LabgridOptions,
                 progress: bool = True, **deploy_kwargs) -> list:
    """deploy_fn's outcomes for the plain targets, then one per place, in order."""
    from edgebench.device.options import AgentOptions
    from edgebench.host.bundle_reader import load_bundle
    from edgebench.host.deploy import DeployOptions, target_dirname
    from edgebench.host.run_record import choose_run

    plain = [s for s in specs if not is_labgrid(s)]
    client = lab.client()
    listed = {p.name: p for p in select_places(client, [s.name for s in specs if is_labgrid(s)],
                                               lab.tags)}
    names = list(listed)
    # One run for the fleet: every place deploys into it, each when it has been acquired.
    settings = deploy_kwargs.get("settings") or DeployOptions(agent=agent or AgentOptions())
    run = choose_run(results_dir, load_bundle(bundle_dir),
                     [target_dirname(s) for s in plain] + [target_dirname(n) for n in names],
                     settings.agent_argv(), deploy_kwargs.pop("run_id", None),
                     deploy_kwargs.pop("new_run", False), deploy_kwargs.pop("resume_finished", False))
    deploy_kwargs["run"] = run
    # Several deploys side by side would draw their progress bars over each other's line.
    bars = progress and len(names) + (1 if plain else 0) == 1
    jobs: list = []
    holds: dict = {}
    results: dict = {}

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    if run.note:
        say(f"deploy: {run.note}")

    def run_place(name: str) -> None:
        start = time.monotonic()
        hold = PlaceHold(client, name, lab, note=say, listed=listed[name])
        holds[name] = hold
        outcome = _deploy_held(hold, run, say, lambda spec: deploy_fn(
            bundle_dir, [spec], results_dir, agent, progress=bars, **deploy_kwargs)[0])
        outcome.notes = list(hold.notes) + list(outcome.notes)
        outcome.seconds = time.monotonic() - start
        results[name] = outcome

    def run_plain() -> None:
        results[None] = deploy_fn(bundle_dir, plain, results_dir, agent,
                                  progress=bars, **deploy_kwargs)

    if plain:
        jobs.append(threading.Thread(target=run_plain, daemon=True))
    jobs += [threading.Thread(target=run_place, args=(n,), daemon=True) for n in names]
    def release_all() -> None:
        # Ctrl-C (or SIGTERM): give every place back now, from this thread; the deploys'
        # measured rows stay on their devices and a re-run resumes them.
        for hold in list(holds.values()):
            hold.release()

    _run_threads(jobs, on_interrupt=release_all)
    return list(results.get(None, [])) + [results[n] for n in names]


def _deploy_held(hold: PlaceHold, run, say: Callable, deploy_one: Callable):
    """deploy_one(spec)'s outcome on the place `hold` acquires, with its place.json written in
    the run's folder first; a place that fails (cannot be had, or an odd answer) is a failed
    outcome, marked failed in the run, and the other places go on."""
    from edgebench.host.deploy import DeployOutcome, target_dirname

    name = hold.name
    try:
        with hold:
            folder = run.folder / target_dirname(hold.spec)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / PLACE_FILE).write_text(json.dumps(place_info(hold), indent=1) + "\n")
            say(f"{name}: acquired in {hold.acquire_s:.1f} s, deploying to "
                f"{hold.spec.label()}")
            return deploy_one(hold.spec)
    except UserError as exc:
        outcome = DeployOutcome(target=name, ok=False, error=str(exc), run_id=run.run_id)
    except Exception as exc:  # a bug or an odd answer: this place only
        outcome = DeployOutcome(target=name, ok=False, error=f"{type(exc).__name__}: {exc}",
                                run_id=run.run_id)
    run.mark(target_dirname(name), "failed")
    return outcome


def _run_threads(jobs: list, on_interrupt: Callable | None = None) -> None:
    """Starts every job and waits for all, in short joins so that Ctrl-C (and SIGTERM, raised
    as it) reaches this thread; `on_interrupt` runs before the interrupt goes on."""
    with _sigterm_as_interrupt():
        try:
            for job in jobs:
                job.start()
            for job in jobs:
                while job.is_alive():
                    job.join(0.2)
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            raise


class _sigterm_as_interrupt:
    """SIGTERM (a scheduler's kill, `timeout`) ends the run like Ctrl-C, so places are released;
    only the main thread may set handlers, elsewhere this does nothing."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def labgrid_options_from(args) -> LabgridOptions:
    """The labgrid arguments of deploy and doctor (see target_args.add_target_args)."""
    from edgebench.host.targets.labgrid_client import parse_tags

    tags = parse_tags(args.labgrid_tags) if getattr(args, "labgrid_tags", None) else {}
    wait = getattr(args, "wait", 0.0) or 0.0
    if wait < 0:
        raise UserError("--wait must be >= 0 seconds")
    return LabgridOptions(coordinator=getattr(args, "coordinator", None), tags=tags,
                          wait_s=wait, power_cycle=bool(getattr(args, "power_cycle", False)),
                          boot_timeout_s=getattr(args, "boot_timeout", None) or 180.0,
                          client_program=getattr(args, "labgrid_client", None))


def doctor_places(check_fn: Callable, specs: Sequence, lab: LabgridOptions) -> list:
    """(ok, text) per target for `bench-host doctor`: plain targets through check_fn(spec);
    each place is held while its device is checked, and its text starts with the place, its
    tags and its resources."""
    plain = [s for s in specs if not is_labgrid(s)]
    client = lab.client()
    listed = {p.name: p for p in select_places(client, [s.name for s in specs if is_labgrid(s)],
                                               lab.tags)}
    names = list(listed)
    out: dict = {}

    def one_place(name: str) -> None:
        hold = PlaceHold(client, name, lab, listed=listed[name])
        try:
            with hold:
                ok, text = check_fn(hold.spec)
                out[name] = (ok, describe_place(hold) + "\n" + text)
        except UserError as exc:
            out[name] = (False, f"labgrid place {name}\n  FAIL  {exc}")

    def one_plain(i: int, spec) -> None:
        out[i] = check_fn(spec)

    jobs = [threading.Thread(target=one_plain, args=(i, s), daemon=True)
            for i, s in enumerate(plain)]
    jobs += [threading.Thread(target=one_place, args=(n,), daemon=True) for n in names]
    _run_threads(jobs)
    return [out[i] for i in range(len(plain))] + [out[n] for n in names]


def describe_place(hold: PlaceHold) -> str:
    place = hold.place
    lines = [f"labgrid place {hold.name} on {hold.client.coordinator}"
             f" (tags: {place.tags_text() or 'none'})"]
    for r in place.resources:
        params = ", ".join(f"{k}={v}" for k, v in sorted(r.params.items()) if k != "extra")
        lines.append(f"  resource  {r.cls:<18} {r.path}  {params}")
    if not hold.power_resource():
        lines.append("  power     none (--power-cycle needs a NetworkPowerPort or another "
                     "labgrid power resource)")
    lines += [f"  note      {n}" for n in hold.notes]
    return "\n".join(lines)
