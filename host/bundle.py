"""The bundle: everything the device needs, in one folder (DESIGN.md "The bundle").

    bundle/   the manifest (schema.MANIFEST_JSON)   models/*.tflite, *.onnx   testset.npz
              reference/<arch>.npy   agent.pyz

Models are found recursively in MODELS_DIR as `*.tflite` and ONNX Runtime `*.onnx` with a
`<same stem>.json` model card (edgebench.device.schema; read as plain JSON). An `.onnx` without a
card is not a model of ours but the export every route starts from (`convert` leaves
`<arch>.onnx` beside the models): it is left out. A `.tflite` without a card gets one
derived from the file (shapes, dtypes, quantization, via the interpreter). Such a card has no
input normalization unless `--testset` is given, and the agent measures accuracy only with one:
so a bare model gets accuracy only when the user hands in a test set (then its normalization is
taken as pixels/255, mean 0, std 1, `"derived": true` marks the card; write a real card for
anything else). The test set comes from `--testset`, or is re-derived from the cards' `source`
(data spec, image size, split seed) through `edgebench.host.data.load_splits`; all cards must
then agree on one source. Reference logits come from each card's checkpoint when it exists.
The bundle is built in a sibling temporary folder and renamed into place, so a failed build
never leaves half a bundle behind."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.device.manifest import Manifest
from edgebench.device.schema import MANIFEST_JSON, MODEL_CARD_SCHEMA, TESTSET_NPZ, ModelCard
from edgebench.host.agent_archive import write_archive
from edgebench.host.errors import UserError
from edgebench.host.export.model_census import model_census
from edgebench.host.files import sha256_file

DEFAULT_NORMALIZATION = {"pixel_scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}



def derive_card(path: Path, class_names: list[str] | None = None) -> dict:
    """A model card for a .tflite that came without one, read from the file itself."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path))
    except Exception as exc:
        raise UserError(f"{path} is not a readable .tflite model: "
                        f"{' '.join(str(exc).split())[:200]}") from None
    inputs, outputs = interp.get_input_details(), interp.get_output_details()
    if len(inputs) != 1 or not outputs:
        raise UserError(f"{path}: expected one input and an output, found {len(inputs)} inputs")
    i, o = inputs[0], outputs[0]
    n_classes = int(o["shape"][-1])
    return ModelCard(
        name=path.stem, file=path.name, sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        recipe={"int8": "int8", "uint8": "int8", "int16": "int16x8"}.get(
            np.dtype(i["dtype"]).name, "unknown"),
        architecture=path.stem,
        input={"shape": [int(s) for s in i["shape"]], "dtype": np.dtype(i["dtype"]).name,
               "layout": "NHWC", "scale": float(i["quantization"][0]),
               "zero_point": int(i["quantization"][1]),
               "normalization": dict(DEFAULT_NORMALIZATION) if class_names else None},
        output={"shape": [int(s) for s in o["shape"]], "dtype": np.dtype(o["dtype"]).name,
                "scale": float(o["quantization"][0]), "zero_point": int(o["quantization"][1])},
        class_names=class_names or [f"class{k}" for k in range(n_classes)],
        extra={"derived": True},
    ).to_json()


def read_card(card_path: Path, model_path: Path) -> dict:
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read model card {card_path}: {exc}") from None
    if not isinstance(card, dict) or card.get("schema") != MODEL_CARD_SCHEMA:
        raise UserError(f"{card_path} is not a model card (expected schema {MODEL_CARD_SCHEMA})")
    digest = sha256_file(model_path)
    if card.get("sha256") and card["sha256"] != digest:
        raise UserError(f"{card_path} describes another file: its sha256 differs from "
                        f"{model_path.name}'s (re-run quantize, or delete the stale card)")
    card = dict(card, sha256=digest, size_bytes=model_path.stat().st_size)
    card.setdefault("name", model_path.stem)
    return card


def load_testset_file(path: Path) -> dict:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
            names = [str(n) for n in data["class_names"]] if "class_names" in data else None
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"--testset {path}: expected an .npz with images (uint8 N×H×W×C), "
                        f"labels and class_names ({type(exc).__name__}: {exc})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(labels) != len(images):
        raise UserError(f"--testset {path}: images must be uint8 N×H×W[×C] with one label each, "
                        f"got {images.dtype} {images.shape} and {len(labels)} labels")
    if images.ndim == 3:
        images = images[..., None]
    names = names or [f"class{k}" for k in range(int(labels.max()) + 1)]
    return {"images": images, "labels": np.asarray(labels).reshape(-1).astype(np.int64),
            "class_names": names}


