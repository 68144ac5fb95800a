"""Conversion benchmark: for each model, train briefly on the phantom, then time every stage of
PyTorch -> ONNX -> onnx2tf SavedModel -> the TFLite recipes, and verify each recipe on the test
split through LiteRT. Prints Markdown tables and writes conversion.json in --out. With int8-mixed
among the recipes (the default) it also prints int8, int8-mixed and fp32 side by side: float
layers kept, agreement, size, and p50 latency measured here, interleaved (LiteRT, 1 thread).

    python benchmarks/conversion.py --models resnet18,googlenet,vgg16,mobilenet_v2 --img-size 64

The figures in benchmarks/README.md ("Conversion", "Mixed precision") come from this script."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bench_model(name: str, args) -> dict:
    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.data import load_splits
    from edgebench.host.export.calibration import draw
    from edgebench.host.export.mixed import MixedOptions
    from edgebench.host.export.pipeline import convert_checkpoint, record_verification, reference_for
    from edgebench.host.export.quantize import QuantizeOptions, quantize
    from edgebench.host.export.recipes import parse_recipes
    from edgebench.host.export.verify import normalize
    from edgebench.host.train import TrainConfig, train

    out = args.out / f"{name}-{args.img_size}px"
    ckpt = out / "best.pt"
    t0 = time.perf_counter()
    if args.reuse and ckpt.is_file():
        train_s = None
    else:
        res = train(TrainConfig(model=name, data=args.data, epochs=args.epochs, img_size=args.img_size,
                                lr=args.lr, seed=args.seed, out=out), progress=False)
        ckpt = res.checkpoint
        train_s = time.perf_counter() - t0
    model, meta = build_from_checkpoint(ckpt)
    splits = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed)
    test_images, test_labels = splits["test"]
    conv = convert_checkpoint(ckpt, out, verify_images=test_images, verify_labels=test_labels,
                              loaded=(model, meta))
    calib = normalize(draw(splits["train"][0], args.calib, 0), conv.source.normalization)
    verify = reference_for(conv.source, test_images, test_labels, model=model)
    t1 = time.perf_counter()
    recipes = [r for r in parse_recipes(args.recipes) if r != "fp32"]
    mixed = MixedOptions(args.keep_float, args.target_agreement, args.max_float).check()
    results = [conv.fp32] + quantize(conv.saved_model, recipes, calib, out, conv.source,
                                     QuantizeOptions(verify=verify, progress=not args.quiet,
                                                     debug=True, mixed=mixed))
    quant_wall = time.perf_counter() - t1
    record_verification(out, results, name)
    fp32 = next(r.size_bytes for r in results if r.recipe == "fp32")
    by = {r.recipe: r for r in results if r.status == "ok"}
    side = None
    if "int8-mixed" in by and "int8" in by:
        side = side_by_side([by[r] for r in ("int8", "int8-mixed", "fp32")], args.rounds)
    return {
        "model": name, "img_size": args.img_size, "epochs": args.epochs, "train_s": train_s,
        "test_accuracy_torch": float((verify.reference.argmax(1) == test_labels).mean()),
        "n_test": int(len(test_labels)), "n_calib": int(len(calib)),
        "stages_s": conv.timings, "quantize_and_verify_wall_s": quant_wall,
        "notes": conv.notes,
        "recipes": [{"recipe": r.recipe, "status": r.status, "error": r.error,
                     "convert_s": round(r.seconds, 2), "size_bytes": r.size_bytes,
                     "size_ratio": (r.size_bytes / fp32) if r.size_bytes else None,
                     **{k: (r.verification or {}).get(k)
                        for k in ("max_abs_diff", "agreement", "accuracy")}}
                    for r in results],
        "worst_layers": by["int8"].extra.get("worst_layers") if "int8" in by else None,
        "side_by_side": side,
    }


def side_by_side(results, rounds: int) -> list[dict]:
    """int8, int8-mixed and fp32: float layers, agreement, size and p50 (ms). Latency: each
    round times every model in turn (warm-up, then >= 50 invokes and >= 0.5 s, 1 thread), and
    the p50 reported is the median over rounds; the ratios are per round, then the median."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.host.export.verify import quantize_input

    interps = {}
    for r in results:
        it = Interpreter(model_path=str(r.tflite), num_threads=1)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32)
        it.set_tensor(inp["index"], quantize_input(x, inp))
        for _ in range(10):
            it.invoke()
        interps[r.recipe] = it
    p50s = {r.recipe: [] for r in results}
    for _ in range(rounds):
        for r in results:
            it, samples, t_end = interps[r.recipe], [], time.perf_counter() + 0.5
            while len(samples) < 50 or time.perf_counter() < t_end:
                t0 = time.perf_counter_ns()
                it.invoke()
                samples.append(time.perf_counter_ns() - t0)
            p50s[r.recipe].append(float(np.median(samples)) / 1e6)
    fp32 = p50s["fp32"]
    rows = []
    for r in results:
        m = r.extra.get("mixed") or {}
        census = r.extra.get("census") or {}
        rows.append({"recipe": r.recipe, "float_layers": m.get("k"), "layers": m.get("layers"),
                     "agreement": (r.verification or {}).get("agreement"),
                     "accuracy": (r.verification or {}).get("accuracy"),
                     "size_kib": r.size_bytes / 1024, "p50_ms": float(np.median(p50s[r.recipe])),
                     "p50_vs_fp32": float(np.median([a / b for a, b in zip(p50s[r.recipe], fp32)])),
                     "kind": census.get("kind"), "float_ops": census.get("float_op_count"),
                     "q_dq_pairs": census.get("q_dq_pairs")})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | recipe | status | size KiB | × fp32 | convert s | max abs diff | agreement | accuracy |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for r in row["recipes"]:
            f = lambda v, s: format(v, s) if isinstance(v, (int, float)) else "-"  # noqa: E731
            lines.append(f"| {row['model']} | {r['recipe']} | {r['status']} | "
                         f"{f(r['size_bytes'] and r['size_bytes'] / 1024, '.0f')} | "
                         f"{f(r['size_ratio'], '.3f')} | {f(r['convert_s'], '.1f')} | "
                         f"{f(r['max_abs_diff'], '.1e')} | {f(r['agreement'], '.3f')} | "
                         f"{f(r['accuracy'], '.3f')} |")
    lines += ["", "| model | train s | onnx export s | onnx2tf s | fp32 tflite s | recipes + verify s | torch test acc | n test |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        s = row["stages_s"]
        tr = f"{row['train_s']:.0f}" if row["train_s"] else "-"
        lines.append(f"| {row['model']} | {tr} | {s['onnx_export_s']:.1f} | {s['onnx2tf_s']:.1f} | "
                     f"{s['tflite_s']:.1f} | {row['quantize_and_verify_wall_s']:.0f} | "
                     f"{row['test_accuracy_torch']:.3f} | {row['n_test']} |")
    sides = [row for row in rows if row.get("side_by_side")]
    if sides:
        lines += ["", "| model | recipe | float layers | agreement | accuracy | size KiB | p50 ms "
                      "| p50 × fp32 | census |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in sides:
            for r in row["side_by_side"]:
                k = f"{r['float_layers']} of {r['layers']}" if r["float_layers"] is not None else "-"
                census = f"{r['kind']}, {r['float_ops']} float ops, {r['q_dq_pairs']} Q/DQ pairs"
                lines.append(f"| {row['model']} | {r['recipe']} | {k} | {r['agreement']:.3f} | "
                             f"{r['accuracy']:.3f} | {r['size_kib']:.0f} | {r['p50_ms']:.3f} | "
                             f"{r['p50_vs_fp32']:.2f} | {census} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,googlenet,vgg16,mobilenet_v2")
    p.add_argument("--data", default="phantom")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib", type=int, default=200)
    p.add_argument("--recipes", default="all", help="recipes to build (default all, int8-mixed too)")
    p.add_argument("--keep-float", type=int, default=None, help="int8-mixed: K float layers")
    p.add_argument("--target-agreement", type=float, default=None,
                   help="int8-mixed: target agreement (default 0.99)")
    p.add_argument("--max-float", type=int, default=None, help="int8-mixed: bound on K")
    p.add_argument("--rounds", type=int, default=5, help="latency rounds for the side-by-side")
    p.add_argument("--out", type=Path, default=Path("runs/bench-conversion"))
    p.add_argument("--reuse", action="store_true", help="reuse checkpoints already in --out")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--converters", default=None,
                   help="e.g. onnx2tf,litert-torch: both routes side by side instead "
                        "(conversion_routes.py)")
    args = p.parse_args(argv)
    if args.converters:
        return _routes(args)
    rows = []
    for name in args.models.split(","):
        print(f"== {name}", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args))
        (args.out / "conversion.json").write_text(json.dumps(
            {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
             "load_average": os.getloadavg(), "results": rows}, indent=2, default=str))
    print(markdown(rows))
    return 0


def _routes(args) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conversion_routes import bench_routes, markdown as routes_markdown

    from edgebench.host.export.converters import parse_converters

    converters = parse_converters(args.converters)
    rows = []
    for name in args.models.split(","):
        print(f"== {name}", file=sys.stderr, flush=True)
        rows.append(bench_routes(name, args, converters))
        (args.out / "conversion_routes.json").write_text(json.dumps(
            {"machine": platform.machine(), "cpus": os.cpu_count(),
             "load_average": os.getloadavg(), "results": rows}, indent=2, default=str))
    print(routes_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
