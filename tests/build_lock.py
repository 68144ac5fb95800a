"""One builder at a time for what the suite makes once at a fixed path (the device venvs under the
repository): under pytest-xdist two workers may both find a venv missing, and one's rmtree would
pull the venv from under the other's pip. The lock is a file in the repository's .cache/locks/
(git-ignored); the second worker waits, then finds the venv ready."""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def build_lock(path: Path):
    locks = Path(__file__).resolve().parents[1] / ".cache" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{Path(path).name.lstrip('.')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
