"""The bundle's manifest: its type (Manifest), the one writer (Manifest.dump) and the one set of
reading rules the host (deploy, report, database) and the agent all apply (Manifest.load), so a
manifest is refused on either side with the same one-line message. Names and paths end up in
shell commands on the device and in paths joined to the bundle folder, hence the strict rule.
The type lives here rather than in schema.py, beside the checks it loads through, because this
module imports schema.py's constants (schema.py describes the fields)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Optional

from .common import write_atomic
from .schema import MANIFEST_JSON, MANIFEST_SCHEMA

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
# Keys every model entry must have: what the agent needs to find, check and label a model.
MANIFEST_ENTRY_KEYS = ("name", "file", "sha256")


class ManifestError(ValueError):
    """A manifest (or a name or path in it) that cannot be used, as a one-line message."""


def check_name(text, what: str) -> str:
    """A single path component with no shell or path meaning (run ids, model names)."""
    if not isinstance(text, str) or not SAFE_NAME.match(text) or text in (".", ".."):
        raise ManifestError("refusing %s %r: only letters, digits and ._+- are allowed "
                            "(no '/', '..' or shell characters)" % (what, text))
    return text


def check_relpath(rel, what: str = "bundle path") -> str:
    """A relative POSIX path that stays inside its folder once joined to it."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        raise ManifestError("refusing %s %r: it must be a relative path inside the bundle"
                            % (what, rel))
    for part in PurePosixPath(rel).parts:
        check_name(part, what)
    return str(PurePosixPath(rel))


def load_manifest(bundle_dir) -> dict:
    """The bundle's MANIFEST_JSON, checked: a JSON object of MANIFEST_SCHEMA, safe run id and
    model names, model/reference/test-set paths inside the bundle, MANIFEST_ENTRY_KEYS present.
    Raises ManifestError. Entries keep their JSON form (the agent reads them as dicts)."""
    path = os.path.join(os.fspath(bundle_dir), MANIFEST_JSON)
    if not os.path.isfile(path):
        raise ManifestError("%s is not a bundle (no %s); make one with bench-host bundle"
                            % (os.fspath(bundle_dir), MANIFEST_JSON))
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except ValueError as exc:   # JSONDecodeError, UnicodeDecodeError
        raise ManifestError("%s: not valid JSON (%s)" % (path, exc)) from None
    except OSError as exc:
        raise ManifestError("%s: cannot read it (%s)" % (path, exc.strerror or exc)) from None
    if not isinstance(manifest, dict):
        raise ManifestError("%s: not a JSON object (a %s) and so not a manifest"
                            % (path, type(manifest).__name__))
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ManifestError("%s: manifest schema %r, this edgebench reads %s; rebuild the bundle "
                            "with bench-host bundle" % (path, manifest.get("schema"),
                                                        MANIFEST_SCHEMA))
    check_name(manifest.get("run_id"), "run id in manifest")
    if manifest.get("testset") is not None:
        check_relpath(manifest["testset"], "test set path in manifest")
    models = manifest.get("models")
    if not isinstance(models, list) or not models:
        raise ManifestError("%s: lists no models" % path)
    seen = set()
    for number, entry in enumerate(models, 1):
        _check_entry(path, number, entry, seen)
    for item in (manifest.get("robustness") or {}).get("sets") or []:
        check_relpath(item.get("file") if isinstance(item, dict) else item,
                      "corrupted test set in manifest")
    return manifest


def _check_entry(path: str, number: int, entry, seen: set) -> None:
    if not isinstance(entry, dict):
        raise ManifestError("%s: model %d is not a JSON object" % (path, number))
    for key in MANIFEST_ENTRY_KEYS:
        if entry.get(key) in (None, ""):
            raise ManifestError("%s: model %d has no %r" % (path, number, key))
    name = check_name(entry["name"], "model name in manifest")
    if name in seen:
        raise ManifestError("%s: model name %s appears twice" % (path, name))
    seen.add(name)
    check_relpath(entry["file"], "model file of %s" % name)
    if entry.get("reference"):
        check_relpath(entry["reference"], "reference file of %s" % name)


@dataclass
class Manifest:
    """A bundle's manifest (schema.py lists its fields). Model entries stay JSON dicts: a card
    (schema.ModelCard.to_json()) plus its "file" and "reference" in the bundle, as the agent
    reads them."""
    run_id: str
    created: Optional[str]           # ISO 8601 UTC
    testset: Optional[str]           # schema.TESTSET_NPZ or None
    models: list                     # ModelCard.to_json() + {"file", "reference"} each
    robustness: Optional[dict] = None
    schema: str = MANIFEST_SCHEMA

    def to_json(self) -> dict:
        out = {"schema": self.schema, "run_id": self.run_id, "created": self.created,
               "testset": self.testset, "models": self.models}
        if self.robustness:
            out["robustness"] = self.robustness
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        return cls(run_id=data["run_id"], created=data.get("created"),
                   testset=data.get("testset"), models=data["models"],
                   robustness=data.get("robustness"), schema=data["schema"])

    @classmethod
    def load(cls, bundle_dir) -> "Manifest":
        """The manifest of `bundle_dir`, checked by load_manifest's rules (ManifestError)."""
        return cls.from_json(load_manifest(bundle_dir))

    def dump(self, bundle_dir) -> str:
        """Write MANIFEST_JSON into `bundle_dir` atomically (a reader sees the old one or this
        one, never half); returns its path."""
        path = os.path.join(os.fspath(bundle_dir), MANIFEST_JSON)
        write_atomic(path, json.dumps(self.to_json(), indent=1, default=str))
        return path
