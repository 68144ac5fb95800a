"""The report's numbers: one summary row per device × run × model × recipe × compute unit ×
threads, with the comparisons against that model's fp32 row on the device's CPU and against the
same recipe on the CPU, and the three views built from it (per device, the
paper's accuracy table, across devices) as display strings. The strings come from formats.py, so
the Markdown, HTML and terminal renderings (render.py) show the same rounded numbers."""
from __future__ import annotations

import math

import pandas as pd

from edgebench.device.schema import OUTPUT_KEY
from edgebench.device.units import BASELINE_UNIT, unit_rank
from edgebench.host.report.energy import ENERGY_COLUMNS, add_energy, energy_draws
from edgebench.host.report.formats import (fmt_column_ci, fmt_delta, fmt_load, fmt_mb,
                                           fmt_mj, fmt_ms, fmt_num, fmt_pct, fmt_rounds,
                                           fmt_runtime, fmt_speedup_ci, fmt_threads, fmt_unit,
                                           significance)
from edgebench.host.report.uncertainty import (UNCERTAINTY_COLUMNS, RawData, add_uncertainty,
                                               fold_rounds)

# Row order everywhere: the baseline first, then by how aggressively the recipe quantizes.
RECIPE_ORDER = ("fp32", "dynamic", "fp16", "int8", "int16x8")
BASELINE = "fp32"

# summary.csv columns, units in the names so the file explains itself.
SUMMARY_COLUMNS = (
    "device", "place", "place_tags", "run_id", "model", "recipe", "compute_unit", "threads",
    "status", "flags", "error",
    "size_mb", "accuracy", "delta_accuracy_pp", "sensitivity", "specificity", "auc", "agreement",
    "n_test", "p50_ms", "p90_ms", "mean_ms", "std_ms", "count", "speedup_vs_fp32",
    "speedup_vs_cpu", "load_ms", "warm_load_ms", "accelerator_init_ms", "first_inference_ms",
    "peak_rss_mb", "accelerator", "api",
    "accelerator_device", "software_accelerator", "fully_accelerated", "delegated_nodes",
    "fallback_nodes", "runtime", "runtime_version", "xnnpack", "throttled", "emulated",
    "device_model", "model_file", "sha256", "converter",
) + UNCERTAINTY_COLUMNS + ENERGY_COLUMNS
CPU = BASELINE_UNIT  # the compute unit every comparison is anchored on
# Enough digits for microsecond latencies and kilobyte models (the test models are that small).
_ROUND = {"size_mb": 6, "accuracy": 4, "delta_accuracy_pp": 2, "sensitivity": 4,
          "specificity": 4, "auc": 4, "agreement": 4, "p50_ms": 5, "p90_ms": 5, "mean_ms": 5,
          "std_ms": 5, "load_ms": 2, "warm_load_ms": 2, "accelerator_init_ms": 2,
          "first_inference_ms": 3, "peak_rss_mb": 1, "power_hz": 2, "power_window_s": 3,
          "idle_power_w": 4, "avg_power_w": 4}


def _round_sig(v, digits: int = 4):
    if pd.isna(v) or v == 0:
        return v
    return round(float(v), digits - 1 - int(math.floor(math.log10(abs(float(v))))))


def _recipe_rank(recipe: str) -> int:
    return RECIPE_ORDER.index(recipe) if recipe in RECIPE_ORDER else len(RECIPE_ORDER)


def _unit_rank(unit: str) -> tuple:
    return unit_rank(unit)


def _flags(row: pd.Series) -> str:
    flags = []
    if row["status"] != "ok":
        reason = str(row["error"]).strip() if pd.notna(row["error"]) else ""
        status = str(row["status"]) or "error"
        flags.append(f"{status}: {reason}" if reason else status)
    elif pd.notna(row["error"]) and str(row["error"]).strip():
        # An ok row can carry a note, e.g. "accuracy not measured: no test set".
        flags.append(str(row["error"]).strip())
    if row["throttled"]:
        extra = row.get("throttled_flags")
        flags.append(f"throttled ({extra})" if pd.notna(extra) and str(extra).strip()
                     else "throttled")
    if row["emulated"]:
        flags.append("emulated")
    if row["software_accelerator"]:
        flags.append("software accelerator: timings not representative")
    fully = row["fully_accelerated"]
    if row["status"] == "ok" and pd.notna(fully) and not bool(fully):
        taken = row["delegated_nodes"]
        flags.append("partly on the CPU" + (f" ({int(taken)} ops on the {row['accelerator']})"
                                            if pd.notna(taken) else ""))
    return "; ".join(flags)


