"""The pages `bench-host report` and `bench-host compare` already make, made from the database:
each run's report (build_report on the run's files written back from the database, so the page
is the report a folder would give) and the comparison of two runs (compare's own write_page, so
its table and statistics are those of `bench-host compare RUN_A RUN_B --db ...`). Both get the
site's navigation on top."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from edgebench.device.schema import POWER_SAMPLES, PREDICTIONS, RESULT_COLUMNS, SAMPLES
from edgebench.host.publish import layout
from edgebench.host.publish.data import Database, Run, resultset
from edgebench.host.report.load import RAW_KINDS
from edgebench.host.report.plots import slug

_TRISTATE = {"xnnpack", "fully_accelerated"}


def _cell_frame(df: pd.DataFrame, columns, defaults: dict) -> pd.DataFrame:
    """`df` with the file's columns in order, as the agent writes cells (on/off, true/false,
    whole numbers without .0, blank for missing)."""
    out = pd.DataFrame(index=df.index)
    for col in columns:
        if col in df:
            values = df[col]
        else:
            values = pd.Series([defaults.get(col, "")] * len(df), index=df.index, dtype=object)
        out[col] = [_cell(col, v) for v in values]
    return out


def _cell(col: str, v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, bool) or (hasattr(v, "dtype") and str(getattr(v, "dtype", "")) == "bool"):
        if col in _TRISTATE:
            return "on" if bool(v) else "off"
        return "true" if bool(v) else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def write_run_files(conn, db: Database, run: Run, folder: Path) -> Path:
    """The run's results.csv, latency_samples.csv, predictions.csv, the lines of schema 4 and
    env.json, as the agent wrote them, into folder/<device>/."""
    rows = db.rows[db.rows["_run_pk"] == run.pk]
    rs = resultset(conn, db, list(rows["_pk"]))
    target = folder / slug(run.device)
    target.mkdir(parents=True, exist_ok=True)
    version = int(pd.to_numeric(rows["schema_version"], errors="coerce").max())
    model_of = dict(zip(rows["sha256"], rows["model"]))
    defaults = {"schema_version": version}
    _cell_frame(rs.rows, RESULT_COLUMNS, defaults).to_csv(target / "results.csv", index=False)
    if rs.samples is not None:
        s = rs.samples.assign(model=rs.samples["sha256"].map(model_of))
        s["run"] = s.groupby(["sha256", "threads", "xnnpack", "runtime", "compute_unit",
                              "round"], dropna=False).cumcount()
        _cell_frame(s, SAMPLES.names, defaults).to_csv(target / SAMPLES.file, index=False)
    if rs.predictions is not None:
        p = rs.predictions.assign(model=rs.predictions["sha256"].map(model_of))
        _cell_frame(p, PREDICTIONS.names, defaults).to_csv(target / PREDICTIONS.file,
                                                           index=False)
    for kind, (record, _) in RAW_KINDS.items():
        df = getattr(rs, kind, None)
        if kind in ("samples", "predictions", "robustness") or df is None or df.empty:
            continue
        if "model" not in df and "sha256" in df:
            df = df.assign(model=df["sha256"].map(model_of))
        _cell_frame(df, record.names, defaults).to_csv(target / record.file, index=False)
    env = dict(run.env, target=run.device)  # the folder's name may differ from the device's
    (target / "env.json").write_text(json.dumps(env, indent=1, default=str), encoding="utf-8")
    return target


# Written back only to build the report; a site holding every raw latency of every run would be
# as big as the database. results.csv and env.json stay beside the report.
_DROPPED = (SAMPLES.file, PREDICTIONS.file, POWER_SAMPLES.file, "soak.csv", "scenarios.csv",
            "frames.csv", "op_profile.csv")


def build_run_report(conn, db: Database, run: Run, out_dir: Path) -> Path:
    """report.html (with report.md, summary.csv and the PNGs) of one run into out_dir."""
    from edgebench.host.report import build_report

    data = out_dir / "data"
    target = write_run_files(conn, db, run, data)
    paths = build_report([data], out_dir)
    for name in _DROPPED:
        (target / name).unlink(missing_ok=True)
    return paths.html


def run_bar(db: Database, run: Run, root: str, series: list, prev: dict, nxt: dict) -> str:
    """The box on top of a run's report: what it is and where it appears on the site."""
    links = " ".join(f'<a href="{s.page(root)}">{layout.esc(s.key["model"])} '
                     f'{layout.esc(s.key["compute_unit"])}×{s.key["threads"] or "?"}</a>'
                     for s in series)
    around = []
    if prev:
        around.append(f'<a href="{root}{prev["page"]}">compare with the previous run on '
                      f'{layout.esc(run.device)} ({layout.esc(prev["run"].run_id)})</a>')
    if nxt:
        around.append(f'<a href="{root}{nxt["page"]}">compare with the next run '
                      f'({layout.esc(nxt["run"].run_id)})</a>')
    return (f'<div class="eb-runbar"><strong>Run {layout.esc(run.run_id)}</strong> on '
            f'<strong>{layout.esc(run.device)}</strong>, started {layout.esc(run.started)}; '
            f'{run.rows} stored row(s), {run.failed} failed. '
            f'<span class="eb-muted">bench-host compare name: <code>{layout.esc(run.spec)}'
            f'</code></span><br>{" ".join(around)}<br>Series: {links or "none"}</div>')


def compare_dir(a: Run, b: Run) -> str:
    return f"compare/{a.slug}--{b.slug}"


def write_comparison(comp, out_dir: Path):
    from edgebench.host.compare.page import write_page

    return write_page(comp, out_dir)


def changed_rows_html(comp) -> str:
    """The rows whose change is significant, above compare's full table."""
    from edgebench.host.compare.measures import NO_CHANGE
    from edgebench.host.compare.page import view

    v = view(comp)
    t = comp.table.reset_index(drop=True)
    changed = [i for i in range(len(t)) if any(
        str(t.loc[i, c]) not in ("", NO_CHANGE, "nan", "one round: no interval")
        for c in ("p50_verdict", "accuracy_verdict", "energy_verdict", "memory_verdict")
        if c in t)]
    if not changed:
        return ('<p class="eb-note">No row changed measurably: every interval includes '
                '"no change".</p>')
    rows = [[layout.esc(v.iloc[i][c]) for c in v.columns] for i in changed]
    return ("<h2>Rows that changed</h2>"
            + layout.table([layout.esc(c) for c in v.columns], rows,
                           attrs=' id="eb-changed-rows"',
                           row_attrs=[' class="eb-changed"'] * len(rows)))


def comparison_page(html_text: str, comp, a_label: str, b_label: str, command: str,
                    root: str, extra: str = "") -> str:
    """compare.html with the site's navigation, the changed rows first and the command that
    gives the same comparison."""
    top = (f'<div class="eb-runbar">Run A {a_label} against run B {b_label}. '
           f'The same comparison: <code>{layout.esc(command)}</code>{extra}</div>'
           + changed_rows_html(comp))
    return layout.inject(html_text, layout.nav(root, "compare/index.html") + top, root)
