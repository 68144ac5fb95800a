"""Content-addressed uploads of a bundle to a target.

On the device every file lives once in `<remote_dir>/store/<sha256>`; a run's bundle folder is
made of hard links into the store. A file whose hash the store already holds is not sent again.
Uploads go to `store/.tmp-<sha256>-<nonce>`, are hashed on the device, and only then renamed to
their final name, so a cut upload never leaves a file that a later run would trust."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, Sequence

from edgebench.host.errors import UserError
from edgebench.host.files import sha256_file
from edgebench.host.targets.base import Target, quote_argv

_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# Runs on the device's python (checked by preflight): hashes each path given, one line per file.
_HASH_SCRIPT = (
    "import hashlib,sys\n"
    "for p in sys.argv[1:]:\n"
    "    h=hashlib.sha256()\n"
    "    f=open(p,'rb')\n"
    "    for b in iter(lambda: f.read(1<<20), b''): h.update(b)\n"
    "    f.close()\n"
    "    sys.stdout.write(h.hexdigest()+' '+p+'\\n')\n")


@dataclass(frozen=True)
class BundleFile:
    rel: str        # POSIX path inside the bundle, checked by safe_relpath
    local: Path
    sha256: str
    size: int


@dataclass
class TransferStats:
    bytes_sent: int = 0
    bytes_skipped: int = 0
    files_sent: int = 0
    files_skipped: int = 0
    seconds: float = 0.0


def safe_name(text: str, what: str) -> str:
    """A single path component with no shell or path meaning (run ids, model names)."""
    if not isinstance(text, str) or not _SAFE_PART.match(text) or text in (".", ".."):
        raise UserError(f"refusing {what} {text!r}: only letters, digits and ._+- are allowed "
                        f"(no '/', '..' or shell characters)")
    return text


def safe_relpath(rel: str, what: str = "bundle path") -> str:
    """A relative POSIX path that stays inside its folder once joined to it."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        raise UserError(f"refusing {what} {rel!r}: it must be a relative path inside the bundle")
    for part in PurePosixPath(rel).parts:
        safe_name(part, what)
    return str(PurePosixPath(rel))



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


def plan(target: Target, files: Sequence[BundleFile], remote_root: str) -> tuple:
    """(files whose content the device lacks, files it already holds), deduplicated by hash."""
    held = set(target.listdir(f"{remote_root}/store"))
    missing, seen = [], set()
    for f in files:
        if f.sha256 not in held and f.sha256 not in seen:
            missing.append(f)
            seen.add(f.sha256)
    present = [f for f in files if f.sha256 in held]
    return missing, present


def sync(target: Target, files: Sequence[BundleFile], remote_root: str, dest: str,
         python: str, progress: Optional[Callable[[int], None]] = None) -> TransferStats:
    """Make `dest` (absolute, under remote_root) hold `files`, sending only unknown content.

    progress(n) is called with every increment of bytes sent. Raises LinkDropped when the link
    goes away (the partial temp file is never renamed into the store)."""
    start = time.monotonic()
    store = f"{remote_root}/store"
    for f in files:
        if not _HEX64.match(f.sha256):
            raise UserError(f"bad sha256 for {f.rel!r}")
    # Stale temp files belong to cut uploads; the caller holds the device lock, so none is live.
    target.sh(f"mkdir -p {quote_argv([store, dest])} && rm -f {quote_argv([store])}/.tmp-*")
    missing, _ = plan(target, files, remote_root)
    stats = TransferStats()
    temps = {}
    for f in missing:
        tmp = f"{store}/.tmp-{f.sha256}-{uuid.uuid4().hex[:8]}"
        last = [0]

        def tick(done, total, last=last):
            if progress and done > last[0]:
                progress(done - last[0])
            last[0] = done
        target.put(str(f.local), tmp, tick)
        temps[f.sha256] = (tmp, f)
        stats.bytes_sent += f.size
        stats.files_sent += 1
    if temps:
        _verify_and_commit(target, python, store, temps)
    sent = set(temps)
    for f in files:
        if f.sha256 not in sent:
            stats.bytes_skipped += f.size
            stats.files_skipped += 1
    _link(target, files, store, dest)
    stats.seconds = time.monotonic() - start
    return stats


def _verify_and_commit(target: Target, python: str, store: str, temps: dict) -> None:
    paths = [tmp for tmp, _ in temps.values()]
    res = target.run([python, "-c", _HASH_SCRIPT] + paths)
    got = {}
    for line in res.stdout.splitlines():
        digest, _, path = line.partition(" ")
        got[path] = digest
    bad = [f.rel for sha, (tmp, f) in temps.items() if got.get(tmp) != sha]
    if bad or not res.ok:
        target.sh("rm -f " + quote_argv(paths))
        raise UserError(f"{target.describe()}: upload of {', '.join(bad) or 'bundle'} arrived "
                        f"corrupt (hash mismatch on the device); rerun the deploy "
                        f"{res.stderr.strip()[-200:]}")
    script = " && ".join(f"mv -f {quote_argv([tmp, f'{store}/{sha}'])}"
                         for sha, (tmp, _) in temps.items())
    res = target.sh(script)
    if not res.ok:
        raise UserError(f"{target.describe()}: cannot move uploads into {store}: {res.stderr}")


def _link(target: Target, files: Sequence[BundleFile], store: str, dest: str) -> None:
    dirs = sorted({str(PurePosixPath(dest, f.rel).parent) for f in files})
    cmds = [f"mkdir -p {quote_argv(dirs)}"] if dirs else []
    cmds += [f"ln -f {quote_argv([f'{store}/{f.sha256}', f'{dest}/{f.rel}'])}" for f in files]
    res = target.sh(" && ".join(cmds))
    if not res.ok:
        raise UserError(f"{target.describe()}: cannot assemble the bundle in {dest}: "
                        f"{res.stderr.strip()}")

