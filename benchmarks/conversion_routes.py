"""Both conversion routes side by side (`conversion.py --converters onnx2tf,litert-torch`): one
checkpoint per model, every recipe each route builds, the same calibration and test images;
conversion time (torch.export / ONNX + onnx2tf upstream, then the TFLite step per recipe), size,
agreement and max |Δ| against PyTorch, and p50 measured here (LiteRT, 1 thread, every model of a
model's table timed in turn per round, the median over rounds)."""
from __future__ import annotations

import time
from pathlib import Path


def bench_routes(name: str, args, converters: list[str]) -> dict:
    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.data import load_splits
    from edgebench.host.export.calibration import draw
    from edgebench.host.export.converters.env import ensure_env
    from edgebench.host.export.pipeline import (checkpoint_source, convert_checkpoint,
                                                record_verification, reference_for)
    from edgebench.host.export.quantize import QuantizeOptions, quantize
    from edgebench.host.export.recipes import parse_recipes
    from edgebench.host.export.verify import normalize
    from edgebench.host.train import TrainConfig, train

    for c in converters:
        if c != "onnx2tf":
            ensure_env(c)
    out = args.out / f"{name}-{args.img_size}px"
    ckpt = out / "best.pt"
    if not (args.reuse and ckpt.is_file()):
        ckpt = train(TrainConfig(model=name, data=args.data, epochs=args.epochs,
                                 img_size=args.img_size, lr=args.lr, seed=args.seed, out=out),
                     progress=False).checkpoint
    model, meta = build_from_checkpoint(ckpt)
    splits = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed)
    test_images, test_labels = splits["test"]
    recipes = [r for r in parse_recipes(args.recipes) if r != "int8-mixed"]
    rows, results = [], []
    source = checkpoint_source(ckpt, meta)
    calib = normalize(draw(splits["train"][0], args.calib, 0), source.normalization)
    verify = reference_for(source, test_images, test_labels, model=model)
    for conv in converters:
        t0 = time.perf_counter()
        upstream = 0.0
        if conv == "onnx2tf":
            c = convert_checkpoint(ckpt, out, loaded=(model, meta))
            source, upstream = c.source, c.source.upstream_seconds
        mine = quantize(Path(source.saved_model), recipes, calib, out, source,
                        QuantizeOptions(verify=verify, progress=not args.quiet, converter=conv,
                                        model=model))
        wall = time.perf_counter() - t0
        results += mine
        for r in mine:
            v = r.verification or {}
            rows.append({"converter": conv, "recipe": r.recipe, "status": r.status,
                         "error": r.error, "upstream_s": round(upstream, 2),
                         "tflite_s": round(r.seconds, 2), "route_wall_s": round(wall, 1),
                         "size_bytes": r.size_bytes, "max_abs_diff": v.get("max_abs_diff"),
                         "agreement": v.get("agreement"), "accuracy": v.get("accuracy"),
                         "tflite": str(r.tflite) if r.tflite else None})
    record_verification(out, results, name)
    p50 = latencies([r for r in rows if r["status"] == "ok"], args.rounds)
    for r in rows:
        r["p50_ms"] = p50.get(r["tflite"])
    return {"model": name, "img_size": args.img_size, "n_test": int(len(test_labels)),
            "n_calib": int(len(calib)), "routes": rows}


def latencies(rows: list[dict], rounds: int) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.host.export.verify import quantize_input

    interps = {}
    for r in rows:
        it = Interpreter(model_path=r["tflite"], num_threads=1)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32)
        it.set_tensor(inp["index"], quantize_input(x, inp))
        for _ in range(5):
            it.invoke()
        interps[r["tflite"]] = it
    p50s = {k: [] for k in interps}
    for _ in range(rounds):
        for key, it in interps.items():
            samples, t_end = [], time.perf_counter() + 0.3
            while len(samples) < 30 or time.perf_counter() < t_end:
                t0 = time.perf_counter_ns()
                it.invoke()
                samples.append(time.perf_counter_ns() - t0)
            p50s[key].append(float(np.median(samples)) / 1e6)
    return {k: float(np.median(v)) for k, v in p50s.items()}


def _card_seconds(row: dict):
    """The card's conversion_seconds: everything from the checkpoint to this .tflite (ONNX export
    + onnx2tf + TFLiteConverter, or torch.export + litert-torch + ai-edge-quantizer)."""
    import json

    card = Path(row["tflite"]).with_suffix(".json")
    return json.loads(card.read_text())["conversion_seconds"] if card.is_file() else None


def markdown(results: list[dict]) -> str:
    convs = list(dict.fromkeys(r["converter"] for res in results for r in res["routes"]))
    head = "| model | recipe | " + " | ".join(
        f"{c} {what}" for c in convs for what in ("s", "KiB", "agree", "max abs diff", "p50 ms"))
    lines = [head + " |", "|---|---|" + "---:|" * (5 * len(convs))]
    f = lambda v, s: format(v, s) if isinstance(v, (int, float)) else "-"  # noqa: E731
    for res in results:
        by = {(r["converter"], r["recipe"]): r for r in res["routes"]}
        for recipe in dict.fromkeys(r["recipe"] for r in res["routes"]):
            cells = []
            for c in convs:
                r = by.get((c, recipe))
                if r is None or r["status"] != "ok":
                    cells += [r["status"] if r else "-"] + ["-"] * 4
                    continue
                cells += [f(_card_seconds(r), ".1f"),
                          f(r["size_bytes"] / 1024, ".0f"), f(r["agreement"], ".3f"),
                          f(r["max_abs_diff"], ".1e"), f(r["p50_ms"], ".3f")]
            lines.append(f"| {res['model']} | {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
