"""The report's link to the past: for each device of the run being reported, the latest earlier
run in the database that measured the same models (by name) on a device of the same name, and
the comparison's headline against it. Quiet when there is no database or no earlier run: the
report never waits on the database."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from edgebench.host.report.load import find_results, load_results
from edgebench.host.results_db import schema as S

MATCH = ("model", "compute_unit", "threads", "device")  # a retrained model has a new sha256


def _exists(url: str) -> bool:
    if "://" not in url:
        return Path(url).expanduser().is_file()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).is_file()
    return True


def _previous(conn, device: str, models: list[str], run_id: str, started: str | None):
    """(run_id, started_utc) of the latest other run on `device` sharing a model, or None."""
    q = (sa.select(S.runs.c.run_id, S.runs.c.started_utc)
         .join(S.devices, S.runs.c.device_id == S.devices.c.id)
         .join(S.rows, S.rows.c.run_pk == S.runs.c.id)
         .join(S.models, S.rows.c.model_pk == S.models.c.id)
         .where(S.devices.c.name == device, S.models.c.name.in_(models))
         .distinct())
    found = [(r, s) for r, s in conn.execute(q).all()
             if not (r == run_id and s == started) and (started is None or s is None
                                                        or s < started)]
    return max(found, key=lambda rs: (rs[1] or "", rs[0])) if found else None


def previous_run_blocks(url: str | None, result_dirs: list[Path]) -> list:
    """Report blocks naming the previous run of each device and the comparison's headline."""
    if url is None or not _exists(url):
        return []
    from edgebench.host.compare.measures import compare_runs, headline
    from edgebench.host.compare.page import view
    from edgebench.host.errors import UserError
    from edgebench.host.results_db.connect import open_db
    from edgebench.host.results_db.read import load_run

    try:
        engine = open_db(url)
    except UserError:
        return []  # the recording step after the report says why, in one line
    blocks = []
    try:
        try:
            found = find_results([Path(p) for p in result_dirs])
        except UserError:
            return []  # no results to link: the report itself says why, in one line
        for csv_path in found:
            try:
                current = load_results([csv_path])
            except UserError:
                continue
            rows = current.rows
            device, run_id = rows["device"].iloc[0], str(rows["run_id"].iloc[0])
            started = rows["started_utc"].dropna().min() if rows["started_utc"].notna().any() \
                else None
            with engine.connect() as conn:
                prev = _previous(conn, device, sorted(rows["model"].dropna().unique()), run_id,
                                 started)
            if prev is None:
                continue
            spec = f"{prev[0]}@{prev[1]}" if prev[1] else prev[0]
            try:
                comp = compare_runs(load_run(engine, spec, device), current, MATCH,
                                    label_a=spec, label_b=run_id)
            except UserError:
                continue
            blocks += [("h2", f"{device}: against the previous run, {spec}"),
                       ("p", f"{headline(comp)}. Run B is this run, run A the previous run of "
                             f"the same models on {device} in the results database; "
                             f"`bench-host compare {spec} {csv_path.parent}` writes the full "
                             f"comparison."),
                       ("table", view(comp))]
    except Exception as exc:  # noqa: BLE001 - a link is a courtesy; the report must not fail
        import sys
        print(f"report: no link to the previous run ({type(exc).__name__}: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})", file=sys.stderr)
        return []
    finally:
        engine.dispose()
    return [("h1", "Changes since the previous run")] + blocks if blocks else []


__all__ = ["previous_run_blocks"]
