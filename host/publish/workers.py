"""The expensive pages, built in parallel: each run's report and each comparison is a unit of its
own (its own folder, its own rows), so a fresh site of many runs is built by as many processes
as there are cores. Workers are spawned, not forked (the parent may hold threads and database
connections), open the database themselves, and write straight into the new site's folder."""
from __future__ import annotations

import os
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.publish import run_pages

# How a comparison's rows are matched when the default finds nothing in common: a retrained
# model has a new file (sha256), the same name, and is still the same series.
BY_NAME = ("model", "recipe", "compute_unit", "threads", "device")
_STATE: dict = {}


def default_jobs() -> int:
    """The cores this process may use (all of them where the OS does not say), at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 8))


def compare_command(a, b, url: str, match) -> str:
    dev = f" --device '{a.device}'" if a.device == b.device else ""
    m = f" --match {','.join(match)}" if match else ""
    return f"bench-host compare '{a.spec}' '{b.spec}'{dev}{m} --db '{url}'"


def _link(run) -> str:
    from edgebench.host.publish.layout import esc
    return (f'<a href="../../{run.page()}">{esc(run.run_id)}</a> on {esc(run.device)} '
            f"({esc(run.started)})")


def build_pair(conn, db, a_pk: int, b_pk: int, match, out_dir: str, explicit: bool):
    """compare.{html,md,csv,png} of run B against run A in out_dir: (headline, match used), or
    (None, why) when a consecutive pair has nothing in common even by model name."""
    from edgebench.host.compare.measures import compare_runs, headline
    from edgebench.host.compare.pairs import DEFAULT_MATCH
    from edgebench.host.publish.data import resultset

    a, b = db.runs[a_pk], db.runs[b_pk]
    rows = {pk: list(db.rows.loc[db.rows["_run_pk"] == pk, "_pk"]) for pk in (a_pk, b_pk)}
    run_a, run_b = resultset(conn, db, rows[a_pk]), resultset(conn, db, rows[b_pk])
    tries = [match] if match or explicit else [None, BY_NAME]
    for fields in tries:
        try:
            comp = compare_runs(run_a, run_b, tuple(fields or DEFAULT_MATCH),
                                label_a=a.spec, label_b=b.spec)
            break
        except UserError as exc:
            if explicit:
                raise UserError(f"--pair {a.spec} {b.spec}: {exc}") from None
            reason = str(exc)
    else:
        return None, reason
    paths = run_pages.write_comparison(comp, Path(out_dir))
    text = run_pages.comparison_page(paths.html.read_text(encoding="utf-8"), comp, _link(a),
                                     _link(b), compare_command(a, b, db.url, fields), "../../")
    paths.html.write_text(text, encoding="utf-8")
    return headline(comp), list(fields or [])


def run_task(conn, db, task: tuple):
    kind, *args = task
    if kind == "points":
        from edgebench.host.publish.data import run_points
        return run_points(conn, db, db.runs[args[0]])
    if kind == "report":
        run_pk, out_dir = args
        run_pages.build_run_report(conn, db, db.runs[run_pk], Path(out_dir))
        return None
    return build_pair(conn, db, *args)


def _init(url: str, db) -> None:
    from edgebench.host.results_db.connect import open_db

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process per core already
    _STATE["engine"], _STATE["db"] = open_db(url), db


def _do(task: tuple):
    with _STATE["engine"].connect() as conn:
        return run_task(conn, _STATE["db"], task)


class Builder:
    """Runs tasks ("points", run_pk), ("report", run_pk, out_dir) and ("pair", a_pk, b_pk,
    match, out_dir, explicit) in this process, or in `jobs` spawned ones when there are enough
    of them (a worker takes seconds to import pandas, SciPy and matplotlib). Use it as a
    context manager: the workers live until the block ends."""

    def __init__(self, conn, db, url: str, jobs: int):
        self.conn, self.db, self.url, self.jobs = conn, db, url, jobs
        self._pool = None

    def processes(self, tasks: list) -> int:
        if self._pool is not None:
            return self.jobs
        return self.jobs if self.jobs > 1 and len(tasks) >= 3 * self.jobs else 1

    def run(self, tasks: list) -> list:
        if self.processes(tasks) == 1:
            return [run_task(self.conn, self.db, t) for t in tasks]
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context(
                "spawn"), initializer=_init, initargs=(self.url, self.db))
        return list(self._pool.map(_do, tasks, chunksize=1))

    def __enter__(self) -> "Builder":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
