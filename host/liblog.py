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
import sys
from pathlib import Path

LIBRARIES = ("paramiko", "edgebench.agent", "edgebench.deploy")
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
    """Append the libraries' records to `path` while the block runs."""
    quiet()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
