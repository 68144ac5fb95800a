"""The registries, from the registries themselves: every entry of every table a name is looked up
in (models, data sets, recipes, converters, profiles, targets, compute units, runtimes, power
sources, corruptions, emulated images, and compare's fields and metrics), with what each entry
needs. A new entry appears here without anyone writing it down."""
from __future__ import annotations

from pathlib import Path

import md

REPO = Path(__file__).resolve().parents[2]


def _models():
    from edgebench.models import MODELS
    rows = [(md.code(n), md.text(s.summary), md.code(s.alias_of) if s.alias_of else "")
            for n, s in MODELS.items()]
    return ("Models", "--model / --models", "models/__init__.py",
            "Every model is built as `build(in_channels, num_classes)`, takes any input of at "
            "least 32 px and ends in global average pooling and one Linear layer; it needs "
            "nothing beyond torch.",
            md.table(("name", "what it is", "alias of"), rows))


def _datasets():
    from edgebench.host.data import DATASETS
    rows = [(md.code(n), md.code(s.usage), "an argument" if s.needs_arg else "nothing",
             md.text(s.summary.split("  ", 1)[-1])) for n, s in DATASETS.items()]
    return ("Data sets", "--data", "host/data/__init__.py",
            "A data spec is `NAME[:PATH or :N]`, optionally ending in `@TRAIN/VAL/TEST` (image "
            "counts of the split). No data set is downloaded.",
            md.table(("name", "spec", "needs", "what it reads"), rows))


def _recipes():
    from edgebench.host.export.converters import CONVERTERS
    from edgebench.host.export.recipes import DEFAULT_RECIPES, RECIPES
    rows = []
    for n, r in RECIPES.items():
        without = [c for c, conv in CONVERTERS.items() if n in conv.unsupported]
        rows.append((md.code(n), md.text(r.summary),
                     "calibration images" if r.calibrated else "nothing",
                     "yes" if n in DEFAULT_RECIPES else "",
                     ", ".join(md.code(c) for c in without)))
    return ("Recipes", "--recipes", "host/export/recipes.py",
            "Post-training quantization recipes, in the order they are built and reported. "
            "Calibration images come from `--calib N` of the training split, `--calib-data` or "
            "`--data`.",
            md.table(("name", "what it builds", "needs", "in quantize's default",
                      "not built by"), rows))


def _converters():
    from edgebench.host.export.converters import CONVERTERS, DEFAULT_CONVERTER
    rows = []
    for n, c in CONVERTERS.items():
        cannot = "; ".join(f"{md.code(r)}: {md.text(why)}" for r, why in c.unsupported.items())
        if c.debug_unsupported:
            cannot = "; ".join(x for x in (cannot, md.text(c.debug_unsupported)) if x)
        rows.append((md.code(n) + (" (default)" if n == DEFAULT_CONVERTER else ""),
                     md.text(c.summary), md.code(c.model_file("resnet18", "int8")), cannot))
    return ("Converters", "--converter", "host/export/converters/__init__.py",
            "Conversion routes from a PyTorch checkpoint. litert-torch runs in a virtual "
            "environment of its own, created on first use from "
            "`host/export/converters/litert_requirements.txt` (see "
            "[conversion](../conversion.md)).",
            md.table(("name", "route", "file of resnet18's int8", "cannot build"), rows))


def _profiles():
    from dataclasses import asdict

    from edgebench.host.profiles import PROFILES
    names = list(PROFILES)
    settings = {n: asdict(p) for n, p in PROFILES.items()}
    summaries = md.table(("name", "what it is"),
                         [(md.code(n), md.text(p.summary)) for n, p in PROFILES.items()])
    keys = [k for k in settings[names[0]] if k not in ("name", "summary")]
    values = md.table(["setting"] + [md.code(n) for n in names],
                      [[md.code(k)] + [md.code(settings[n][k]) for n in names] for k in keys])
    return ("Profiles", "--profile", "host/profiles.py",
            "Named settings of every stage of `bench-host run`; a command-line option wins over "
            "the profile's value.", summaries + "\n\n" + values)


def _targets():
    from edgebench.host.targets import TARGETS
    rows = [(md.code(n), md.text((f.__doc__ or "").strip().split("\n\n")[0])) for n, f in
            TARGETS.items()]
    return ("Targets", "--target", "host/targets/__init__.py",
            "`--target local | user@host[:port] | ALIAS | labgrid:PLACE`, repeatable; "
            "`--inventory FILE` (TOML or Ansible INI) for a fleet.",
            md.table(("kind", "what it reaches"), rows))


