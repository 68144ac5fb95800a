"""The site's material, read from the results database: every stored run (one run on one
device), and per run one point per series it measured, with the statistics `bench-host history`
gives (its p50 with the block-bootstrap interval, accuracy with Wilson's, energy and memory over
rounds). A series is device × model × compute unit × threads × runtime (× XNNPACK where it was
switched off); a retrained model keeps its series by name.

Each run gets a fingerprint of everything stored for it, so a later publish computes the points
of new or changed runs only (the rest come from the cache the site keeps)."""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from edgebench.host.errors import UserError
from edgebench.host.report.plots import slug
from edgebench.host.report import stats
from edgebench.host.report.uncertainty import CONFIG, LATENCY_KEY, _key, fold_rounds
from edgebench.host.results_db import history
from edgebench.host.results_db import schema as S
from edgebench.host.results_db.read import (stored_lines, stored_predictions, stored_rows,
                                            stored_samples)

assert [c for c in CONFIG if c != "model"] == LATENCY_KEY  # _latency_of relies on it
SERIES_KEY = ("device", "model", "compute_unit", "threads", "runtime", "xnnpack")
# What a point remembers of its run's environment, with the label pages give it: the usual
# causes of a step in a series.
ENV_FIELDS = (
    ("runtime_version", "runtime version"), ("os", "OS / kernel"), ("cpu", "CPU"),
    ("device_model", "board"), ("machine", "machine"), ("cores", "cores"),
    ("governor", "CPU governor"), ("freq_mhz", "CPU MHz"), ("python", "Python"),
    ("numpy", "numpy"), ("sha256", "model file"), ("bundle_id", "bundle"),
    ("converter", "converter"),
)
_ENV_WORDS = ("firmware", "kernel", "bootloader", "driver")  # env.json keys worth a diff too
METRICS = tuple(history.METRICS)  # p50, accuracy, energy, memory


