"""Reading a bundle on the host: its manifest checked by the agent's own rules
(edgebench.device.manifest) and every file it sends listed with its digest, before anything is
uploaded. host/bundle.py writes bundles; this reads them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgebench.device.manifest import Manifest, ManifestError
from edgebench.device.schema import AGENT_ARCHIVE, MANIFEST_JSON
from edgebench.host.errors import UserError
from edgebench.host.targets.transfer import bundle_file, safe_relpath


@dataclass
class Bundle:
    path: Path
    run_id: str
    files: list            # [BundleFile]
    models: list           # model names

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def content_id(self) -> str:
        """12 hex digits over every file but the manifest (whose `created` stamp changes on each
        rebuild even when nothing measured would)."""
        digest = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.rel):
            if f.rel != MANIFEST_JSON:
                digest.update(f"{f.rel}\0{f.sha256}\n".encode())
        return digest.hexdigest()[:12]



def load_bundle(bundle_dir) -> Bundle:
    """Read and check a bundle: every manifest name and path must stay inside the bundle."""
    root = Path(bundle_dir)
    # The agent's own check (device/manifest.py), so both refuse a manifest with the same words,
    # and a stale or hostile one is refused here before anything is uploaded.
    try:
        manifest = Manifest.load(root)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    files: dict = {}
    names = []
    for entry in manifest.models:
        name = entry["name"]
        names.append(name)
        rel = safe_relpath(entry["file"], f"model file of {name}")
        files[rel] = bundle_file(root, rel, entry.get("sha256"))
        if entry.get("reference"):
            ref = safe_relpath(entry["reference"], f"reference file of {name}")
            files.setdefault(ref, bundle_file(root, ref))
    if not (root / AGENT_ARCHIVE).is_file():
        older = " (it has agent.py: made by an older edgebench)" if (root / "agent.py").is_file() \
            else ""
        raise UserError(f"{root} has no {AGENT_ARCHIVE}{older}; rebuild this bundle with "
                        f"bench-host bundle")
    for rel in (MANIFEST_JSON, AGENT_ARCHIVE, manifest.testset):
        if rel:
            rel = safe_relpath(str(rel), "bundle file")
            files.setdefault(rel, bundle_file(root, rel))
    # Anything else the bundle builder put there travels too (each name checked the same way).
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in files:
            files[rel] = bundle_file(root, rel)
    return Bundle(root, manifest.run_id, list(files.values()), names)
