"""Library log lines go to the run's host.log, never raw to the terminal.

paramiko logs events that edgebench handles at ERROR level ("Socket exception: Connection reset
by peer (104)" when a link drops; deploy then retries and resumes), and Python's last-resort
handler prints the records of a logger that has no handler of its own straight to stderr, between
edgebench's one-line messages. "edgebench.deploy" records each dropped link and its retry, which
the terminal sums up in one line ("1 dropped link resumed"). `quiet()` gives those loggers a handler of their own (so nothing
reaches the terminal), `to_file()` adds the run's log file for the length of a deploy, and
`verbose()` (the commands' --verbose) shows them on stderr as well. The agent's stderr (the
device's LiteRT/Dawn native logs, tracebacks) is logged under "edgebench.agent" the same way."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

# edgebench.native: TensorFlow's, XLA's and absl's C++ lines from a conversion (export/native_log)
LIBRARIES = ("paramiko", "edgebench.agent", "edgebench.deploy", "edgebench.native")
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def quiet() -> None:
    """Keep the libraries' records off the terminal (idempotent)."""
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def verbose() -> None:
    """--verbose: the libraries' records on stderr too, for the rest of the process."""
    quiet()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    for name in LIBRARIES:
        logging.getLogger(name).addHandler(handler)


@contextlib.contextmanager
def to_file(path: Path):
    """Append the libraries' records to `path` while the block runs (once: a block inside another
    one on the same file, a deploy inside `bench-host run`, adds nothing)."""
    quiet()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    if any(getattr(h, "baseFilename", None) == os.path.abspath(path) for h in loggers[0].handlers):
        yield path
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
