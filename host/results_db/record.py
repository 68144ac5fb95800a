"""What deploy, run and report call after their files are written: the results into the
database, and when that fails one line saying the database was not updated and how to import the
folder later. The run's files never depend on the database."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from edgebench.host.errors import UserError


def record(paths: list[Path], url: str | None, quiet: bool = False) -> bool:
    """Import `paths` into the database at `url` (None: recording is off). Returns whether it
    was updated; never raises for a database problem."""
    if url is None:
        return False
    from edgebench.host.results_db.connect import open_db, safe

    try:
        from edgebench.host.results_db.store import import_results

        engine = open_db(url)
        try:
            added = import_results(engine, paths)
        finally:
            engine.dispose()
    except Exception as exc:  # the database is a copy; its failure must not fail the run
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, UserError):
            reason = f"{type(exc).__name__}: {reason}"
        folders = " ".join(shlex.quote(str(p)) for p in paths)
        print(f"database not updated ({reason}); the results files are written — import them "
              f"later with: bench-host import {folders} --db {shlex.quote(safe(url))}",
              file=sys.stderr)
        return False
    if not quiet:
        print(f"database {safe(url)}: {added}", file=sys.stderr)
    return True
