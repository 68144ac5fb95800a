"""The op profile of a LiteRT row by prefix cuts: LiteRT's Python API has no profiler, so the
model is cut after each operator k (op_profile_tflite.py: subgraph 0's operators 0..k), every
prefix is loaded as the row loads its model (the same session class, threads, XNNPACK choice
and delegate) and timed, and op k's time is t(prefix k) - t(prefix k-1). The empty prefix (no
operator, the input handed back) comes first, so op 0 does not carry the invoke's own cost. A
prefix's outputs are op k's and every earlier result a later op still reads (live_outputs):
otherwise XNNPACK drops a parallel branch that only a later CONCATENATION joins, and the
CONCATENATION's prefix pays for the whole branch (seen: 3.2 ms of 3.5).

Timing: in rounds; in each round every prefix is timed in a shuffled order, REPS invokes each,
its fastest kept. Per op: the fastest round of its prefix less the fastest round of the prefix
before (the same rounds), with a 95 % bootstrap interval (rounds resampled, fixed seed); an
interval that does not lie above 0 is below the method's resolution. The fastest, not the
median, because other load only ever adds time, and on a busy machine it adds a lot: beside
other tests on this 2-core VM (load 7) a 3.5 ms prefix took 7-12 ms in 5 of 15 rounds even at
its fastest of 5 invokes, and the op after it took those milliseconds in the median; over
ResNet18 at 40 px (36 ops, 20 rounds x 5) the fastest gave Spearman 0.89-0.98 between profiles
over the ops making up 80 % of the time and sums within 3 %, the per-round median 0.57-0.96 and
sums from 4.8 to 7.6 ms. Rounds: --profile-ops N, fewer where they would take longer than
BUDGET_S (rounds_for), never fewer than MIN_ROUNDS. The op times sum to the full model's
fastest time less the empty one's, by construction.

What it cannot see: a prefix is a model of its own, so XNNPACK (or a delegate, or a GPU's
compiler) partitions and plans each prefix anew: an op fused with its successor in the full
model (a PAD into a CONV_2D) is timed as it runs when it ends a prefix, and an op whose output
nothing reads, which XNNPACK drops, shows as ~0. On CompiledModel (gpu, npu) each invoke reads
op k's output back, so its difference includes the change in that copy. Ops on constants only
(an fp16 model's DEQUANTIZE of its weights) run while the interpreter prepares: listed with
profiled_runs 0 and no time."""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time

import numpy as np

from ..common import one_line
from .op_profile_stats import fastest_difference, finish, node_line
from .op_profile_tflite import graph_outputs, live_outputs, read_ops, write_cut

REPS = 3
MIN_ROUNDS = 10
BUDGET_S = 4.0
SHUFFLE_SEED = 0
WARMUP_INVOKES = 2
# Prefixes loaded at once. Each costs about 1.5x the model's bytes: its own copy of the file
# (all of it in memory on a tmpfs) and, under XNNPACK, packed copies of its weights (ResNet18
# fp32, 37 prefixes of 44 MB: 1.65 GB on /dev/shm and 0.53 GB of packed weights). Past
# GROUP_BYTES, or a third of the memory available, the prefixes are timed in groups, one after
# the other (consecutive groups share a prefix, so each difference is taken within one group's
# rounds). One group is better: a group is timed over a window of its own, and on a busy
# machine the windows differ (ResNet18 fp32 in 4 groups: Spearman 0.29-0.86 between profiles
# over the top ops; in one: 0.77-0.91).
GROUP_BYTES = 4 * 2 ** 30
NODE_NAME_CHARS = 80