def _units():
    from edgebench.device.units import COMPUTE_UNITS
    rows = [(md.code(n), md.code(u["api"]), md.text(u["help"])) for n, u in COMPUTE_UNITS.items()]
    rows.append((md.code("gpu!") + ", " + md.code("npu!"), md.code("compiled_model"),
                 "the same, and an error row unless the whole model runs on the accelerator"))
    rows.append((md.code("--delegate LIB[:key=value;...]"), md.code("interpreter"),
                 "the Interpreter with an external delegate (Edge TPU, Arm NN, NXP VX, ...)"))
    return ("Compute units", "--accelerators", "device/units.py",
            "`gpu` and `npu` need LiteRT's CompiledModel (ai-edge-litert >= 2.3).",
            md.table(("unit", "API", "what runs the model"), rows))


def _runtimes():
    from edgebench.device.runtimes import FILE_RUNTIMES, RUNTIME_HELP, RUNTIMES
    rows = [(md.code(n), md.code(RUNTIMES[n][1]) if n in RUNTIMES else "", md.text(h))
            for n, h in RUNTIME_HELP.items()]
    for suffix, spec in FILE_RUNTIMES.items():
        rows.append((md.code(spec["name"]) + f" (every {md.code(suffix)} model)",
                     md.code(spec["install"]), md.text(spec["help"])))
    return ("Runtimes", "--runtime", "device/runtimes.py",
            "The runtime of the `.tflite` rows; a model's file format can fix its own.",
            md.table(("name", "package", "what it is"), rows))


def _power():
    from edgebench.device.power import POWER_SOURCES
    from edgebench.device.power.sources import Command
    rows = [(md.code("none"), "", "no power measured (the default)"),
            (md.code("auto"), "", "the first of " + ", ".join(md.code(n) for n in POWER_SOURCES)
             + " that works on the device; the row says which")]
    rows += [(md.code(n), "energy counter" if s.counter else "power", md.text(s.needs))
             for n, s in POWER_SOURCES.items()]
    rows.append((md.code("cmd:COMMAND"), "power", md.text(Command.needs)))
    return ("Power sources", "--power", "device/power/",
            "What each source needs on the device, and what its board figure covers.",
            md.table(("source", "reads", "needs; board figure"), rows))


def _corruptions():
    from edgebench.host.data.corruptions import CORRUPTIONS, PROTOCOL_SIZE, SOURCE, _same
    rows = [(md.code(n), md.text(c.help), md.text(c.parameter),
             ", ".join(md.text(s) for s in c.severities),
             "scaled by size/%d" % PROTOCOL_SIZE if c.at_size is not _same else "as given")
            for n, c in CORRUPTIONS.items()]
    return ("Corruptions", "--robustness", "host/data/corruptions.py",
            md.text(f"Source: {SOURCE}. `all` is every corruption; `NAME:1+5` picks severities."),
            md.table(("name", "what it does", "parameter", "severity 1 ... 5",
                      "at another image size"), rows))


def _images():
    from edgebench.host.emulate.images import IMAGES
    rows = [(md.code(n), md.text(i.summary), ", ".join(md.code(w) for w in i.wheels))
            for n, i in IMAGES.items()]
    return ("Emulated images", "bench-host emulate start --image", "host/emulate/images.py",
            "Debian arm64 userlands run under qemu-user (see [devices](../devices.md)).",
            md.table(("name", "what it is", "wheels installed"), rows))


def _compare():
    from edgebench.host.compare.gate import METRICS
    from edgebench.host.compare.pairs import DEFAULT_MATCH, MATCH_FIELDS
    fields = md.table(("field", "what it matches", "default"), [
        (md.code(n), md.text(w), "yes" if n in DEFAULT_MATCH else "")
        for n, w in MATCH_FIELDS.items()])
    metrics = md.table(("metric", "unit", "what it is"), [
        (md.code(n), md.text(m[0]), md.text(m[3])) for n, m in METRICS.items()])
    return ("Compare: fields and gate metrics", "--match, --fail-if", "host/compare/",
            "Rows of two runs pair up when these fields are equal; `--fail-if METRIC>THRESHOLD` "
            "rules use these metrics.", fields + "\n\n" + metrics)


SECTIONS = (_models, _datasets, _recipes, _converters, _profiles, _targets, _units, _runtimes,
            _power, _corruptions, _images, _compare)


def page() -> str:
    out = ["# Registries", "",
           "Generated from the registries when the site is built (`docs/hooks/"
           "registry_reference.py`). Every option that takes a registry name answers `help` on "
           "every command that has it, without the command's other arguments: "
           "`bench-host quantize --recipes help`.", ""]
    for section in SECTIONS:
        title, flag, where, intro, body = section()
        out += [f"## {title}", "", f"{md.code(flag)} · defined in {md.code(where)}", "", intro, "",
                body, ""]
    return "\n".join(out)