def build_summary(rows: pd.DataFrame, samples: pd.DataFrame | None = None,
                  predictions: pd.DataFrame | None = None,
                  power: pd.DataFrame | None = None) -> pd.DataFrame:
    """The summary table from load_results' rows. Speedup = fp32 p50 / this p50 and Δ accuracy =
    (this − fp32) in percentage points, where the fp32 row is the same model measured on the same
    device's CPU, in the same run, with the same thread count; speedup_vs_cpu = p50 of the same
    recipe on that CPU / this p50 (accelerator rows only). Empty when the row compared with is
    absent or failed. Rounds are folded first (timings: the median over rounds); samples and
    predictions (load_results' raw files) give every figure its interval (uncertainty.py), power
    (power_samples.csv) the energy figures theirs (energy.py)."""
    draws = energy_draws(rows, power)  # per round, so before the rounds are folded
    df = _one_row_per_configuration(rows)
    ok = df["status"] == "ok"
    df = _compare_with_baselines(df, ok)
    df = add_uncertainty(df, RawData(samples, predictions))
    df = add_energy(df, draws)
    df.loc[~ok, ["accuracy", "sensitivity", "specificity", "auc", "agreement",
                 "p50_ms", "p90_ms", "mean_ms", "std_ms", "energy_mj",
                 "energy_above_idle_mj"]] = math.nan
    df["flags"] = df.apply(_flags, axis=1)
    # rename maps each label once, so the two model columns swap names without clashing.
    df = df.rename(columns={"architecture": "model", "model": "model_file",
                            "file_size_mb": "size_mb"})
    out = _in_measured_order(df)[list(SUMMARY_COLUMNS)].reset_index(drop=True)
    return _rounded(out)


def _one_row_per_configuration(rows: pd.DataFrame) -> pd.DataFrame:
    """Rounds folded, labgrid's columns filled, and each model split into its architecture and
    conversion route."""
    df = fold_rounds(rows.copy())
    for col in ("place", "place_tags"):   # labgrid place and tags; empty for other devices
        df[col] = df[col].fillna("") if col in df else ""
    # Each conversion route is its own model (export/converters): its recipes are compared with
    # its own fp32, and every table shows it as <arch>.<converter>.
    from edgebench.host.export.converters import CONVERTERS, converter_of

    df["converter"] = df["model"].map(converter_of)
    df["architecture"] = [CONVERTERS[c].stem(a) if isinstance(a, str) else a
                          for a, c in zip(df["architecture"], df["converter"])]
    return df


def _compared_rows(frame: pd.DataFrame, on: list, prefix: str, values: dict) -> pd.DataFrame:
    """The rows compared with, once per key `on`: the `values` columns renamed, and which row it
    is (OUTPUT_KEY, for its raw files) under `prefix`."""
    frame = frame.drop_duplicates(on)
    out = frame[on].copy()
    for col, name in values.items():
        out[name] = frame[col]
    for col in OUTPUT_KEY:
        out[prefix + col] = frame[col]
    return out


def _compare_with_baselines(df: pd.DataFrame, ok: pd.Series) -> pd.DataFrame:
    """speedup_vs_fp32, speedup_vs_cpu and delta_accuracy_pp, with the rows they compare with
    (_base_*: fp32 on the CPU; _cpu_*: the same recipe on the CPU) for the intervals."""
    on_cpu = df["compute_unit"] == CPU
    # Same runtime and XNNPACK setting too: a run may measure both, and each is its own baseline.
    # An accelerator row (LiteRT's CompiledModel) is compared with the CPU rows of its run.
    cpu_runtime = (df[on_cpu].drop_duplicates(["device", "run_id"])
                   .set_index(["device", "run_id"])["runtime"])
    df["_rt"] = df["runtime"].where(on_cpu, pd.Series(
        list(zip(df["device"], df["run_id"])), index=df.index).map(cpu_runtime))
    key = ["device", "run_id", "architecture", "threads", "_rt", "xnnpack"]
    # A duplicated baseline (two copies of one run) must not multiply rows in the merge.
    cpu_ok = df[ok & on_cpu]
    base = _compared_rows(cpu_ok[cpu_ok["recipe"] == BASELINE], key, "_base_",
                          {"p50_ms": "_base_p50", "accuracy": "_base_acc"})
    same = _compared_rows(cpu_ok, key + ["recipe"], "_cpu_", {"p50_ms": "_cpu_p50"})
    df = df.merge(base, on=key, how="left", sort=False)
    df = df.merge(same, on=key + ["recipe"], how="left", sort=False)
    df["speedup_vs_fp32"] = (df["_base_p50"] / df["p50_ms"]).where(ok)
    df["speedup_vs_cpu"] = (df["_cpu_p50"] / df["p50_ms"]).where(ok & (df["compute_unit"] != CPU))
    df["delta_accuracy_pp"] = ((df["accuracy"] - df["_base_acc"]) * 100.0).where(ok)
    return df


