"""`bench-host run`: data → train → convert → quantize → verify → bundle → deploy → report.

Every stage writes files into results/<run-id>/ and records the inputs it ran on in
`stages.json`; a stage whose inputs and outputs are unchanged is skipped, so an interrupted or
repeated run resumes. Deploy always runs: the run <run-id> resumes (the agent skips rows it
already measured) while it measures the same bundle with the same options; once its models or
options change, the measurement is a new run, <run-id>-2 and so on, beside it (run_record)."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edgebench.device.options import AgentOptions
from edgebench.device.schema import MANIFEST_JSON
from edgebench.host.export_pool import ExportPool, worker_count
from edgebench.host.files import write_atomic
from edgebench.host.profiles import Profile


@dataclass
class PipelineResult:
    run_dir: Path
    report: object  # edgebench.host.report.ReportPaths
    outcomes: list
    stage_seconds: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageBook:
    """stages.json: stage name → key of the inputs it last completed with."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "stages.json"
        self.done = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def fresh(self, stage: str, key: str, outputs: Sequence[Path]) -> bool:
        return self.done.get(stage) == key and all(Path(p).exists() for p in outputs)

    def record(self, stage: str, key: str) -> None:
        self.done[stage] = key
        write_atomic(self.path, json.dumps(self.done, indent=2) + "\n")


class StageProgress:
    """One display across stages: a numbered header per stage with elapsed times."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.n, self.quiet, self.t0 = total, 0, quiet, time.perf_counter()
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], object], skip: bool = False):
        head = self.begin(name, skip)
        if skip:
            return None
        start = time.perf_counter()
        out = fn()
        self.end(head, name, time.perf_counter() - start)
        return out

    def begin(self, name: str, skip: bool = False, aside: bool = False) -> str:
        """The stage's numbered header, said; `aside`: it runs while the next stages go on."""
        self.n += 1
        head = f"[{self.n}/{self.total}] {name}"
        if skip:
            self._say(f"{head}: up to date, skipped")
            self.seconds[name] = 0.0
        else:
            self._say(f"{head} …" + (" (in the background)" if aside else ""))
        return head

    def end(self, head: str, name: str, seconds: float) -> None:
        self.seconds[name] = seconds
        self._say(f"{head}: done in {seconds:.1f} s "
                  f"(total {time.perf_counter() - self.t0:.0f} s)")

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


@dataclass
class _Stages:
    """The stages that resume: one skipped while its inputs' key and its outputs are unchanged."""
    book: StageBook
    progress: StageProgress
    skipped: list = field(default_factory=list)  # the stages found fresh

    def run(self, stage: str, key: str, outputs: Sequence[Path], label: str, fn: Callable):
        """fn() under `label` (None when skipped), recorded in stages.json once it is done."""
        fresh = self.book.fresh(stage, key, outputs)
        out = self.progress.run(label, fn, skip=fresh)
        if fresh:
            self.skipped.append(stage)
        else:
            self.book.record(stage, key)
        return out

    def run_aside(self, pool, stage: str, key: str, outputs: Sequence[Path], label: str,
                  fn: Callable, args: tuple, handed: list) -> None:
        """run() for a stage in `pool` (export_pool.ExportPool): recorded, and what it returns
        appended to `handed`, once it ends (pool.finished())."""
        if self.book.fresh(stage, key, outputs):
            self.progress.begin(label, skip=True)
            self.skipped.append(stage)
            return
        head = self.progress.begin(label, aside=True)

        def done(result):
            self.book.record(stage, key)
            handed.append(result)
        pool.submit(head, fn, args, done)

    def collect(self, pool, block: bool = False) -> None:
        """Say which background stages ended (all of them, with `block`)."""
        for head, seconds in pool.finished(block):
            label = head.split("] ", 1)[1]
            self.progress.end(head, label, seconds)