def derive_testset(cards: list[dict]) -> dict | None:
    """The test split named by the cards' `source`, or None when no card names one."""
    sources = {}
    for card in cards:
        src = card.get("source") or {}
        if src.get("data_spec") and src.get("img_size") and src.get("split_seed") is not None:
            key = (src["data_spec"], int(src["img_size"]), int(input_hwc(card)[-1]),
                   int(src["split_seed"]))
            sources.setdefault(key, []).append(card["name"])
    if not sources:
        return None
    if len(sources) > 1:
        listing = "; ".join(f"{k[0]} @ {k[1]} px, {k[2]} ch, seed {k[3]}: {', '.join(v)}"
                            for k, v in sources.items())
        raise UserError("the models come from different test sets (" + listing + "); bundle them "
                        "separately or pass --testset")
    from edgebench.host.data import load_splits

    (spec, img_size, channels, seed), = sources
    test = load_splits(spec, img_size, channels, seed)["test"]
    images, labels = _images_labels(test)
    names = next((c.get("class_names") for c in cards if c.get("class_names")), None)
    return {"images": images, "labels": labels,
            "class_names": names or [f"class{k}" for k in range(int(labels.max()) + 1)]}


def _images_labels(split):
    """(uint8 N×H×W×C, int64 N) from whatever the data module returns for a split."""
    if isinstance(split, dict):
        images, labels = split["images"], split["labels"]
    elif hasattr(split, "images"):
        images, labels = split.images, split.labels
    else:
        images, labels = split
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.uint8), np.asarray(labels).reshape(-1).astype(np.int64)


def reference_logits(checkpoint: Path, images: np.ndarray, card: dict) -> np.ndarray:
    """Float logits of the PyTorch model on the test set, normalised as the card says."""
    import torch

    from edgebench.host.checkpoint import build_from_checkpoint

    model, _ = build_from_checkpoint(checkpoint)
    norm = card["input"]["normalization"]
    x = images.astype(np.float32) * np.float32(norm["pixel_scale"])
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 64):
            nchw = np.ascontiguousarray(x[start:start + 64].transpose(0, 3, 1, 2))
            batch = torch.from_numpy(nchw)
            out.append(model(batch).numpy())
    return np.concatenate(out).astype(np.float32)


# model suffix -> whether a file without a card is a model (a .tflite: its card is derived) or
# not one of ours (an .onnx: the export `convert` keeps, or a file no route made)
MODEL_SUFFIXES = {".tflite": True, ".onnx": False}


def find_models(models_dir: Path) -> list[tuple[Path, Path | None]]:
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise UserError(f"models folder not found: {models_dir}")
    found, bare_onnx = [], []
    for p in sorted(p for p in models_dir.rglob("*") if p.suffix in MODEL_SUFFIXES):
        card = p.with_suffix(".json")
        if not p.is_file():
            continue
        if card.is_file() or MODEL_SUFFIXES[p.suffix]:
            found.append((p, card if card.is_file() else None))
        else:
            bare_onnx.append(p.name)
    if not found:
        hint = (f" ({', '.join(bare_onnx[:3])} without a card: `bench-host quantize "
                f"CHECKPOINT --converter ort` builds ONNX Runtime models with theirs)"
                if bare_onnx else "")
        raise UserError(f"no .tflite files or carded .onnx models under {models_dir}{hint}")
    return found


def input_hwc(card: dict) -> list[int]:
    """The model's input image size [H, W, C] whatever its layout (NHWC .tflite, NCHW .onnx)."""
    shape = [int(d) for d in card["input"]["shape"]]
    return shape[2:] + shape[1:2] if card["input"].get("layout") == "NCHW" else shape[1:]


