"""Find the device agent's results.csv files under the folders the user names and read them into
one table, one row per model × compute unit × thread count per device and run.

The CSV contract (record types: columns, kinds, keys, the version each column arrived in and
what older files mean by its absence) is defined once in `edgebench.device.schema`; this module
reads files against it and migrates older ones from the same table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from edgebench.device.schema import (
    BOOL, ENV_JSON, FLOAT, FRAMES, INT, OP_PROFILE, POWER_SAMPLES, PREDICTIONS, RESULT_COLUMNS,
    RESULTS, RESULTS_SCHEMA_VERSION, ROBUSTNESS, SAMPLES, SCENARIOS, SOAK, TRISTATE,
)
from edgebench.host.errors import UserError

RESULTS_FILE = RESULTS.file
ENV_FILE = ENV_JSON
PLACE_FILE = "place.json"   # labgrid place and tags (host/targets/labgrid_fleet.py writes it)
NUMERIC_COLUMNS = RESULTS.of_kind(INT, FLOAT)
BOOL_COLUMNS = RESULTS.of_kind("bool")  # absent = not flagged
_TRUE = {"1", "true", "yes", "y", "t", "on"}
_FALSE = {"0", "false", "no", "n", "f", "off"}

# op_profile.csv's columns the report keeps (schema 6, --profile-ops), device added.
OP_PROFILE_KEEP = [c for c in OP_PROFILE.names if c != "schema_version"]


def empty_op_profile() -> pd.DataFrame:
    """ResultSet.op_profile where no folder has an op_profile.csv: no lines, the same columns."""
    return pd.DataFrame(columns=OP_PROFILE_KEEP + ["device"])


# env.json keys that name the target better than its folder does (deploy may write one of these).
_NAME_KEYS = ("target", "target_name", "device_name")


@dataclass
class ResultSet:
    """Every result row found, plus what the report needs to say about where they came from."""
    rows: pd.DataFrame                          # RESULT_COLUMNS + device, place, place_tags, source
    samples: pd.DataFrame = None                # SAMPLES.key + device, run_id, latency_ms
    predictions: pd.DataFrame = None            # PREDICTIONS.key + device, run_id, image, ...
    robustness: pd.DataFrame = None             # ROBUSTNESS_COLUMNS + device
    # Schema 4, each None when no folder has the file (the report then has no such section):
    power: pd.DataFrame = None                  # POWER_SAMPLES columns + device
    soak: pd.DataFrame = None                   # SOAK columns + device
    scenarios: pd.DataFrame = None              # SCENARIOS columns + device
    frames: pd.DataFrame = None                 # FRAMES columns + device
    # Schema 6 (--profile-ops): one line per node per profiled row, OP_PROFILE_KEEP + device;
    # empty (never None) when no folder has the file
    op_profile: pd.DataFrame = field(default_factory=empty_op_profile)
    env: dict[str, dict] = field(default_factory=dict)   # device label -> env.json (or {})
    sources: dict[str, Path] = field(default_factory=dict)  # device label -> results.csv
    notes: list[str] = field(default_factory=list)          # skipped/empty files, deduplication


def find_results(paths: list[Path]) -> list[Path]:
    """Every results.csv under the given folders (a target, run or results-root folder, or the
    file itself), each once, in a stable order."""
    if not paths:
        raise UserError("give at least one results folder")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
        if path.is_file():
            if path.name != RESULTS_FILE:
                raise UserError(f"{path}: expected a folder or a {RESULTS_FILE}")
            hits = [path]
        else:
            if not any(path.iterdir()):
                raise UserError(f"{path}: the folder is empty (no {RESULTS_FILE} to report on)")
            hits = sorted(p for p in path.rglob(RESULTS_FILE) if p.is_file())
            if not hits:
                raise UserError(f"{path}: no {RESULTS_FILE} found in this folder or below it; "
                                f"point at a run folder written by `bench-host deploy`")
        for hit in hits:
            if hit.resolve() not in {f.resolve() for f in found}:
                found.append(hit)
    return found


def _parse_bool(series: pd.Series) -> pd.Series:
    return series.map(lambda v: str(v).strip().lower() in _TRUE if pd.notna(v) else False)


def _parse_tristate(series: pd.Series) -> pd.Series:
    """on/off (the agent writes xnnpack so), true/false, or unknown when blank."""
    def one(v):
        text = str(v).strip().lower() if pd.notna(v) else ""
        return True if text in _TRUE else False if text in _FALSE else pd.NA
    return series.map(one).astype("boolean")


def read_results_csv(path: Path) -> pd.DataFrame:
    """One results.csv as a DataFrame with numeric and boolean columns typed; refuses files of a
    newer schema and files missing columns of the current one."""
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    try:
        # Everything as text first: error messages and hashes must not be coerced.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable CSV ({first})") from None
    if "schema_version" not in df.columns:
        raise UserError(f"{path}: no schema_version column; not a results file of the edgebench "
                        f"agent")
    versions = pd.to_numeric(df["schema_version"], errors="coerce")
    if versions.isna().any():
        raise UserError(f"{path}: schema_version must be a whole number in every row")
    newest = int(versions.max()) if len(versions) else RESULTS_SCHEMA_VERSION
    if newest > RESULTS_SCHEMA_VERSION:
        raise UserError(f"{path}: results schema version {newest} is newer than this edgebench "
                        f"reads ({RESULTS_SCHEMA_VERSION}); upgrade edgebench on this host")
    for col, value in RESULTS.missing_before(newest).items():
        if col not in df.columns:
            df[col] = value
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing required column(s): {', '.join(missing)}")
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in BOOL_COLUMNS:
        df[col] = _parse_bool(df[col])
    for col in RESULTS.of_kind(TRISTATE):
        df[col] = _parse_tristate(df[col])
    df["compute_unit"] = df["compute_unit"].fillna("cpu")
    df["status"] = df["status"].fillna("error").str.strip().str.lower()
    # The agent names models "<architecture>.<recipe>"; older hand-made rows may omit one of them.
    model = df["model"].fillna("")
    df["architecture"] = df["architecture"].fillna(model.str.split(".").str[0])
    df["recipe"] = df["recipe"].fillna(model.str.split(".").str[-1]).str.strip().str.lower()
    return df[list(RESULT_COLUMNS)]


def read_raw(path: Path, record, version: int, keep: list) -> pd.DataFrame | None:
    """The `keep` columns of a raw file beside a results.csv (latency_samples.csv,
    predictions.csv, robustness.csv: a schema.Record) of schema `version`, typed and with the
    columns that version lacked filled in from the record's table; None when absent, unreadable,
    older than the file itself or of another schema (those rows then get no interval)."""
    if version < record.since or not path.is_file() or path.stat().st_size == 0:
        return None
    missing = record.missing_before(version)
    want = [c for c in keep if c not in missing]
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                         usecols=lambda c: c in want)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return None
    if set(df.columns) != set(want):
        return None
    for col in keep:
        if col in missing:
            df[col] = missing[col]
    return typed_raw(df, record, keep)


def typed_raw(df: pd.DataFrame, record, keep: list) -> pd.DataFrame:
    """The `keep` columns of a raw file's lines typed by its schema.Record (numbers, on/off);
    shared with the results database, which gives the same lines back from JSON."""
    for col in keep:
        kind = record.by_name[col].kind
        if kind in (INT, FLOAT):
            df[col] = pd.to_numeric(df[col], errors="coerce")
        elif kind == TRISTATE:
            df[col] = _parse_tristate(df[col])
        elif kind == BOOL:
            df[col] = _parse_bool(df[col])
    return df


# The raw files beside a results.csv, in ResultSet's order, with the columns the report keeps.
_RAW = (
    ("samples", SAMPLES, ["run_id", *SAMPLES.key, "latency_ms"]),
    ("predictions", PREDICTIONS, ["run_id", *PREDICTIONS.key, "testset", "positive_class",
                                  "image", "label", "predicted", "score"]),
    ("robustness", ROBUSTNESS, list(ROBUSTNESS.names)),
    ("power", POWER_SAMPLES, ["run_id", "model", *POWER_SAMPLES.key, "power_source", "phase",
                              "t_s", "rail", "watts"]),
    ("soak", SOAK, [c for c in SOAK.names if c != "schema_version"]),
    ("scenarios", SCENARIOS, [c for c in SCENARIOS.names if c != "schema_version"]),
    ("frames", FRAMES, [c for c in FRAMES.names if c not in ("schema_version", "model")]),
    ("op_profile", OP_PROFILE, OP_PROFILE_KEEP),
)


# name -> (record, kept columns): how the results database types the lines it gives back
RAW_KINDS = {name: (record, keep) for name, record, keep in _RAW}


def _raw_files(folder: Path, version: int) -> tuple:
    """The raw files (_RAW's order) of one results folder of schema `version`; None for each
    that is absent or unreadable."""
    return tuple(read_raw(folder / record.file, record, version, keep)
                 for _, record, keep in _RAW)


def _read_env(folder: Path) -> dict:
    env_path = folder / ENV_FILE
    if not env_path.is_file():
        return {}
    try:
        env = json.loads(env_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the CSV rows carry the environment too; a broken env.json costs nothing
    return env if isinstance(env, dict) else {}


def _place(folder: Path) -> tuple[str, str]:
    """(place, "k=v,...") from the place.json a labgrid deploy writes beside the CSVs; empty for
    a device that was not a labgrid place."""
    try:
        info = json.loads((folder / PLACE_FILE).read_text(encoding="utf-8"))
        tags = info.get("tags") or {}
        return str(info.get("place") or ""), ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    except (OSError, ValueError, AttributeError):
        return "", ""


def _device_name(folder: Path, env: dict) -> str:
    for key in _NAME_KEYS:
        value = env.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return folder.name


def _dedupe(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A resumed run may hold an error row and a later retry of the same model: keep the last
    successful row per configuration (the agent's own resume key), or the last row if none
    succeeded."""
    if df.empty:
        return df, 0
    key = list(RESULTS.key)
    ranked = df.assign(_ok=(df["status"] == "ok").astype(int), _pos=range(len(df)))
    keep = ranked.sort_values(["_ok", "_pos"]).groupby(key, dropna=False, sort=False).tail(1)
    keep = keep.sort_values("_pos").drop(columns=["_ok", "_pos"])
    return keep, len(df) - len(keep)


def load_results(paths: list[Path]) -> ResultSet:
    """Read every results.csv under `paths` into one ResultSet; each file's rows get a `device`
    label (the target folder's name, or env.json's name for it, with the run id added when the
    same device appears in several runs)."""
    files = find_results([Path(p) for p in paths])
    frames, envs, notes, raws, names = [], [], [], [], []
    for csv_path in files:
        df = read_results_csv(csv_path)
        env = _read_env(csv_path.parent)
        if df.empty:
            notes.append(f"{csv_path}: no result rows (the run may have stopped before the first "
                         f"model finished)")
            continue
        df, dropped = _dedupe(df)
        if dropped:
            notes.append(f"{csv_path}: {dropped} superseded row(s) of a resumed run left out")
        df["device"] = _device_name(csv_path.parent, env)
        df["place"], df["place_tags"] = _place(csv_path.parent)
        df["source"] = str(csv_path)
        frames.append(df)
        envs.append(env)
        raws.append(_raw_files(csv_path.parent, int(df["schema_version"].max())))
        names.append(df["device"].iloc[0])
    if not frames:
        raise UserError(f"no result rows in {', '.join(str(f) for f in files)}")

    # One label per (device, run): the same board measured in two runs must stay two groups,
    # because a speedup is only meaningful within one run.
    runs_per_device: dict[str, set] = {}
    for df in frames:
        runs_per_device.setdefault(df["device"].iloc[0], set()).update(df["run_id"].fillna(""))

    def label(name: str, run_ids: pd.Series):
        return name + " (" + run_ids.fillna("?") + ")" if len(runs_per_device[name]) > 1 else name

    env_by_label: dict[str, dict] = {}
    source_by_label: dict[str, Path] = {}
    for df, env, name in zip(frames, envs, names):
        df["device"] = label(name, df["run_id"])
        for label_ in df["device"].unique():
            env_by_label.setdefault(label_, env)
            source_by_label.setdefault(label_, Path(df["source"].iloc[0]))
    rows = pd.concat(frames, ignore_index=True)
    gathered = tuple([] for _ in _RAW)
    for name, raw_files in zip(names, raws):
        for raw, out in zip(raw_files, gathered):
            if raw is not None:
                raw["device"] = label(name, raw["run_id"])
                out.append(raw)
    raw = {name: pd.concat(g, ignore_index=True) if g else None
           for (name, _, _), g in zip(_RAW, gathered)}
    if raw["op_profile"] is None:
        raw["op_profile"] = empty_op_profile()
    return ResultSet(rows=rows, env=env_by_label, sources=source_by_label, notes=notes, **raw)
