"""The site is written whole or not at all. Every publish builds a new copy in a temporary
folder beside the site (files whose bytes did not change are hard links to the old ones, so they
are not rewritten), then moves it into place; an error before that leaves the previous site as
it was. A folder is only ever replaced or removed when our stamp file is in it: a folder that
bench-host publish did not create is never deleted."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from edgebench.host.errors import UserError

STAMP = ".edgebench-site"          # JSON {"edgebench_site": 1, ...}: the folder is ours
_MARK = "edgebench_site"


def is_ours(folder: Path) -> bool:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")).get(_MARK) == 1
    except (OSError, ValueError, AttributeError):
        return False


def _remove_ours(folder: Path) -> None:
    if folder.is_dir() and not folder.is_symlink() and is_ours(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SiteWriter:
    """Usage: with SiteWriter(out) as site: site.put("index.html", text) ...; the new site
    replaces `out` when the block ends without an error."""

    def __init__(self, out: Path):
        self.out = Path(out).absolute()
        self.backup = self.out.parent / f".{self.out.name}.previous"
        self.written: list[str] = []
        self.kept: list[str] = []
        self.units_done: dict = {}   # folders built or taken over in this publish
        self._lock_fd = None
        self.tmp: Path | None = None
        self.old: Path | None = None

    # -- checks, before anything is written ----------------------------------------------------
    def _check(self) -> None:
        out = self.out
        if out.is_symlink():
            raise UserError(f"{out}: is a symbolic link; give the folder itself as --out")
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: exists and is not a folder")
        if out.is_dir() and not is_ours(out) and any(out.iterdir()):
            raise UserError(f"{out}: the folder exists and was not made by bench-host publish "
                            f"(no {STAMP} in it); it is left alone: give an empty or new "
                            f"folder as --out")

    def __enter__(self) -> "SiteWriter":
        self._check()
        parent = self.out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(parent, os.O_RDONLY)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{parent}: another bench-host publish is writing there; try again "
                            f"when it has finished") from None
        except OSError as e:
            raise UserError(f"{parent}: cannot write the site there ({e.strerror})") from None
        self._recover()
        self.old = self.out if self.out.is_dir() and is_ours(self.out) else None
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.publish-{os.getpid()}-",
                                         dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the site from a server
        self._stamp(self.tmp)
        old = self.old_file(STAMP)
        if old is not None and old.read_bytes() == (self.tmp / STAMP).read_bytes():
            (self.tmp / STAMP).unlink()
            self._link(old, self.tmp / STAMP)
        return self

    def _recover(self) -> None:
        """A publish killed between its two renames left the previous site as the backup; a
        killed build left its temporary folder. Both are ours (stamped) and are cleaned up."""
        if not self.out.exists() and self.backup.is_dir() and is_ours(self.backup):
            os.rename(self.backup, self.out)
        _remove_ours(self.backup)
        for left in self.out.parent.glob(f".{self.out.name}.publish-*"):
            try:
                pid = int(left.name.split("publish-", 1)[1].split("-", 1)[0])
            except ValueError:
                continue
            if not _alive(pid) or pid == os.getpid():
                _remove_ours(left)

    def _stamp(self, folder: Path, **extra) -> None:
        (folder / STAMP).write_text(json.dumps({_MARK: 1, **extra}, indent=1) + "\n",
                                    encoding="utf-8")

    # -- writing -------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Where `rel` goes in the new site (its folder made)."""
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def folder(self, rel: str) -> Path:
        """A folder of the new site, made."""
        target = self.tmp / rel
        target.mkdir(parents=True, exist_ok=True)
        return target

    def old_file(self, rel: str) -> Path | None:
        if self.old is None:
            return None
        path = self.old / rel
        return path if path.is_file() else None

    def read_old(self, rel: str) -> str | None:
        path = self.old_file(rel)
        try:
            return path.read_text(encoding="utf-8") if path else None
        except (OSError, UnicodeDecodeError):
            return None

    def _link(self, src: Path, dst: Path) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system, or one without hard links
            shutil.copy2(src, dst)

    def put(self, rel: str, content: str | bytes) -> bool:
        """Write one file of the new site; a file with the same bytes as in the old site is
        linked instead (not rewritten). Returns whether it was written."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        target = self.path(rel)
        if target.exists():  # never write through a link into the old site
            target.unlink()
        old = self.old_file(rel)
        if old is not None and old.stat().st_size == len(data) and old.read_bytes() == data:
            self._link(old, target)
            self.kept.append(rel)
            return False
        target.write_bytes(data)
        self.written.append(rel)
        return True

    def reuse(self, rel_dir: str) -> bool:
        """Take a folder of the old site over as it is (its files linked); False when the old
        site has no such folder."""
        if self.old is None or not (self.old / rel_dir).is_dir():
            return False
        src = self.old / rel_dir
        for path in sorted(src.rglob("*")):
            if path.is_file():
                rel = path.relative_to(self.old).as_posix()
                dst = self.path(rel)
                if dst.exists():
                    dst.unlink()
                self._link(path, dst)
                self.kept.append(rel)
        return True

    def built(self, rel_dir: str) -> None:
        """Count the files a builder wrote straight into path(rel_dir) as written."""
        for path in sorted((self.tmp / rel_dir).rglob("*")):
            if path.is_file():
                self.written.append(path.relative_to(self.tmp).as_posix())

    # -- the swap ------------------------------------------------------------------------------
    def _commit(self) -> None:
        out, tmp = self.out, self.tmp
        if out.is_dir() and not is_ours(out):
            # an empty folder the user made: filled, never removed
            for entry in tmp.iterdir():
                os.rename(entry, out / entry.name)
            tmp.rmdir()
            return
        if not out.exists():
            os.rename(tmp, out)
            return
        os.rename(out, self.backup)
        try:
            os.rename(tmp, out)
        except OSError:
            os.rename(self.backup, out)
            raise
        _remove_ours(self.backup)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
            else:
                _remove_ours(self.tmp)
        finally:
            if self.tmp is not None and self.tmp.exists() and exc_type is None:
                _remove_ours(self.tmp)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