def run_pipeline(profile: Profile, results_root: Path, run_id: str, targets: list,
                 options=None, remote_python: str | None = None, quiet: bool = False,
                 agent: AgentOptions | None = None,
                 robustness: list | None = None, debug: bool = False, mixed=None,
                 device: str = "auto", amp: bool = False,
                 report_links=None,
                 converters: Sequence[str] = ("onnx2tf",),
                 export_workers: int | None = None,
                 remote_dir: str | None = None) -> PipelineResult:
    """`agent`: the user's agent options, over the profile's (warm-up, runs, threads). `debug`
    runs the layer debugger for the integer recipes; `mixed` (MixedOptions) chooses
    int8-mixed's float layers; `device`/`amp` are training's (--device, --amp); `converters`
    the routes every model is built by (export/converters). `export_workers`: processes that
    convert a model while the next one trains (export_pool; None: as this machine allows, 0:
    each model converted here before the next one trains). `remote_dir`: the devices' working
    folder (None: deploy's default)."""
    from edgebench.host.deploy import deploy
    from edgebench.host.report import build_report

    run_dir = Path(results_root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "profile.json").write_text(json.dumps(profile.stage_inputs(), indent=2) + "\n")
    stages = _Stages(StageBook(run_dir),
                     StageProgress(total=(1 + len(converters)) * len(profile.models) + 3,
                                   quiet=quiet))
    export_keys = []
    exported = []  # what each export loaded and computed, handed to the bundle
    keys = {arch: _stage_keys(profile, arch, run_dir, amp, debug, mixed, converters)
            for arch in profile.models}
    workers = worker_count(len(profile.models)) if export_workers is None else export_workers
    pool = ExportPool(workers) if workers else None
    handed_by_model = {arch: [] for arch in profile.models}
    try:
        for arch in profile.models:
            model_dir = run_dir / "models" / arch
            train_key, exports = keys[arch]
            ckpt = model_dir / "best.pt"
            # Beside the conversions, training takes one core: its two threads on two busy cores
            # wait for each other at every op (GoogLeNet trained 2.2x slower beside a conversion
            # with 2 threads; with 1 the whole default run took 128 s instead of 140 s). By
            # position, not by whether a conversion is still running, so that the same run trains
            # the same models every time: thread counts change float sums, hence the weights.
            threads = 1 if pool is not None and arch != profile.models[0] else None
            stages.run(f"train:{arch}", train_key, [ckpt], f"train {arch}",
                       lambda: _train(profile, arch, model_dir, quiet, device, amp, threads))
            # One stage per route: adding a converter to a run builds only that route's models.
            # A model's routes share its folder's verify.csv: they run one after the other.
            for converter, (stage, export_key, outputs) in exports.items():
                label = (f"convert + quantize + verify {arch}" if converter == "onnx2tf" else
                         f"quantize + verify {arch} by {converter}")
                label = f"{label} ({', '.join(profile.recipes)})"
                outputs = outputs + [model_dir / "verify.csv"]
                aside = pool is not None and len(exports) == 1
                # a worker's progress bars would cut into the next model's training lines
                args = (profile, ckpt, model_dir, quiet or aside, debug, mixed, [converter])
                if aside:
                    stages.run_aside(pool, stage, export_key, outputs, label, _export, args,
                                     handed_by_model[arch])
                else:
                    handover = stages.run(stage, export_key, outputs, label,
                                          lambda a=args: _export(*a))
                    handed_by_model[arch] += [handover] if handover is not None else []
                export_keys.append(export_key)
            if pool is not None:
                stages.collect(pool)
        if pool is not None:
            stages.collect(pool, block=True)
    except BaseException:
        if pool is not None:
            pool.close(abort=True)
        raise
    if pool is not None:
        pool.close()
    for arch in profile.models:  # every route ran here: the split is in memory
        if len(handed_by_model[arch]) == len(keys[arch][1]):
            exported.append(handed_by_model[arch][0])

    bundle_dir = run_dir / "bundle"
    stages.run("bundle", _key(export_keys + ([robustness] if robustness else [])),
               [bundle_dir / MANIFEST_JSON],
               "bundle" + (" (+ corrupted test sets)" if robustness else ""),
               lambda: _bundle(run_dir, bundle_dir, run_id, robustness,
                               exported if len(exported) == len(profile.models) else None))

    agent = (agent or AgentOptions()).over(profile.agent_options())
    names = ", ".join(t.label() for t in targets)
    outcomes = stages.progress.run(
        f"deploy + measure on {names}",
        lambda: deploy(bundle_dir, targets, results_root, agent, options=options,
                       remote_python=remote_python, remote_dir=remote_dir,
                       progress=not quiet, run_id=run_id,
                       resume_finished=True, fork=True))
    _check_measured(outcomes, run_dir)
    # report_links(run_dir) -> report blocks (the comparison with the previous run, if any)
    measured = Path(results_root) / outcomes[0].run_id  # run_dir, or a run forked beside it
    extra = report_links(measured) if report_links else None
    report = stages.progress.run("report", lambda: build_report([measured], measured, extra))
    return PipelineResult(run_dir, report, outcomes, stages.progress.seconds, stages.skipped)


def _check_measured(outcomes, run_dir: Path) -> None:
    """Nothing measured anywhere is an error that says why (not a missing CSV later)."""
    if any(o.rows for o in outcomes):
        return
    from edgebench.host.errors import UserError

    reasons = "; ".join(o.error if o.error.startswith(o.target) else f"{o.target}: {o.error}"
                        for o in outcomes if o.error)
    raise UserError(f"no target measured anything ({reasons}); the trained and converted "
                    f"models are kept in {run_dir}, rerun to resume")


