"""Conversion benchmark: for each model, train briefly on the phantom, then time every stage of
PyTorch -> ONNX -> onnx2tf SavedModel -> five TFLite recipes, and verify each recipe on the test
split through LiteRT. Prints a Markdown table and writes conversion.json in --out.

    python benchmarks/conversion.py --models resnet18,googlenet,vgg16,mobilenet_v2 --img-size 64

The figures in benchmarks/README.md ("Conversion") come from this script."""
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
    import numpy as np

    from edgebench.host.data import load_splits
    from edgebench.host.export.pipeline import convert_checkpoint, record_verification, reference_for
    from edgebench.host.export.quantize import quantize
    from edgebench.host.export.recipes import RECIPES
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
    from edgebench.host.checkpoint import load_checkpoint

    meta, _ = load_checkpoint(ckpt)
    splits = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed)
    test_images, test_labels = splits["test"]
    conv = convert_checkpoint(ckpt, out, verify_images=test_images, verify_labels=test_labels)
    train_images = splits["train"][0]
    pick = np.sort(np.random.default_rng(0).choice(len(train_images), min(args.calib, len(train_images)),
                                                   replace=False))
    calib = normalize(train_images[pick], conv.source.normalization)
    verify = reference_for(conv.source, test_images, test_labels)
    t1 = time.perf_counter()
    results = quantize(conv.saved_model, list(RECIPES), calib, out, conv.source, verify=verify,
                       progress=not args.quiet)
    quant_wall = time.perf_counter() - t1
    record_verification(out, results, name)
    fp32 = next(r.size_bytes for r in results if r.recipe == "fp32")
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
    }


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
    lines += ["", "| model | train s | onnx export s | onnx2tf s | fp32 tflite s | 5 recipes + verify s | torch test acc | n test |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        s = row["stages_s"]
        tr = f"{row['train_s']:.0f}" if row["train_s"] else "-"
        lines.append(f"| {row['model']} | {tr} | {s['onnx_export_s']:.1f} | {s['onnx2tf_s']:.1f} | "
                     f"{s['tflite_s']:.1f} | {row['quantize_and_verify_wall_s']:.0f} | "
                     f"{row['test_accuracy_torch']:.3f} | {row['n_test']} |")
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
    p.add_argument("--out", type=Path, default=Path("runs/bench-conversion"))
    p.add_argument("--reuse", action="store_true", help="reuse checkpoints already in --out")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        print(f"== {name}", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args))
        (args.out / "conversion.json").write_text(json.dumps(
            {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
             "results": rows}, indent=2))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
