"""Content-addressed, resumable uploads of a bundle to a target.

On the device every file lives once in `<remote_dir>/store/<sha256>`; a run's bundle folder is
made of hard links into the store. A file whose hash the store already holds is not sent again.
Each upload goes to `store/.part-<sha256>` (named by the content it is for), is hashed on the
device as soon as it has arrived and only then renamed to its final name: files are committed one
by one, so a cut loses at most the file in flight, and a cut upload never leaves a file that a
later run would trust. The next attempt continues a partial from its length, after checking that
the bytes already there are the file's first bytes (a sha256 of the prefix on the device against
the local one). Partials of content this bundle does not want are removed once they are older
than max_partial_age_s. The caller holds the device lock, so no other upload is live."""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, Sequence

from edgebench.device.manifest import ManifestError, check_name, check_relpath
from edgebench.host.agent_archive import device_script
from edgebench.host.errors import UserError
from edgebench.host.files import sha256_file
from edgebench.host.targets.base import LinkDropped, Target, dropped_while, quote_argv

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

DEFAULT_PARTIAL_AGE_S = 24 * 3600.0
# Files that arrived are committed once this many bytes await it (and at the end): big files one
# by one, small ones together (one python start on the device for several files).
COMMIT_BYTES = 1 << 20

# Runs on the device's python (checked by preflight): device/remote/upload_store.py, sent as source.
_STORE_SCRIPT = device_script("upload_store")


@dataclass(frozen=True)
class BundleFile:
    rel: str        # POSIX path inside the bundle, checked by safe_relpath
    local: Path
    sha256: str
    size: int