def plain(value):
    """A cell as JSON (NaN and NA as None, numpy scalars as Python)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class Run:
    """One stored run on one device."""
    pk: int
    run_id: str
    device: str
    started: str
    source: str
    env: dict
    fingerprint: str = ""
    slug: str = ""
    rows: int = 0
    failed: int = 0
    samples: int = 0

    @property
    def spec(self) -> str:
        """How `bench-host compare` names it (results_db.read.load_run)."""
        return f"{self.run_id}@{self.started}" if self.started else self.run_id

    @property
    def label(self) -> str:
        return f"{self.run_id} on {self.device}"

    def page(self, root: str = "") -> str:
        return f"{root}runs/{self.slug}/report.html"


@dataclass
class Series:
    key: dict
    slug: str
    architecture: str
    recipe: str
    converter: str
    points: list = field(default_factory=list)  # dicts, oldest run first

    @property
    def title(self) -> str:
        k = self.key
        threads = "" if k["threads"] is None else f" × {k['threads']} thread(s)"
        extra = ", XNNPACK off" if k["xnnpack"] == "off" else ""
        return (f"{k['model']} on {k['device']} ({k['compute_unit']}{threads}, {k['runtime']}"
                f"{extra})")

    def page(self, root: str = "") -> str:
        return f"{root}series/{self.slug}.html"


@dataclass
class Database:
    url: str                      # without its password
    runs: dict                    # pk -> Run, oldest first
    rows: pd.DataFrame            # stored_rows of every run (_pk, _run_pk added)
    converters: dict              # model sha256 -> converter named in its card
    sample_counts: dict           # row pk -> latency samples stored
    notes: list = field(default_factory=list)


def _compact(started: str) -> str:
    return "".join(ch for ch in (started or "") if ch.isalnum())[:15]


def _assign_slugs(runs: list[Run]) -> None:
    seen: set = set()
    for run in runs:
        base = slug(f"{run.run_id}--{run.device}--{_compact(run.started)}")[:120]
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        run.slug = name


def _converter(card: str | None) -> str:
    try:
        return str(json.loads(card).get("converter") or "") if card else ""
    except (ValueError, AttributeError):
        return ""


def load(engine, url: str) -> Database:
    """Every run and row of the database; UserError when it holds none."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(S.runs.c.id, S.runs.c.run_id, S.runs.c.started_utc, S.runs.c.source,
                      S.devices.c.name, S.devices.c.env)
            .join(S.devices, S.runs.c.device_id == S.devices.c.id)).all()
        if not found:
            raise UserError(f"{url}: the database holds no runs yet (bench-host import "
                            f"RESULTS_DIR, or deploy with --db, fills it)")
        hashes = {pk: (run_pk, hashlib.sha256(data.encode()).hexdigest()[:16]) for pk, run_pk, data
                  in conn.execute(sa.select(S.rows.c.id, S.rows.c.run_pk, S.rows.c.data))}
        samples = dict(conn.execute(sa.select(S.samples.c.row_pk, sa.func.count())
                                    .group_by(S.samples.c.row_pk)).all())
        lines = dict(conn.execute(sa.select(S.lines.c.row_pk, sa.func.count())
                                  .group_by(S.lines.c.row_pk)).all())
        predictions = dict(conn.execute(sa.select(S.predictions.c.run_pk, sa.func.count())
                                        .group_by(S.predictions.c.run_pk)).all())
        converters = {sha: _converter(card) for sha, card in conn.execute(
            sa.select(S.models.c.sha256, S.models.c.card).where(S.models.c.card.is_not(None)))}
        rows = stored_rows(conn, sa.true())
    runs = []
    for pk, run_id, started, source, device, env in found:
        try:
            env = json.loads(env) if env else {}
        except ValueError:
            env = {}
        runs.append(Run(pk=int(pk), run_id=str(run_id), device=str(device),
                        started=started or "", source=source or "",
                        env=env if isinstance(env, dict) else {}))
    runs.sort(key=lambda r: (r.started, r.pk))
    _assign_slugs(runs)
    per_run: dict = {r.pk: [] for r in runs}
    for row_pk, (run_pk, h) in hashes.items():
        per_run[run_pk].append((row_pk, h, samples.get(row_pk, 0), lines.get(row_pk, 0)))
    for run in runs:
        mine = sorted(per_run[run.pk])
        run.rows = len(mine)
        run.samples = sum(s for _, _, s, _ in mine)
        run.fingerprint = digest([run.run_id, run.device, run.started, run.env, mine,
                                  predictions.get(run.pk, 0)])
    if not rows.empty:
        failed = rows[rows["status"] != "ok"].groupby("_run_pk").size()
        for run in runs:
            run.failed = int(failed.get(run.pk, 0))
    return Database(url=url, runs={r.pk: r for r in runs}, rows=rows, converters=converters,
                    sample_counts=samples)


def rows_of(db: Database, run_pk: int) -> pd.DataFrame:
    if db.rows.empty:
        return db.rows
    return db.rows[db.rows["_run_pk"] == run_pk]


def _key_of(row) -> dict:
    threads = plain(row["threads"])
    xnn = row["xnnpack"]
    return {"device": str(row["device"]), "model": str(row["model"]),
            "compute_unit": str(row["compute_unit"]),
            "threads": None if threads is None or threads < 0 else int(threads),
            "runtime": "" if pd.isna(row["runtime"]) else str(row["runtime"]),
            "xnnpack": "" if pd.isna(xnn) else ("on" if bool(xnn) else "off")}


def run_points(conn, db: Database, run: Run) -> list[dict]:
    """One point per successful configuration of the run: the series key, the four metrics with
    their intervals (history.py's statistics) and the environment the row recorded."""
    rows = rows_of(db, run.pk)
    if rows.empty:
        return []
    folded = fold_rounds(rows.drop(columns=["_pk"]))
    config = [_key(r, CONFIG) for _, r in rows.iterrows()]  # each stored round's configuration
    raw = _RunSamples(conn, rows, config)
    points = []
    for _, row in folded[folded["status"] == "ok"].iterrows():
        point = {"run": run.pk, "key": _key_of(row), "architecture": plain(row["architecture"]),
                 "recipe": plain(row["recipe"]), "rounds": plain(row["rounds"])}
        for metric in METRICS:
            value, low, high = history._value(metric, row, rows, raw)
            point[metric] = [plain(value), plain(low), plain(high)]
        env = {name: plain(row[name]) if name in row else None for name, _ in ENV_FIELDS}
        env["converter"] = db.converters.get(str(row["sha256"]), "") or None
        env.update({k: v for k, v in run.env.items()
                    if any(w in k.lower() for w in _ENV_WORDS) and isinstance(v, (str, int))})
        point["env"] = {k: (str(v) if v is not None else None) for k, v in env.items()}
        mine = [int(pk) for pk, key in zip(rows["_pk"], config) if key == _key(row, CONFIG)]
        point["row_pks"] = mine
        point["samples"] = int(sum(db.sample_counts.get(pk, 0) for pk in mine))
        points.append(point)
    return points