def _in_measured_order(df: pd.DataFrame) -> pd.DataFrame:
    """Models and devices keep the order the agent measured them in (the manifest's order),
    recipes and compute units theirs."""
    model_rank = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}
    device_rank = {d: i for i, d in enumerate(dict.fromkeys(df["device"]))}
    df = df.assign(_d=df["device"].map(device_rank), _m=df["model"].map(model_rank),
                   _r=df["recipe"].map(_recipe_rank), _u=df["compute_unit"].map(_unit_rank))
    return df.sort_values(["_d", "_m", "_r", "recipe", "_u", "threads"], kind="stable")


def _rounded(out: pd.DataFrame) -> pd.DataFrame:
    for col, digits in _ROUND.items():
        out[col] = out[col].round(digits)
    # A ratio: significant digits, since int16x8 can be 0.0363× and int8 12.34×.
    out["speedup_vs_fp32"] = out["speedup_vs_fp32"].map(_round_sig)
    out["speedup_vs_cpu"] = out["speedup_vs_cpu"].map(_round_sig)
    for col in ("speedup_vs_fp32_ci_low", "speedup_vs_fp32_ci_high", "speedup_vs_cpu_ci_low",
                "speedup_vs_cpu_ci_high", "p50_ci_low", "p50_ci_high", "mcnemar_p"):
        out[col] = out[col].map(_round_sig)
    for col in ("accuracy_ci_low", "accuracy_ci_high", "sensitivity_ci_low",
                "sensitivity_ci_high", "specificity_ci_low", "specificity_ci_high",
                "auc_ci_low", "auc_ci_high", "p50_round_spread"):
        out[col] = out[col].round(4)
    for col in ("delta_accuracy_ci_low_pp", "delta_accuracy_ci_high_pp"):
        out[col] = out[col].round(2)
    for col in ENERGY_COLUMNS[7:-1]:  # energies, their inverses and ratios: significant digits
        out[col] = out[col].map(lambda v: _round_sig(v, 5))
    return out


def devices(summary: pd.DataFrame) -> list[str]:
    """Devices in measured order, those of one labgrid place together."""
    order = list(dict.fromkeys(summary["device"]))
    place = summary.drop_duplicates("device").set_index("device")["place"]
    first = {p: i for i, p in enumerate(dict.fromkeys(place[d] or f"\0{d}" for d in order))}
    return sorted(order, key=lambda d: first[place[d] or f"\0{d}"])


def device_heading(summary: pd.DataFrame, device: str) -> str:
    """The device's name, and its labgrid place and tags when it was one."""
    row = summary[summary["device"] == device].iloc[0]
    if not row["place"]:
        return device
    tags = f", {row['place_tags']}" if row["place_tags"] else ""
    return f"{device} (labgrid place {row['place']}{tags})"


def has_accelerators(d: pd.DataFrame) -> bool:
    return bool((d["compute_unit"] != CPU).any())


def device_table(summary: pd.DataFrame, device: str) -> pd.DataFrame:
    """The per-device table as display strings, headers with units; values carry their 95 %
    intervals in parentheses where the raw files allowed one."""
    d = summary[summary["device"] == device]
    rounds = d["rounds"].fillna(1)
    table = pd.DataFrame({
        "model": d["model"],
        "recipe": d["recipe"],
        "unit": d.apply(fmt_unit, axis=1),
        "API": d["api"].fillna(""),
        "threads": d["threads"].map(fmt_threads),
        "size (MB)": d["size_mb"].map(fmt_mb),
        "accuracy (%)": fmt_column_ci(d, "accuracy", fmt_pct),
        "Δ acc vs fp32 (pp)": d.apply(fmt_delta, axis=1),
        "sensitivity (%)": fmt_column_ci(d, "sensitivity", fmt_pct),
        "specificity (%)": fmt_column_ci(d, "specificity", fmt_pct),
        "AUC": fmt_column_ci(d, "auc", fmt_num),
        "p50 (ms)": fmt_column_ci(d, "p50_ms", fmt_ms, "p50_ci_low", "p50_ci_high"),
        "p90 (ms)": d["p90_ms"].map(fmt_ms),
        "mJ/inference": fmt_column_ci(d, "energy_mj", fmt_mj, "energy_ci_low", "energy_ci_high"),
        "rounds (p50 spread)": [fmt_rounds(n, v) for n, v in zip(rounds, d["p50_round_spread"])],
        "speedup vs fp32": d.apply(lambda r: fmt_speedup_ci(r, "speedup_vs_fp32"), axis=1),
        "speedup vs CPU": d.apply(lambda r: fmt_speedup_ci(r, "speedup_vs_cpu"), axis=1),
        "significant?": d.apply(significance, axis=1),
        "load (ms): warm (cold, init)": d.apply(fmt_load, axis=1),
        "peak memory (MB)": d["peak_rss_mb"].map(lambda v: fmt_num(v, 1)),
        "runtime": d.apply(fmt_runtime, axis=1),
        "flags": d["flags"],
    }).reset_index(drop=True)
    if not has_accelerators(d):  # a CPU-only device: the unit columns would say "cpu" only
        table = table.drop(columns=["speedup vs CPU"])
    if (rounds <= 1).all():
        table = table.drop(columns=["rounds (p50 spread)"])
    if d["energy_mj"].isna().all():  # no --power: the energy section says why
        table = table.drop(columns=["mJ/inference"])
    if d["warm_load_ms"].isna().all():  # results before schema 4 time the cold load only
        table = table.drop(columns=["load (ms): warm (cold, init)"])
    return table


