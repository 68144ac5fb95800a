"""A stored run given back as the report's ResultSet (rows, samples, predictions, and schema 4's
power, soak, scenario and frame lines), typed the way host/report/load.py types files, so compare
and history run the same statistics on a database as on folders."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import sqlalchemy as sa

from edgebench.device.schema import RESULT_KEY
from edgebench.host.errors import UserError
from edgebench.host.report.load import (BOOL_COLUMNS, NUMERIC_COLUMNS, RAW_KINDS, ResultSet,
                                        typed_raw)
from edgebench.host.results_db import schema as S

_TRISTATE = {"on": True, "off": False, "": pd.NA}


def _typed_rows(records: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    for col in NUMERIC_COLUMNS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in BOOL_COLUMNS:
        if col in df:
            df[col] = df[col].fillna(False).astype(bool)
    for col in ("xnnpack", "fully_accelerated"):
        if col in df:
            df[col] = df[col].astype("boolean")
    return df


def stored_rows(conn, where) -> pd.DataFrame:
    """Rows matching `where` (on rows/runs/devices/models), with device, source and the row's
    primary key (_pk) added."""
    q = (sa.select(S.rows.c.id, S.rows.c.data, S.devices.c.name, S.runs.c.source,
                   S.runs.c.id.label("run_pk"))
         .join(S.runs, S.rows.c.run_pk == S.runs.c.id)
         .join(S.devices, S.runs.c.device_id == S.devices.c.id)
         .join(S.models, S.rows.c.model_pk == S.models.c.id)
         .where(where).order_by(S.runs.c.id, S.rows.c.id))
    records = []
    for pk, data, device, source, run_pk in conn.execute(q):
        rec = json.loads(data)
        rec.update(device=device, source=source, _pk=pk, _run_pk=run_pk)
        records.append(rec)
    return _typed_rows(records) if records else pd.DataFrame()


def stored_samples(conn, rows: pd.DataFrame) -> pd.DataFrame | None:
    """latency samples of these rows, in the shape load.py gives them."""
    if rows.empty:
        return None
    by_pk = rows.set_index("_pk")
    frames = []
    pks = [int(p) for p in by_pk.index]
    for start in range(0, len(pks), 500):
        q = (sa.select(S.samples.c.row_pk, S.samples.c.latency_ms)
             .where(S.samples.c.row_pk.in_(pks[start:start + 500]))
             .order_by(S.samples.c.row_pk, S.samples.c.seq))
        frames.append(pd.DataFrame(conn.execute(q).all(), columns=["_pk", "latency_ms"]))
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        return None
    cols = ["device", "run_id", *RESULT_KEY]
    return df.join(by_pk[cols], on="_pk").drop(columns="_pk")


def stored_predictions(conn, rows: pd.DataFrame) -> pd.DataFrame | None:
    if rows.empty:
        return None
    run_pks = [int(p) for p in rows["_run_pk"].unique()]
    q = sa.select(S.predictions).where(S.predictions.c.run_pk.in_(run_pks)).order_by(
        S.predictions.c.run_pk, S.predictions.c.sha256, S.predictions.c.image)
    df = pd.DataFrame(conn.execute(q).mappings().all())
    if df.empty:
        return None
    runs = rows.drop_duplicates("_run_pk").set_index("_run_pk")[["device", "run_id"]]
    df = df.join(runs, on="run_pk").drop(columns="run_pk")
    df["xnnpack"] = df["xnnpack"].map(_TRISTATE).astype("boolean")
    return df


def stored_lines(conn, rows: pd.DataFrame) -> dict:
    """{kind: DataFrame or None} of S.LINE_KINDS for these rows, with their device, in the order
    the files had them."""
    out = dict.fromkeys(S.LINE_KINDS)
    if rows.empty:
        return out
    device = rows.set_index("_pk")["device"]
    pks = [int(p) for p in device.index]
    found: dict = {kind: [] for kind in S.LINE_KINDS}
    for start in range(0, len(pks), 500):
        q = (sa.select(S.lines.c.row_pk, S.lines.c.kind, S.lines.c.data)
             .where(S.lines.c.row_pk.in_(pks[start:start + 500]))
             .order_by(S.lines.c.row_pk, S.lines.c.kind, S.lines.c.seq))
        for pk, kind, data in conn.execute(q):
            if kind in found:
                found[kind].append(dict(json.loads(data), device=device[pk]))
    for kind, records in found.items():
        if records:
            record, keep = RAW_KINDS[kind]
            df = pd.DataFrame(records)
            df = df.astype(object).where(df.notna(), np.nan)  # JSON null as a CSV's blank
            out[kind] = typed_raw(df, record, keep)
    return out


def load_run(engine, spec: str, device: str | None = None) -> ResultSet:
    """Every stored row of a run, as a ResultSet. `spec` is a run id, or RUN_ID@STARTED_UTC
    when the same id was used for several runs (on one device, or on all)."""
    run_id, _, started = spec.partition("@")
    where = S.runs.c.run_id == run_id
    if started:
        where = sa.and_(where, S.runs.c.started_utc == started)
    if device:
        where = sa.and_(where, S.devices.c.name == device)
    with engine.connect() as conn:
        found = conn.execute(sa.select(S.devices.c.name, S.runs.c.started_utc)
                             .join(S.devices, S.runs.c.device_id == S.devices.c.id)
                             .where(where).order_by(S.runs.c.id)).all()
        names = [name for name, _ in found]
        if len(set(names)) < len(names):
            starts = ", ".join(f"{run_id}@{s}" for _, s in found)
            raise UserError(f"run id {run_id!r} names {len(found)} runs started at different "
                            f"times; name one: {starts}")
        rows = stored_rows(conn, where) if found else pd.DataFrame()
        if rows.empty:
            known = conn.execute(sa.select(S.runs.c.run_id).distinct()
                                 .order_by(S.runs.c.run_id).limit(20)).scalars().all()
            raise UserError(f"{spec}: no such folder, and no run {spec!r} in the database"
                            + (f" on {device}" if device else "")
                            + (f" (runs there: {', '.join(known)})" if known else
                               " (it is empty: bench-host import RESULTS_DIR fills it)"))
        samples = stored_samples(conn, rows)
        predictions = stored_predictions(conn, rows)
        lines = stored_lines(conn, rows)
    return ResultSet(rows=rows.drop(columns=["_pk", "_run_pk"]), samples=samples,
                     predictions=predictions,
                     # a kind with no lines keeps ResultSet's own default for it
                     **{kind: df for kind, df in lines.items() if df is not None},
                     sources={d: rows.loc[rows["device"] == d, "source"].iloc[0]
                              for d in rows["device"].unique()})
