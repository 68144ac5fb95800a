"""TensorFlow's C++ layers log straight to file descriptor 2 (cuDNN/cuBLAS factory clashes on a
CPU box, converter chatter), which no Python logging setting reaches; these redirect it."""
from __future__ import annotations

import contextlib
import os
import sys


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