def _checkpoint_of(card: dict) -> Path | None:
    """The card's checkpoint if it still exists; a relative path is tried from the card's own
    folder (what convert writes), then from the working folder (older hand-written cards). A
    file whose sha256 is not the card's checkpoint_sha256 is another checkpoint of that name."""
    src = card.get("source") or {}
    ckpt, sha = src.get("checkpoint"), src.get("checkpoint_sha256")
    if not ckpt:
        return None
    for candidate in (card["_path"].parent / ckpt, Path(ckpt)):
        if candidate.is_file() and (not sha or sha256_file(candidate) == sha):
            return candidate
    return None


def _handed_testset(test: dict, cards: list[dict]) -> dict:
    images, labels = _images_labels(test)
    names = test.get("class_names") or next(
        (c.get("class_names") for c in cards if c.get("class_names")), None)
    return {"images": images, "labels": labels,
            "class_names": names or [f"class{k}" for k in range(int(labels.max()) + 1)]}


def _write_references(cards: list[dict], testset: dict, staging: Path,
                      known: dict) -> dict:
    """reference/<arch>.npy per checkpoint (its logits from `known` when an earlier stage
    computed them, by the checkpoint's resolved path); returns {card name: relative path}."""
    known = {str(Path(k).resolve()): v for k, v in known.items()}
    by_checkpoint, refs, taken = {}, {}, set()
    for card in cards:
        ckpt = _checkpoint_of(card)
        if ckpt is None:
            continue
        if input_hwc(card) != list(testset["images"].shape[1:]):
            continue
        key = str(Path(ckpt).resolve())
        if key not in by_checkpoint:
            stem = card.get("architecture") or "model"
            if stem in taken:  # another checkpoint of the same architecture
                stem = f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
            name = stem
            taken.add(name)
            rel = f"reference/{name}.npy"
            (staging / "reference").mkdir(exist_ok=True)
            logits = known.get(key)
            if logits is None or len(logits) != len(testset["images"]):
                logits = reference_logits(ckpt, testset["images"], card)
            np.save(staging / rel, np.asarray(logits, dtype=np.float32))
            by_checkpoint[key] = rel
        refs[card["name"]] = by_checkpoint[key]
    return refs


def build_bundle(models_dir, out_dir, testset=None, run_id=None, robustness=None,
                 references=None) -> Path:
    """Pack MODELS_DIR's .tflite and .onnx models (+ cards) into OUT_DIR; returns OUT_DIR's path.
    `testset`: an .npz path, or what an earlier stage already loaded ({"images" uint8 NHWC,
    "labels", optionally "class_names"}); `references`: {checkpoint path: float logits on that
    test set} an earlier stage computed, so neither is loaded or computed again here.
    `robustness` (corruptions.parse()'s list) adds the test set under those corruptions."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_JSON).is_file():
        raise UserError(f"{out_dir} exists and is not a bundle; choose an empty or new folder")
    handed = isinstance(testset, dict)
    given = load_testset_file(Path(testset)) if testset and not handed else None

    found = find_models(models_dir)
    cards = []
    for model_path, card_path in found:
        card = (read_card(card_path, model_path) if card_path
                else derive_card(model_path, given["class_names"] if given else None))
        if not card.get("census"):  # a bare model, or a card older than the census
            card["census"] = model_census(model_path)
        card["_path"] = model_path
        cards.append(card)
    names = [c["name"] for c in cards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"two models share the name {', '.join(dupes)} under {models_dir}")

    test = given or (_handed_testset(testset, cards) if handed else derive_testset(cards))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (staging / "models").mkdir()
        if test is not None:
            np.savez(staging / TESTSET_NPZ, images=test["images"], labels=test["labels"],
                     class_names=np.array(test["class_names"]))
        refs = _write_references(cards, test, staging, references or {}) \
            if test is not None else {}
        robust = None
        if robustness:
            if test is None:
                raise UserError("--robustness needs a test set to corrupt (give --testset, or "
                                "bundle models whose cards name their data)")
            from edgebench.host.data.corruptions import write_sets
            robust = write_sets(test["images"], robustness, staging)
        entries = []
        for card in cards:
            src = card.pop("_path")
            rel = f"models/{card['name']}{src.suffix}"
            shutil.copyfile(src, staging / rel)
            entries.append(dict(card, file=rel,
                                reference=refs.get(card["name"])))
        write_archive(staging)
        Manifest(run_id=run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                 created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 testset=TESTSET_NPZ if test is not None else None,
                 models=entries, robustness=robust).dump(staging)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
