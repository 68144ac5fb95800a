"""Results folders into the database. Each results.csv under the folder is one run on one
device; everything is inserted only where its natural key is not there yet, so importing the same
folder twice adds nothing, and a folder that grew (a resumed run) adds only its new rows."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from edgebench.device.manifest import Manifest, ManifestError
from edgebench.device.schema import OUTPUT_KEY, RESULT_KEY, key_values
from edgebench.host.errors import UserError
from edgebench.host.report.load import ResultSet, find_results, load_results
from edgebench.host.results_db import schema as S

_FINGERPRINT = ("machine", "cpu", "device_model", "os", "hostname")


@dataclass
class Imported:
    runs: int = 0
    rows: int = 0
    samples: int = 0
    predictions: int = 0
    lines: int = 0

    def __iadd__(self, other: "Imported") -> "Imported":
        for f in ("runs", "rows", "samples", "predictions", "lines"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        return self

    def __str__(self) -> str:
        return (f"{self.runs} run(s), {self.rows} row(s), {self.samples} latency sample(s), "
                f"{self.predictions} prediction(s), {self.lines} power, soak and scenario "
                f"line(s) added")


def plain(value):
    """A DataFrame cell as JSON-able Python (NaN and pd.NA as None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def xnnpack_text(value) -> str:
    return "" if value is None or pd.isna(value) else ("on" if bool(value) else "off")


def _threads(value) -> int:
    return -1 if pd.isna(value) else int(value)


def _text(value) -> str:
    return "" if value is None else str(value)


# How the database stores each key column (schema.py's rows and predictions tables); the rest
# are text.
_STORED = {"threads": _threads, "xnnpack": xnnpack_text, "round": int}


def stored_key(row, key: tuple = RESULT_KEY) -> dict:
    """`key`'s columns of a row (a dict or a DataFrame row) as the database stores them: blanks an
    older file left filled in as device/schema.py's key_values says, then typed for the table."""
    values = key_values({c: plain(row[c]) for c in key}, key)
    return {c: _STORED.get(c, _text)(v) for c, v in values.items()}


def _row_ident(row) -> tuple:
    """A row's key as the database stores it (the run aside), in RESULT_KEY's order."""
    return tuple(stored_key(row).values())


def _get_or_create(conn, table, key: dict, values: dict) -> tuple[int, bool]:
    where = sa.and_(*(table.c[k] == v for k, v in key.items()))
    found = conn.execute(sa.select(table.c.id).where(where)).scalar()
    if found is not None:
        return found, False
    return conn.execute(table.insert().values(**key, **values)).inserted_primary_key[0], True


def _cards(folder: Path) -> dict[str, dict]:
    """The bundle's manifest entries by sha256 (the bundle or its manifest sits beside the target
    folders)."""
    # a run away from its bundle keeps a copy beside its target folders (host/run_record.py)
    for bundle in (folder, folder.parent, folder.parent / "bundle"):
        try:
            entries = Manifest.load(bundle).models
        except ManifestError:  # none there, or one the agent would refuse
            continue
        return {e["sha256"]: e for e in entries}
    return {}


def _device(conn, rs: ResultSet, name: str) -> int:
    env = rs.env.get(name, {})
    first = rs.rows.iloc[0]
    fields = {k: plain(env.get(k)) if env.get(k) not in (None, "") else plain(first.get(k))
              for k in _FINGERPRINT}
    fields = {k: None if v is None else str(v) for k, v in fields.items()}
    fingerprint = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    pk, _ = _get_or_create(conn, S.devices, {"name": name, "fingerprint": fingerprint},
                           dict(fields, env=json.dumps(env, sort_keys=True, default=str)))
    return pk


def _import_file(conn, csv_path: Path) -> Imported:
    try:
        rs = load_results([csv_path])
    except UserError as e:
        if str(e).startswith("no result rows"):
            return Imported()  # a run that stopped before its first row: nothing to keep
        raise
    name = rs.rows["device"].iloc[0]
    device_pk = _device(conn, rs, name)
    cards = _cards(csv_path.parent)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    added = Imported()
    row_pks: dict[tuple, int] = {}   # the rows added now
    every_pk: dict[tuple, int] = {}  # every row of the file
    run_pks: dict[str, int] = {}
    for _, row in rs.rows.iterrows():
        run_id = str(plain(row["run_id"]) or "")
        if run_id not in run_pks:
            run_pks[run_id], new = _run_pk(conn, csv_path, rs.rows, run_id, name, device_pk, now)
            added.runs += new
        stored = stored_key(row)
        sha = stored["sha256"]
        model_pk, _ = _get_or_create(conn, S.models, {"sha256": sha}, {
            "name": plain(row["model"]), "architecture": plain(row["architecture"]),
            "recipe": plain(row["recipe"]), "file_size_mb": plain(row["file_size_mb"]),
            "card": json.dumps(cards[sha], sort_keys=True) if sha in cards else None})
        key = {"run_pk": run_pks[run_id], "model_pk": model_pk,
               **{c: stored[c] for c in S.ROW_KEY}}
        data = {k: plain(v) for k, v in row.items() if k not in ("device", "source")}
        pk, new = _get_or_create(conn, S.rows, key, {
            "status": row["status"], "p50_ms": plain(row["p50_ms"]),
            "accuracy": plain(row["accuracy"]), "peak_rss_mb": plain(row["peak_rss_mb"]),
            "energy_mj": plain(row.get("energy_mj")), "data": json.dumps(data, sort_keys=True)})
        ident = (run_id,) + tuple(stored.values())
        every_pk[ident] = pk
        if new:
            added.rows += 1
            row_pks[ident] = pk
    added.samples = _insert_samples(conn, rs.samples, row_pks)
    added.predictions = _insert_predictions(conn, rs.predictions, run_pks)
    # Every row, not only the new ones: a database filled before the lines were kept gets them
    # when the folder is imported again.
    added.lines = _insert_lines(conn, rs, every_pk)
    return added


def _stored_rows(conn, run_pk: int) -> dict:
    """{row key (_row_ident's): (status, started_utc)} of a run in the database."""
    q = (sa.select(S.models.c.sha256, *(S.rows.c[c] for c in S.ROW_KEY), S.rows.c.status,
                   S.rows.c.data)
         .join(S.models, S.models.c.id == S.rows.c.model_pk).where(S.rows.c.run_pk == run_pk))
    width = 1 + len(S.ROW_KEY)
    return {tuple(r[:width]): (r.status, json.loads(r.data).get("started_utc"))
            for r in conn.execute(q)}


def _run_pk(conn, csv_path: Path, rows: pd.DataFrame, run_id: str, device: str, device_pk: int,
            now: str) -> tuple[int, bool]:
    """The run these rows belong to: the stored run of this id on this device that they continue
    (the same files again, or a resumed run grown since), else a new one. Rows of another
    measurement session under a run id already stored are refused: the database never merges
    two sessions (UserError, one line, and nothing of the file is kept)."""
    mine = rows[rows["run_id"].fillna("") == run_id]
    started = mine["started_utc"].dropna()
    started = str(started.min()) if len(started) else None
    here = {_row_ident(r): (r.status, plain(r.started_utc)) for _, r in mine.iterrows()}
    stored = conn.execute(sa.select(S.runs.c.id, S.runs.c.started_utc, S.runs.c.source)
                          .where(S.runs.c.run_id == run_id, S.runs.c.device_id == device_pk)
                          .order_by(S.runs.c.started_utc != started)).all()
    for pk, their_start, source in stored:
        theirs = _stored_rows(conn, pk)
        common = set(here) & set(theirs)
        # An ok row is never measured again in a resumed run: the same key measured at another
        # time is another session. (A retried error row is measured again, later.)
        clash = next((k for k in sorted(common, key=str) if here[k][0] == theirs[k][0] == "ok"
                      and here[k][1] != theirs[k][1]), None)
        if clash is None and (common or their_start == started):
            return pk, False
        what = (f"{clash[0][:12]} threads {clash[1]}, {clash[4]}: measured at {theirs[clash][1]} "
                f"there, {here[clash][1]} here" if clash else
                f"started {their_start} there, {started} here, no row in common")
        raise UserError(f"{csv_path}: run {run_id} on {device} is in the database already from "
                        f"another measurement ({source}; {what}); one run id is one measurement: "
                        f"measure again as a new run (deploy gives each its own id) or import "
                        f"into another database (--db)")
    pk = conn.execute(S.runs.insert().values(
        run_id=run_id, device_id=device_pk, started_utc=started, imported_utc=now,
        source=str(csv_path.parent))).inserted_primary_key[0]
    return pk, True


def _row_groups(df: pd.DataFrame, row_pks: dict):
    """(row pk, the lines of `df` that belong to it) for each row of `row_pks` with lines."""
    for (run_id, *key), group in df.groupby(["run_id", *RESULT_KEY], sort=False, dropna=False):
        pk = row_pks.get((str(plain(run_id) or ""),) + _row_ident(dict(zip(RESULT_KEY, key))))
        if pk is not None:
            yield pk, group


def _insert_lines(conn, rs: ResultSet, row_pks: dict) -> int:
    """Schema 4's optional lines (S.LINE_KINDS) of these rows, each kind of a row once."""
    if not row_pks:
        return 0
    pks = sorted(set(row_pks.values()))
    stored = set()  # (row pk, kind) already in the database
    for start in range(0, len(pks), 500):
        stored.update(tuple(r) for r in conn.execute(
            sa.select(S.lines.c.row_pk, S.lines.c.kind).distinct()
            .where(S.lines.c.row_pk.in_(pks[start:start + 500]))))
    count = 0
    for kind in S.LINE_KINDS:
        df = getattr(rs, kind)
        if df is None or df.empty:
            continue
        for pk, group in _row_groups(df, row_pks):
            if (pk, kind) in stored:
                continue
            cols = [c for c in group.columns if c != "device"]
            values = [{"row_pk": pk, "kind": kind, "seq": i,
                       "data": json.dumps({c: plain(v) for c, v in zip(cols, line)})}
                      for i, line in enumerate(group[cols].itertuples(index=False))]
            conn.execute(S.lines.insert(), values)
            count += len(values)
    return count


def _insert_samples(conn, samples: pd.DataFrame | None, row_pks: dict) -> int:
    """The raw latencies of the rows just added, in file order (older rows already have theirs)."""
    if samples is None or samples.empty or not row_pks:
        return 0
    count = 0
    for pk, group in _row_groups(samples, row_pks):
        values = [{"row_pk": pk, "seq": i, "latency_ms": float(v)}
                  for i, v in enumerate(group["latency_ms"].dropna())]
        if values:
            conn.execute(S.samples.insert(), values)
            count += len(values)
    return count


def _insert_predictions(conn, preds: pd.DataFrame | None, run_pks: dict) -> int:
    if preds is None or preds.empty:
        return 0
    count = 0
    cols = ["run_id", *OUTPUT_KEY, "testset"]
    for (run_id, *key, testset), group in preds.groupby(cols, sort=False, dropna=False):
        run_pk = run_pks.get(str(plain(run_id) or ""))
        if run_pk is None:
            continue
        ident = {"run_pk": run_pk, **stored_key(dict(zip(OUTPUT_KEY, key)), OUTPUT_KEY),
                 "testset": str(plain(testset) or "clean")}  # testset.npz's name (metrics.py)
        where = sa.and_(*(S.predictions.c[k] == v for k, v in ident.items()))
        if conn.execute(sa.select(sa.func.count()).select_from(S.predictions)
                        .where(where)).scalar():
            continue
        group = group.drop_duplicates("image")
        values = [dict(ident, image=int(r.image), label=plain(r.label),
                       predicted=plain(r.predicted), score=plain(r.score),
                       positive_class=plain(r.positive_class))
                  for r in group.itertuples(index=False) if pd.notna(r.image)]
        for v in values:
            for c in ("label", "predicted", "positive_class"):
                v[c] = None if v[c] is None else int(v[c])
        if values:
            conn.execute(S.predictions.insert(), values)
            count += len(values)
    return count


def import_results(engine, paths: list[Path]) -> Imported:
    """Every results.csv under `paths` into the database, each file in its own transaction."""
    total = Imported()
    for csv_path in find_results([Path(p) for p in paths]):
        with engine.begin() as conn:
            total += _import_file(conn, csv_path)
    return total
