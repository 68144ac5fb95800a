"""LocalTarget: this machine as a device (the embedded default). Commands are subprocesses, files
are copied with the standard library; the interface is the same as SSHTarget's."""
from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
from typing import Optional, Sequence

from edgebench.host.targets.base import (
    CommandResult, LineSink, Process, Progress, Target, TargetSpec,
)

_CHUNK = 1 << 20
_TAIL_LINES = 200


def _pump(stream, sink: Optional[LineSink], tail: collections.deque) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        tail.append(line)
        if sink:
            sink(line)
    stream.close()


class LocalTarget(Target):
    """The agent runs as a subprocess here; `~` is this user's home."""

    def __init__(self, spec: Optional[TargetSpec] = None):
        self.spec = spec or TargetSpec(name="local", kind="local")

    def describe(self) -> str:
        return "local (this machine)"

    def home(self) -> str:
        return os.path.expanduser("~")

    def run(self, argv: Sequence[str], *, cwd=None, on_stdout=None, on_stderr=None,
            timeout=None, stdin_data=None) -> CommandResult:
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv], cwd=self.expand(cwd) if cwd else None,
                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:  # what a shell reports as status 127 over SSH
            return CommandResult(127, "", f"{argv[0]}: not found ({exc.strerror})")
        out_tail: collections.deque = collections.deque(maxlen=_TAIL_LINES)
        err_tail: collections.deque = collections.deque(maxlen=_TAIL_LINES)
        pumps = [threading.Thread(target=_pump, args=(proc.stdout, on_stdout, out_tail), daemon=True),
                 threading.Thread(target=_pump, args=(proc.stderr, on_stderr, err_tail), daemon=True)]
        for t in pumps:
            t.start()
        if stdin_data is not None:
            proc.stdin.write(stdin_data)
            proc.stdin.close()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        for t in pumps:
            t.join()
        return CommandResult(code, "\n".join(out_tail), "\n".join(err_tail))

    def start(self, argv: Sequence[str]) -> Process:
        return _LocalProcess([str(a) for a in argv])

    def put(self, local_path, remote_path, progress: Optional[Progress] = None,
            offset: int = 0) -> None:
        _copy(str(local_path), self.expand(remote_path), progress, offset)

    def get(self, remote_path, local_path, progress: Optional[Progress] = None) -> None:
        _copy(self.expand(remote_path), str(local_path), progress)

    def listdir(self, remote_path: str) -> list:
        try:
            return os.listdir(self.expand(remote_path))
        except FileNotFoundError:
            return []

    def exists(self, remote_path: str) -> bool:
        return os.path.exists(self.expand(remote_path))


def _copy(src: str, dst: str, progress: Optional[Progress], offset: int = 0) -> None:
    total = os.path.getsize(src)
    done = offset
    with open(src, "rb") as fi, open(dst, "r+b" if offset else "wb") as fo:
        fi.seek(offset)
        fo.seek(offset)
        fo.truncate()
        while True:
            chunk = fi.read(_CHUNK)
            if not chunk:
                break
            fo.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    shutil.copymode(src, dst)


class _LocalProcess(Process):
    def __init__(self, argv):
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._lines: "collections.deque[str]" = collections.deque()
        self._cv = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self._proc.stdout:
            with self._cv:
                self._lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def readline(self, timeout: float) -> Optional[str]:
        with self._cv:
            self._cv.wait_for(lambda: self._lines or self._eof, timeout)
            return self._lines.popleft() if self._lines else None

    def send(self, data: bytes) -> bool:
        try:
            self._proc.stdin.write(data.decode("ascii", "replace"))
            self._proc.stdin.flush()
            return True
        except (OSError, ValueError):   # ValueError: stdin already closed by stop()
            return False

    def stop(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
