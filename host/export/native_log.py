"""TensorFlow's C++ layers log straight to file descriptor 2 (cuDNN/cuBLAS factory clashes on a
CPU box, XLA's "failed call to cuInit" on a machine without a GPU, converter chatter), which no
Python logging setting reaches; these redirect it, into host.log where a run has one."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

NATIVE_LOG = logging.getLogger("edgebench.native")  # host/liblog.py: into host.log


@contextlib.contextmanager
def stderr_to(path):
    """Send file descriptor 2 to `path` for a while (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Import TensorFlow without its start-up noise on the user's terminal."""
    if "tensorflow" not in sys.modules:
        with stderr_to(os.devnull):
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


@contextlib.contextmanager
def native_to_log(what: str):
    """File descriptor 2 into a temporary file while the block runs, then each of its lines to
    the "edgebench.native" logger (host.log; the terminal only with --verbose). Nothing is lost
    when the block raises: the lines are logged on the way out."""
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    NATIVE_LOG.info("%s: %s", what, line.rstrip())