class _RunSamples:
    """RawData's medians() for one run, from the samples table grouped by row (a stored row is
    one round of one configuration): the same series, in the same order, under the same seed as
    RawData gives them, without keying every sample line in Python."""

    def __init__(self, conn, rows: pd.DataFrame, config: list):
        pks = [int(p) for p in rows["_pk"]]
        by_row: dict = {pk: [] for pk in pks}
        for start in range(0, len(pks), 500):
            q = (sa.select(S.samples.c.row_pk, S.samples.c.latency_ms)
                 .where(S.samples.c.row_pk.in_(pks[start:start + 500]))
                 .order_by(S.samples.c.row_pk, S.samples.c.seq))
            for pk, value in conn.execute(q):
                by_row[pk].append(value)
        self._series: dict = {}
        order = sorted(zip(rows["round"].fillna(0), pks, config), key=lambda t: t[0])
        for _, pk, key in order:
            if by_row[pk]:
                # LATENCY_KEY is CONFIG without the model's name
                self._series.setdefault(_latency_of(key), []).append(
                    np.asarray(by_row[pk], dtype=float))

    def medians(self, key: tuple) -> np.ndarray:
        seed = zlib.crc32(repr(key).encode())  # RawData's seed for this configuration
        return stats.round_medians(self._series.get(key, []), seed)


_MODEL_AT = CONFIG.index("model")


def _latency_of(config_key: tuple) -> tuple:
    return config_key[:_MODEL_AT] + config_key[_MODEL_AT + 1:]


def env_label(name: str) -> str:
    return dict(ENV_FIELDS).get(name, name.replace("_", " "))


def series_of(db: Database, points_by_run: dict) -> list[Series]:
    """The series, each with its points oldest first, in a stable order (device, model, ...)."""
    found: dict = {}
    for run in db.runs.values():
        for point in points_by_run.get(run.pk, []):
            k = point["key"]
            ident = tuple(k[f] for f in SERIES_KEY)
            if ident not in found:
                found[ident] = Series(key=k, slug="", architecture=point["architecture"] or "",
                                      recipe=point["recipe"] or "",
                                      converter=point["env"].get("converter") or "")
            found[ident].points.append(point)
    out = sorted(found.values(), key=lambda s: tuple(str(s.key[f]) for f in SERIES_KEY))
    seen: set = set()
    for s in out:
        k = s.key
        parts = [k["device"], k["model"], k["compute_unit"],
                 "t" + ("x" if k["threads"] is None else str(k["threads"])), k["runtime"]]
        if k["xnnpack"] == "off":
            parts.append("noxnnpack")
        base = slug("--".join(parts))[:150]
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        s.slug = name
        s.converter = s.points[-1]["env"].get("converter") or ""
    return out


def resultset(conn, db: Database, row_pks: list, predictions: bool = True,
              lines: bool = True):
    """The report's ResultSet of these stored rows (one run, or a series' rows of one run)."""
    from edgebench.host.report.load import ResultSet

    rows = db.rows[db.rows["_pk"].isin(row_pks)]
    kinds = stored_lines(conn, rows) if lines else {}
    return ResultSet(rows=rows.drop(columns=["_pk", "_run_pk"]),
                     samples=stored_samples(conn, rows),
                     predictions=stored_predictions(conn, rows) if predictions else None,
                     **{k: v for k, v in kinds.items() if v is not None},
                     sources={d: rows.loc[rows["device"] == d, "source"].iloc[0]
                              for d in rows["device"].unique()})
