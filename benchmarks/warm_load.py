"""Why a warm load (the model loaded a second time in the row's child) can be slower than the cold
one (issue 32): loads a model cold in a fresh process, runs a few invokes (the agent's timed loop
stands there), then loads it twice more, either with the earlier sessions still alive ("alive",
what the agent did) or after releasing them ("released": del + gc.collect()). Each load is what
the agent times: its InterpreterSession (Interpreter construction + allocate_tensors, where
XNNPACK is applied), recorded with its minor page faults and the RSS after it.

    python benchmarks/warm_load.py --make .cache/warm-load          # VGG-/GoogLeNet-ish, 64 px
    python benchmarks/warm_load.py .cache/warm-load/*.tflite --repeats 7
    python benchmarks/warm_load.py --touch-gb 6      # what one page fault costs, fresh or not

Prints, per model and variant, the medians over the repeats (each a fresh process, variants
interleaved) and warm/cold, the ratio of the second load to the first."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, json, resource, sys, time
from edgebench.device.runtimes import import_runtime
from edgebench.device.agent.sessions import InterpreterSession
from edgebench.device.agent.timing import memory_mb, model_input

path, variant, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
job = {"unit": {"delegate": None, "api": "interpreter"}, "runtime": "litert", "path": path,
       "threads": threads, "xnnpack": True, "input": {}, "testset": None}
module = import_runtime("litert")[0]

def load():
    gc.collect()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter_ns()
    session = InterpreterSession(job, module)
    ms = (time.perf_counter_ns() - t0) / 1e6
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return session, {"ms": ms, "faults": faults, "rss_mb": memory_mb()[0]}

sessions, loads = [], []
for i in range(3):
    if variant == "released":
        del sessions[:]
    session, figures = load()
    loads.append(figures)
    if i == 0:  # the agent's timed loop runs on the cold session before the warm load
        session.set_input(model_input(session, job))
        for _ in range(10):
            session.invoke()
    sessions.append(session)
    del session
print(json.dumps(loads))
"""
VARIANTS = ("alive", "released")
TOUCH = r"""
import mmap, resource, sys, time
chunk, n = 256 << 20, int(sys.argv[1])
for p in range(2):
    maps, cost = [], []
    for _ in range(n):
        m = mmap.mmap(-1, chunk)
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for off in range(0, chunk, 4096):
            m[off] = 1
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        cost.append((time.perf_counter() - t0) * 1e6 / faults)
        maps.append(m)
    print("pass %d: us per minor fault, 256 MB chunks: %s" % (p + 1, " ".join("%.1f" % c for c in cost)))
    for m in maps:
        m.close()
"""


def touch(gb: float) -> None:
    """The cost of a page fault on memory this process never had, twice over the same amount: on
    a VM, pass 1 may land on guest memory the hypervisor never backed (its own fault on top),
    pass 2 gets pages the kernel just took back, backed already."""
    subprocess.run([sys.executable, "-c", TOUCH, str(max(1, int(gb * 4)))], check=True)


def make_models(out: Path, img: int = 64) -> None:
    """VGG16-ish (the conv stack, 1024-1024 head: ~18 M weights, like the repo's vgg16) and
    GoogLeNet-ish (Inception v1 + the extra 1024 conv: ~15 M), random weights, fp32 and fp16."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers

    def conv(x, c, k, s=1):
        return layers.Conv2D(c, k, s, padding="same", activation="relu")(x)

    def inception(x, c1, c3r, c3, c5r, c5, pp):
        b4 = conv(layers.MaxPooling2D(3, 1, padding="same")(x), pp, 1)
        return layers.Concatenate()([conv(x, c1, 1), conv(conv(x, c3r, 1), c3, 3),
                                     conv(conv(x, c5r, 1), c5, 5), b4])

    inp = tf.keras.Input((img, img, 1), batch_size=1)
    x = inp
    for c, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            x = conv(x, c, 3)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dense(1024, activation="relu")(layers.Flatten()(x))
    vgg = tf.keras.Model(inp, layers.Dense(2)(layers.Dense(1024, activation="relu")(x)))

    pool = layers.MaxPooling2D(3, 2, padding="same")
    x = layers.MaxPooling2D(3, 2, padding="same")(conv(inp, 64, 7, 2))
    x = pool(conv(conv(x, 64, 1), 192, 3))
    x = inception(inception(x, 64, 96, 128, 16, 32, 32), 128, 128, 192, 32, 96, 64)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for spec in ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
                 (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                 (256, 160, 320, 32, 128, 128)):
        x = inception(x, *spec)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = inception(inception(x, 256, 160, 320, 32, 128, 128), 384, 192, 384, 48, 128, 128)
    x = layers.GlobalAveragePooling2D()(conv(x, 1024, 3))
    googlenet = tf.keras.Model(inp, layers.Dense(2)(x))

    out.mkdir(parents=True, exist_ok=True)
    for name, model in (("vgg", vgg), ("googlenet", googlenet)):
        saved = out / f"{name}_saved"
        model.export(str(saved), verbose=False)
        for recipe in ("fp32", "fp16"):
            conv_ = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            if recipe == "fp16":
                conv_.optimizations = [tf.lite.Optimize.DEFAULT]
                conv_.target_spec.supported_types = [tf.float16]
            (out / f"{name}.{recipe}.tflite").write_bytes(conv_.convert())
        print(f"{name}: {model.count_params():,} weights")


def one_child(path: Path, variant: str, threads: int) -> list:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), variant, str(threads)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(path: Path, runs: dict) -> list:
    lines = []
    for variant in VARIANTS:
        loads = runs[variant]  # [repeat][load] -> figures
        med = [dict((k, statistics.median(r[i][k] for r in loads)) for k in loads[0][i])
               for i in range(3)]
        ratio = statistics.median(r[1]["ms"] / r[0]["ms"] for r in loads)
        lines.append("| %s | %s | %s | %.3g | %s | %s |" % (
            path.stem, variant, " / ".join("%.1f" % m["ms"] for m in med), ratio,
            " / ".join("%d" % (m["faults"] / 1000) for m in med),
            " / ".join("%.0f" % m["rss_mb"] for m in med)))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--make", type=Path, help="build the models into this folder and stop")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--touch-gb", type=float, help="time page faults on this much fresh memory "
                    "(twice) and stop")
    args = ap.parse_args(argv)
    if args.make:
        make_models(args.make)
        return 0
    if args.touch_gb:
        touch(args.touch_gb)
        return 0
    print("| model | variant | load ms: cold / 2nd / 3rd (median) | 2nd/cold (median) "
          "| minor faults (k): cold / 2nd / 3rd | RSS after (MB): cold / 2nd / 3rd |")
    print("|---|---|---|---:|---|---|")
    for path in args.models:
        runs = dict((v, []) for v in VARIANTS)
        for _ in range(args.repeats):
            for variant in VARIANTS:  # interleaved: drift on a shared machine hits both alike
                runs[variant].append(one_child(path, variant, args.threads))
        print("\n".join(summarize(path, runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