def _stage_keys(profile: Profile, arch: str, run_dir: Path, amp, debug, mixed, converters):
    """(train key, {converter: (stage, export key, its outputs)}) of one model: what makes its
    stages fresh. onnx2tf's stage keeps the name and key it had before there were routes, so
    runs made then stay fresh."""
    from edgebench.host.export.converters import CONVERTERS

    # The device is not part of the key (a run resumed elsewhere keeps its checkpoints); mixed
    # precision changes the numbers, so it is.
    train_key = _key(profile.train_settings(arch) | {"model": arch} | ({"amp": True} if amp else {}))
    model_dir = run_dir / "models" / arch
    exports = {}
    for c in converters:
        key = _key([train_key, profile.recipes, profile.calib, profile.calib_split, profile.io]
                   + ([debug, mixed] if debug or mixed else [])
                   + ([[c]] if c != "onnx2tf" else []))
        outputs = [model_dir / CONVERTERS[c].model_file(arch, r) for r in profile.recipes
                   if r not in CONVERTERS[c].unsupported]
        exports[c] = (f"export:{arch}" if c == "onnx2tf" else f"export:{arch}:{c}", key, outputs)
    return train_key, exports


def _train(profile: Profile, arch: str, out: Path, quiet: bool, device: str, amp: bool,
           threads: int | None = None) -> None:
    """`threads`: torch's CPU threads while it trains (None: as they are)."""
    import torch

    from edgebench.host.train import TrainConfig, train

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        train(TrainConfig(model=arch, out=out, device=device, amp=amp,
                          **profile.train_settings(arch)), progress=not quiet)
    finally:
        torch.set_num_threads(before)


def _export(profile: Profile, checkpoint: Path, out: Path, quiet: bool, debug: bool = False,
            mixed=None, converters: Sequence[str] = ("onnx2tf",)) -> dict:
    """The same steps as `bench-host convert` then `bench-host quantize`, verified on the test
    split; a recipe that fails is a failed row in verify.csv, never a stopped run. The float32
    model `convert` builds (and verifies) is the fp32 recipe: it is not built twice. The
    checkpoint and the splits are loaded once, here, and handed to each step; what the bundle
    needs of them (the test split, the float logits on it) is returned for the bundle stage."""
    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.data import load_splits
    from edgebench.host.export.calibration import draw
    from edgebench.host.export.pipeline import convert_checkpoint, record_verification, reference_for
    from edgebench.host.export.quantize import QuantizeOptions, quantize
    from edgebench.host.export.verify import normalize

    from edgebench.host.export.pipeline import checkpoint_source

    model, meta = build_from_checkpoint(checkpoint)
    splits = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed)
    test_images, test_labels = splits["test"]
    results = []
    if "onnx2tf" in converters:
        conv = convert_checkpoint(checkpoint, out, verify_images=test_images,
                                  verify_labels=test_labels, loaded=(model, meta))
        source = conv.source
        results.append(conv.fp32)
    else:
        source = checkpoint_source(checkpoint, meta)
        kept = out / f"{meta.architecture}.onnx"  # the onnx2tf stage's export, when it ran
        source.onnx = str(kept) if kept.is_file() else ""
    if profile.calib_split == "val":  # the seed's: the first validation images, in order
        calib = splits["val"][0][:profile.calib]
    else:
        calib = draw(splits["train"][0], profile.calib, profile.seed)
    verify = reference_for(source, test_images, test_labels, model=model)
    for converter in converters:  # the same calibration and test images for every route
        todo = [r for r in profile.recipes if not (converter == "onnx2tf" and r == "fp32")]
        if todo:
            results += quantize(Path(source.saved_model), todo,
                                normalize(calib, source.normalization), out, source,
                                QuantizeOptions(io=profile.io, verify=verify, progress=not quiet,
                                                debug=debug, mixed=mixed, converter=converter,
                                                model=model))
    record_verification(out, results, source.architecture)
    return {"split": (meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed),
            "test": {"images": test_images, "labels": test_labels},
            "checkpoint": checkpoint, "reference": verify.reference}


def _bundle(run_dir: Path, bundle_dir: Path, run_id: str, robustness=None,
            exported: list | None = None) -> None:
    """The bundle, from the test split and float logits the export stage loaded and computed
    (when every model was exported in this run from the same split), else derived again."""
    from edgebench.host.bundle import build_bundle

    testset, references = None, None
    if exported and len({e["split"] for e in exported}) == 1:
        testset = exported[0]["test"]
        references = {e["checkpoint"]: e["reference"] for e in exported}
    build_bundle(run_dir / "models", bundle_dir, testset=testset, run_id=run_id,
                 robustness=robustness, references=references)
