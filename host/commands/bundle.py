"""`bench-host bundle MODELS_DIR --out BUNDLE_DIR`: pack models, test set, references and the agent
into a folder the device can run on its own."""
from __future__ import annotations

from pathlib import Path

from edgebench.device.schema import MANIFEST_JSON
from edgebench.host.commands.registry_args import add_registry_option


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle", help="pack models + test set + agent + manifest into a bundle folder",
        description="Search MODELS_DIR recursively for .tflite models and their .json model "
                    "cards; write BUNDLE_DIR with models/, testset.npz, reference/, agent.pyz and "
                    f"{MANIFEST_JSON}. A .tflite without a card is timed and measured; it gets "
                    "accuracy only with --testset.")
    p.add_argument("models_dir", metavar="MODELS_DIR", type=Path,
                   help="folder that convert/quantize wrote (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="BUNDLE_DIR",
                   help="bundle folder to create (a previous bundle there is replaced)")
    p.add_argument("--testset", type=Path, metavar="FILE.npz", default=None,
                   help="test set (images uint8 N×H×W×C, labels, class_names); default: "
                        "re-derived from the model cards' source")
    p.add_argument("--run-id", default=None, help="the bundle's id, bundle_id in every row it is "
                   "measured into (each deploy of it is a run with an id of its own; default: a "
                   "UTC timestamp)")
    add_registry_option(p, "--robustness", metavar="NAMES|all", default=None,
                        help="also write the test set under MedMNIST-C's breast-ultrasound "
                             "corruptions, five severities each ('all', a list, NAME:1+5 for chosen "
                             "severities; 'help' lists them)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.device.manifest import Manifest
    from edgebench.host.bundle import build_bundle
    from edgebench.host.data import corruptions
    from edgebench.host.export.census import summary_line

    robustness = corruptions.parse(args.robustness) if args.robustness else None
    out = build_bundle(args.models_dir, args.out, testset=args.testset, run_id=args.run_id,
                       robustness=robustness)
    manifest = Manifest.load(out)
    for entry in manifest.models:
        print(f"  {entry['name']:<28} {entry['recipe']:<10} {entry['size_bytes'] / 1024:8.1f} KiB"
              f"  reference: {entry['reference'] or '-'}")
        if entry.get("census"):
            print(f"  {'':<28} ops: {summary_line(entry['census'])}")
    sets = (manifest.robustness or {}).get("sets", [])
    print(f"bundle {manifest.run_id}: {len(manifest.models)} model(s), test set "
          f"{manifest.testset or 'none'}"
          + (f", {len(sets)} corrupted set(s)" if sets else "") + f" -> {out}")
    return 0