def available_bytes():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def group_size(model_bytes: int, prefixes: int) -> int:
    room = GROUP_BYTES
    free = available_bytes()
    if free:
        room = min(room, free // 3)
    return max(2, min(prefixes, room // max(3 * model_bytes // 2, 1)))


def scratch_dir(need: int):
    """Where the prefixes are written: a tmpfs (/dev/shm) with room for a group, else the
    system's temporary folder. Each prefix is a whole copy of the model, mapped by its
    interpreter until the group is timed: on a disk they are written back (ResNet18 fp32, 37
    prefixes of 44 MB: 6.2 s on this VM's disk, 1.7 s on /dev/shm)."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 2 * need:
            return shm
    except (OSError, AttributeError):
        pass
    return None


def taken_ops(interp) -> set:
    """The original nodes a delegate replaced, from the interpreter's op list (each DELEGATE
    node's outputs walked back through their producers, never past the partition's inputs:
    sessions.delegated_nodes counts them the same way); empty where the list is unavailable."""
    try:
        ops = interp._get_ops_details()
    except Exception:
        return set()
    producer, by_index = {}, {}
    for op in ops:
        by_index[int(op["index"])] = op
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = int(op["index"])
    taken = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = set(int(t) for t in op["inputs"])
        stack = [int(t) for t in op["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"]
                         if int(t) >= 0 and int(t) not in boundary)
    return taken


def provider_of(job: dict, session, k: int) -> str:
    """Where op k ran, seen in the prefix that ends with it: the delegate (XNNPACK or the
    row's) that took it, or the runtime's own kernels; an accelerator row's accelerator."""
    unit, runtime = job["unit"], job["runtime"]
    if unit["api"] == "compiled_model":
        return "%s:%s" % (runtime, unit["accelerator"])
    interp = getattr(session, "_interp", None)
    if interp is None or k not in taken_ops(interp):
        return "%s:cpu" % runtime
    delegate = unit.get("delegate")
    return "%s:%s" % (runtime, os.path.basename(delegate["library"]) if delegate else "xnnpack")


def time_rounds(sessions: list, rounds: int, rng) -> np.ndarray:
    """rounds x prefixes: each prefix's fastest of REPS invokes per round, in ms, the prefixes
    in a new shuffled order every round."""
    clock = time.perf_counter_ns
    out = np.empty((rounds, len(sessions)))
    samples = [0] * REPS
    for r in range(rounds):
        for j in rng.permutation(len(sessions)):
            invoke = sessions[j].invoke
            for i in range(REPS):
                t0 = clock()
                invoke()
                samples[i] = clock() - t0
            out[r, j] = min(samples) / 1e6
    return out


class PrefixTimer:
    """Loads the prefixes one by one and times them a group at a time (group_size()), keeping
    per op the per-round timings of its prefix and of the one before."""

    def __init__(self, job: dict, started, make_input, data: bytes, cuts: int, rounds: int):
        from .sessions import SESSIONS

        self.job, self.started, self.make_input = job, started, make_input
        self.make_session, self.data = SESSIONS[job["unit"]["api"]], data
        self.ops, self.model_outputs = read_ops(data), graph_outputs(data)
        self.per_group, self.rounds = group_size(len(data), cuts), rounds
        self.folder = tempfile.mkdtemp(prefix="edgebench-prefixes-",
                                       dir=scratch_dir(self.per_group * len(data)))
        self.rng = np.random.default_rng(SHUFFLE_SEED)
        self.group, self.input = [], None  # [(k, session)]
        self.pairs, self.providers, self.failed, self.why = {}, {}, [], None

    def add(self, k: int) -> None:
        """Load prefix k (a failed load or first invoke: the op is not timed apart)."""
        path = os.path.join(self.folder, "prefix%d.tflite" % (k + 1))
        write_cut(path, self.data, k,
                  live_outputs(self.ops, k, self.model_outputs) if k >= 0 else None)
        try:
            session = self.make_session(dict(self.job, path=path), self.started)
            if self.input is None:
                self.input = self.make_input(session)
            session.set_input(self.input)
            for _ in range(WARMUP_INVOKES):
                session.invoke()
        except Exception as exc:
            self.failed.append(k)
            self.why = self.why or one_line(exc, 160)
            return
        finally:
            os.remove(path)
        self.providers[k] = provider_of(self.job, session, k) if k >= 0 else None
        self.group.append((k, session))
        if len(self.group) >= self.per_group:
            self.flush()

    def flush(self) -> None:
        """Time the group; its last prefix stays loaded as the next group's first."""
        if len(self.group) >= 2:
            enabled = gc.isenabled()
            gc.disable()
            try:
                times = time_rounds([s for _, s in self.group], self.rounds, self.rng)
            finally:
                if enabled:
                    gc.enable()
            for j in range(1, len(self.group)):
                self.pairs[self.group[j][0]] = (times[:, j - 1], times[:, j])
        del self.group[:-1]
        gc.collect()


def rounds_for(job: dict, row_ms: float, cuts: int) -> int:
    """--profile-ops N rounds, fewer where a round's cost (REPS invokes of every prefix, taken
    as growing evenly from nothing to the row's own fastest time) would take the rounds past
    BUDGET_S, never fewer than MIN_ROUNDS."""
    round_s = REPS * row_ms / 1e3 * cuts / 2.0
    fit = int(BUDGET_S / round_s) if round_s > 0 else MIN_ROUNDS
    return min(int(job["profile_ops"]), max(MIN_ROUNDS, fit))


def profile_litert(job: dict, started, make_input, row_ms: float) -> tuple:
    """(the LiteRT row's profile lines, its note's tail), one line per operator of subgraph 0;
    row_ms: the row's fastest inference, what sets the rounds (rounds_for)."""
    with open(job["path"], "rb") as fh:
        data = fh.read()
    ops = read_ops(data)
    if not ops:
        raise RuntimeError("the model has no operators")
    cuts = [-1] + [op.index for op in ops if op.on_input]
    timer = PrefixTimer(job, started, make_input, data, len(cuts),
                        rounds_for(job, row_ms, len(cuts)))
    try:
        for k in cuts:
            timer.add(k)
        timer.flush()
    finally:
        shutil.rmtree(timer.folder, ignore_errors=True)
    if -1 in timer.failed or not timer.pairs:
        raise RuntimeError("the %s did not load: %s" % (
            "empty prefix" if -1 in timer.failed else "prefixes", timer.why))
    lines = []
    for op in ops:
        # a fused op's output is named after every op fused into it, ";"-separated
        name = ("op%d %s" % (op.index, op.output_name.split(";")[0]))[:NODE_NAME_CHARS]
        pair = timer.pairs.get(op.index)
        if pair is None:  # on constants only, or its cut failed: timed with the next op
            lines.append(node_line((name, op.op_type, ""), 0, 0.0, 0.0, 0.0, 0.0))
            continue
        lines.append(node_line((name, op.op_type, timer.providers[op.index]), len(pair[0]),
                               *fastest_difference(*pair), resolution_ms=0.0))
    tail = ["prefix cuts, %d rounds" % timer.rounds]
    constant = len(ops) - len(cuts) + 1
    if constant or timer.failed:
        tail.append("%d ops not timed apart (%d on constants only, %d whose prefix failed)"
                    % (constant + len(timer.failed), constant, len(timer.failed)))
    if any(p.endswith(":xnnpack") for p in timer.providers.values() if p):
        tail.append("XNNPACK partitions each prefix anew")
    return finish(lines), ", ".join(tail)