@dataclass
class TransferStats:
    bytes_sent: int = 0       # file bytes written to the device (resumed prefixes not counted)
    bytes_skipped: int = 0    # already in the store
    bytes_resumed: int = 0    # found in partial uploads of earlier attempts, checked, kept
    files_sent: int = 0
    files_skipped: int = 0
    files_resumed: int = 0
    seconds: float = 0.0

    def add(self, other: "TransferStats") -> None:
        """Fold one attempt into a deploy's totals: what was sent adds up, what was found
        cached is the last attempt's view."""
        for name in ("bytes_sent", "bytes_resumed", "files_sent", "files_resumed", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bytes_skipped, self.files_skipped = other.bytes_skipped, other.files_skipped


def safe_name(text: str, what: str) -> str:
    """A single path component with no shell or path meaning (run ids, model names): the
    agent's rule too (device/manifest.check_name), so both sides refuse the same names."""
    try:
        return check_name(text, what)
    except ManifestError as exc:
        raise UserError(str(exc)) from None


def safe_relpath(rel: str, what: str = "bundle path") -> str:
    """A relative POSIX path that stays inside its folder once joined to it (the agent's rule
    too: device/manifest.check_relpath)."""
    try:
        return check_relpath(rel, what)
    except ManifestError as exc:
        raise UserError(str(exc)) from None



def bundle_file(bundle_dir: Path, rel: str, expected_sha: Optional[str] = None) -> BundleFile:
    rel = safe_relpath(rel)
    local = Path(bundle_dir) / rel
    if not local.is_file():
        raise UserError(f"bundle {bundle_dir} is missing {rel}; rebuild it with bench-host bundle")
    digest = sha256_file(local)
    if expected_sha is not None and digest != expected_sha:
        raise UserError(f"bundle file {rel} does not match its manifest sha256 "
                        f"({digest[:12]}… != {str(expected_sha)[:12]}…); rebuild the bundle")
    return BundleFile(rel, local, digest, local.stat().st_size)


def prefix_sha256(path: Path, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left > 0:
            block = f.read(min(left, 1 << 20))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def sync(target: Target, files: Sequence[BundleFile], remote_root: str, dest: str,
         python: str, progress: Optional[Callable[[int], None]] = None,
         stats: Optional[TransferStats] = None,
         max_partial_age_s: float = DEFAULT_PARTIAL_AGE_S) -> TransferStats:
    """Make `dest` (absolute, under remote_root) hold `files`, sending only unknown content and
    resuming partial uploads. progress(n) is called with every increment of bytes sent; `stats`
    (filled as the upload goes, so a caller sees how far a cut attempt got) is returned. Raises
    LinkDropped, naming the file in flight and how far it got, when the link goes away."""
    start = time.monotonic()
    stats = stats if stats is not None else TransferStats()
    store = f"{remote_root}/store"
    for f in files:
        if not _HEX64.match(f.sha256):
            raise UserError(f"bad sha256 for {f.rel!r}")
    try:
        target.sh(f"mkdir -p {quote_argv([store, dest])}")
        wanted = list(dict.fromkeys(f.sha256 for f in files))
        res = target.run([python, "-c", _STORE_SCRIPT, "plan", store, str(max_partial_age_s),
                          *wanted])
    except LinkDropped as exc:
        raise dropped_while(target, "checking the device's store", exc) from None
    try:
        state = json.loads(res.stdout.splitlines()[-1])
    except (ValueError, IndexError):
        raise UserError(f"{target.describe()}: cannot read the store {store}: "
                        f"{res.stderr.strip()[-300:]}") from None
    missing = list({f.sha256: f for f in files if not state[f.sha256][0]}.values())
    pending: list = []
    for i, f in enumerate(missing):
        _upload(target, store, f, state[f.sha256], stats, progress,
                f"{i} of {len(missing)} files complete before it")
        pending.append(f)
        if sum(p.size for p in pending) >= COMMIT_BYTES or i == len(missing) - 1:
            _commit(target, python, store, pending)
            pending = []
    for f in files:
        if state[f.sha256][0]:
            stats.bytes_skipped += f.size
            stats.files_skipped += 1
    try:
        _link(target, files, store, dest)
    except LinkDropped as exc:
        raise dropped_while(target, f"assembling the bundle in {dest}", exc) from None
    stats.seconds = time.monotonic() - start
    return stats


def _upload(target: Target, store: str, f: BundleFile, state: list, stats: TransferStats,
            progress, complete: str) -> None:
    """Send one file, from where a partial left off if its prefix checks out."""
    part = f"{store}/.part-{f.sha256}"
    _, length, prefix = state
    offset = length if 0 < length <= f.size and prefix == prefix_sha256(f.local, length) else 0
    sent = [offset]

    def tick(done, total):
        if progress and done > sent[0]:
            progress(done - sent[0])
        sent[0] = done
    try:
        target.put(str(f.local), part, tick, offset=offset)
    except LinkDropped as exc:
        stats.bytes_sent += sent[0] - offset
        resumed = f", resumed at byte {offset:,}" if offset else ""
        raise LinkDropped(
            f"{target.describe()}: link dropped while uploading {f.rel} ({sent[0]:,} of "
            f"{f.size:,} bytes sent{resumed}; {complete}): {exc.why}; what arrived is kept "
            f"(store/.part-{f.sha256[:12]}…) and the retry resumes from it", exc.why,
            placed=True) from None
    stats.bytes_sent += f.size - offset
    stats.files_sent += 1
    if offset:
        stats.bytes_resumed += offset
        stats.files_resumed += 1


def _commit(target: Target, python: str, store: str, files: list) -> None:
    """Hash the arrived files on the device and rename the whole ones into the store."""
    try:
        res = target.run([python, "-c", _STORE_SCRIPT, "commit", store,
                          *[f.sha256 for f in files]])
    except LinkDropped as exc:
        names = ", ".join(f.rel for f in files)
        raise dropped_while(target, f"verifying {names} on the device (all sent; the retry "
                                    f"verifies them again)", exc) from None
    ok = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("ok ")}
    bad = [f.rel for f in files if f.sha256 not in ok]
    if bad:
        err = res.stderr.strip()[-200:]
        raise UserError(f"{target.describe()}: upload of {', '.join(bad)} arrived corrupt (hash "
                        f"mismatch on the device{': ' + err if err else ''}); rerun the deploy")


def _link(target: Target, files: Sequence[BundleFile], store: str, dest: str) -> None:
    dirs = sorted({str(PurePosixPath(dest, f.rel).parent) for f in files})
    cmds = [f"mkdir -p {quote_argv(dirs)}"] if dirs else []
    cmds += [f"ln -f {quote_argv([f'{store}/{f.sha256}', f'{dest}/{f.rel}'])}" for f in files]
    res = target.sh(" && ".join(cmds))
    if not res.ok:
        raise UserError(f"{target.describe()}: cannot assemble the bundle in {dest}: "
                        f"{res.stderr.strip()}")