def _accuracy_pivot(d: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy, dagger): model × recipe. Accuracy does not depend on the thread count: one
    value per cell, a successful row when there is one, the CPU's where it was measured (the
    paper's table has one number per cell). -1 = failed everywhere (shown as "error"); NaN = not
    measured. dagger: the cell differs from fp32 by McNemar's test at p < 0.05."""
    d = d.assign(_failed=(d["status"] != "ok"), _acc=(d["compute_unit"] != CPU))
    first = d.sort_values(["_failed", "_acc"], kind="stable").drop_duplicates(["model", "recipe"])
    recipes = sorted(first["recipe"].unique(), key=lambda r: (_recipe_rank(r), r))
    models = list(dict.fromkeys(d["model"]))

    def cells(values: str) -> pd.DataFrame:
        return first.pivot(index="model", columns="recipe", values=values).reindex(
            index=models, columns=recipes)

    failed = cells("_failed").astype("boolean").fillna(False).astype(bool)
    dagger = cells("accuracy_differs").astype("boolean").fillna(False).astype(bool)
    return cells("accuracy").mask(failed, -1.0), dagger


def paper_view(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Accuracy (%) by model (rows) × recipe (columns), as the paper lays it out, † on a recipe
    whose accuracy differs from fp32 (McNemar, p < 0.05). One table when every device agrees to
    0.05 pp (the same .tflite files should), else one per device."""
    pivots = {dev: _accuracy_pivot(summary[summary["device"] == dev]) for dev in devices(summary)}
    pivots = {dev: p for dev, p in pivots.items() if not p[0].empty}
    if not pivots:
        return {}
    first, first_dagger = next(iter(pivots.values()))
    same = all(p.shape == first.shape and list(p.index) == list(first.index)
               and list(p.columns) == list(first.columns)
               and ((p - first).abs().fillna(0) <= 0.0005).all().all()
               and (p.isna() == first.isna()).all().all() and (dg == first_dagger).all().all()
               for p, dg in pivots.values())
    chosen = {"all devices": (first, first_dagger)} if same and len(pivots) > 1 else pivots
    return {label: _display_pivot(*p) for label, p in chosen.items()}


def _display_pivot(pivot: pd.DataFrame, dagger: pd.DataFrame) -> pd.DataFrame:
    shown = pivot.map(lambda v: "error" if v == -1.0 else fmt_pct(v))
    shown = shown.where(~dagger, shown + "†")
    shown.columns = [f"{c} (%)" for c in shown.columns]
    shown.insert(0, "model", shown.index)
    return shown.reset_index(drop=True)


def cross_device_view(summary: pd.DataFrame) -> pd.DataFrame:
    """Model × recipe rows with p50 and accuracy per device side by side, each at the largest
    thread count that device measured it with (what a deployment would pick). Empty with fewer
    than 2 devices."""
    devs = devices(summary)
    if len(devs) < 2:
        return pd.DataFrame()
    cols = ["model", "recipe", "compute_unit"]
    keys = summary.drop_duplicates(cols)[cols]
    table = keys.reset_index(drop=True).rename(columns={"compute_unit": "unit"})
    idx = pd.MultiIndex.from_frame(keys)
    for dev in devs:
        d = summary[summary["device"] == dev].sort_values("threads", kind="stable")
        at = d.drop_duplicates(cols, keep="last").set_index(cols)
        at = at.reindex(idx)
        threads = set(at["threads"].dropna())
        one = len(threads) == 1
        p50, acc = [], []
        for _, r in at.iterrows():
            if pd.isna(r["status"]):
                p50.append("")
                acc.append("")
            elif r["status"] != "ok":
                p50.append("error")
                acc.append("error")
            else:
                suffix = "" if one else f" ({fmt_threads(r['threads'])} thr)"
                p50.append(fmt_ms(r["p50_ms"]) + suffix)
                acc.append(fmt_pct(r["accuracy"]))
        head = f"{dev} p50 (ms, {fmt_threads(min(threads))} thr)" if one else f"{dev} p50 (ms)"
        table[head] = p50
        table[f"{dev} accuracy (%)"] = acc
    return table
