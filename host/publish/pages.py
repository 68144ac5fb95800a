"""The site's own pages: the index (one line per series, filters), the Changes page (every kept
step and every candidate that was not kept, with why) and the Compare page (any two runs)."""
from __future__ import annotations

import math

from edgebench.host.publish import layout
from edgebench.host.publish.layout import esc, with_interval


def _step_mark(db, step, latest_run: int) -> str:
    arrow = "▲" if step.change > 0 else "▼"
    when = " (latest run)" if step.after["run"] == latest_run else ""
    return (f'<a class="eb-mark eb-{step.verdict}" href="changes.html#{esc(step.anchor)}" '
            f'title="{esc(step.verdict)} in run {esc(db.runs[step.after["run"]].label)}">'
            f"{arrow} {step.metric} {step.change:+.1f} {step.unit}{when}</a>")


def _threads(t) -> str:
    return "" if t is None else str(t)


def index(db, series: list, steps: list, method, generated: str) -> str:
    kept = [s for s in steps if s.kept]
    by_series: dict = {}
    for s in kept:
        by_series.setdefault(s.series.slug, []).append(s)
    devices = sorted({s.key["device"] for s in series})
    models = sorted({s.key["model"] for s in series})
    rows, attrs = [], []
    for s in series:
        last = s.points[-1]
        run = db.runs[last["run"]]
        marks = by_series.get(s.slug, [])
        mark = _step_mark(db, marks[-1], last["run"]) if marks else ""
        if len(marks) > 1:
            mark += f' <span class="eb-muted">({len(marks)} steps)</span>'
        runtime = s.key["runtime"] + (f" {last['env'].get('runtime_version')}"
                                      if last["env"].get("runtime_version") else "")
        rows.append([
            esc(s.key["device"]), f'<a href="{s.page()}">{esc(s.key["model"])}</a>',
            esc(s.key["compute_unit"]), _threads(s.key["threads"]),
            esc(runtime) + (" (XNNPACK off)" if s.key["xnnpack"] == "off" else ""),
            esc(s.converter),
            f'<a href="{run.page()}">{esc(run.run_id)}</a><br>'
            f'<span class="eb-muted">{esc(run.started)}</span>',
            with_interval(last["p50"]), with_interval(last["accuracy"]),
            with_interval(last["energy"]), with_interval(last["memory"]),
            str(len(s.points)), layout.sparkline([p["p50"][0] for p in s.points]), mark])
        attrs.append(f' data-device="{esc(s.key["device"])}" data-model="{esc(s.key["model"])}"'
                     f' data-changed="{"1" if marks else ""}" id="series-{esc(s.slug)}"')
    table = layout.table(
        ["device", "model", "unit", "threads", "runtime", "converter", "latest run",
         "p50 (ms, 95 % interval)", "accuracy (%)", "energy (mJ)", "peak memory (MB)", "runs",
         "p50 trend", "change"], rows, attrs=' id="eb-series"', row_attrs=attrs,
        numeric={3, 7, 8, 9, 10, 11})
    regressions = sum(1 for s in kept if s.verdict == "regression")

    def select(name: str, label: str, values: list) -> str:
        opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (f'<label>{label} <select data-eb-filter="{name}" id="eb-filter-{name}">'
                f'<option value="">all</option>{opts}</select></label>')

    body = (f"<h1>edgebench results</h1>"
            f'<p>{len(series)} series on {len(devices)} device(s) from {len(db.runs)} stored '
            f'run(s) in <code>{esc(db.url)}</code>; {len(kept)} step(s) detected '
            f'({regressions} regression(s)) — see <a href="changes.html">Changes</a>. Each '
            f"value is the latest run's, with its 95 % interval (the statistics of "
            f'<code>bench-host history</code>). <span class="eb-muted">Published '
            f"{esc(generated)}.</span></p>"
            f'<div class="eb-filters">{select("device", "Device", devices)}'
            f'{select("model", "Model", models)}'
            f'<label><input type="checkbox" data-eb-filter="changed" id="eb-filter-changed"> '
            f'only series with a step</label><span class="eb-muted"><span id="eb-shown">'
            f"{len(series)}</span> shown</span></div>{table}")
    return layout.page("edgebench results", body, "", "index.html")


def _run_link(run, root: str) -> str:
    return (f'<a href="{run.page(root)}">{esc(run.run_id)}</a> '
            f'<span class="eb-muted">{esc(run.started)}</span>')


def _env_diff(diff: list) -> str:
    if not diff:
        return '<span class="eb-muted">nothing recorded differs</span>'
    return "<br>".join(f"{esc(label)}: {esc(old) or '—'} → <strong>{esc(new) or '—'}</strong>"
                       for label, old, new in diff)


def _interval(step) -> str:
    if step.low is None or step.high is None or math.isnan(step.low) or math.isnan(step.high):
        return ""
    return f"{step.low:+.1f} to {step.high:+.1f} {step.unit}"


def changes(db, steps: list, method, compare_links: dict) -> str:
    kept = sorted((s for s in steps if s.kept),
                  key=lambda s: (db.runs[s.after["run"]].started, s.series.slug), reverse=True)
    rejected = [s for s in steps if not s.kept]
    rows, attrs = [], []
    for s in kept:
        a, b = db.runs[s.before["run"]], db.runs[s.after["run"]]
        link = compare_links.get((a.pk, b.pk))
        rows.append([f'<a href="{s.series.page()}">{esc(s.series.title)}</a>', esc(s.metric),
                     f'<span class="eb-mark eb-{s.verdict}">{s.change:+.1f} {s.unit}</span>',
                     esc(_interval(s)), f"{esc(s.verdict)}<br>"
                     f'<span class="eb-muted">beyond {esc(s.rule)}</span>',
                     _run_link(a, ""), _run_link(b, ""),
                     f'<a href="{link}">compare</a>' if link else "", _env_diff(s.env_diff)])
        attrs.append(f' id="{esc(s.anchor)}" class="eb-step" data-verdict="{s.verdict}"'
                     f' data-series="{esc(s.series.slug)}" data-run="{esc(b.slug)}"')
    table = layout.table(["series", "metric", "change", "95 % interval", "verdict", "before",
                          "after", "", "what changed in the environment"], rows,
                         attrs=' id="eb-steps"', row_attrs=attrs, numeric={2, 3}) if kept \
        else '<p class="eb-note" id="eb-steps">No step detected.</p>'
    rrows, rattrs = [], []
    for s in rejected:
        a, b = db.runs[s.before["run"]], db.runs[s.after["run"]]
        rrows.append([f'<a href="{s.series.page()}">{esc(s.series.title)}</a>', esc(s.metric),
                      "" if math.isnan(s.change) else f"{s.change:+.1f} {s.unit}",
                      esc(_interval(s)), _run_link(a, ""), _run_link(b, ""), esc(s.reason)])
        rattrs.append(f' class="eb-candidate" data-series="{esc(s.series.slug)}"'
                      f' data-run="{esc(b.slug)}"')
    others = layout.table(["series", "metric", "change", "95 % interval", "before", "after",
                           "why not kept"], rrows, attrs=' id="eb-rejected"', row_attrs=rattrs,
                          numeric={2, 3}) if rejected else "<p>None.</p>"
    body = (f"<h1>Changes</h1><p>Steps detected in the series, newest first: each with its "
            f"size and 95 % interval (run after ÷ run before), the runs on either side, and "
            f"what their recorded environment says changed between them.</p>"
            f'<p class="eb-method" id="eb-method">{esc(method.describe())}</p>{table}'
            f"<h2>Candidates not kept</h2><p>Proposed by the change-point search, rejected by "
            f"the test on the raw samples or by the threshold.</p>{others}")
    return layout.page("edgebench: changes", body, "", "changes.html")


def compare_index(db, pairs: list, serve_hint: str) -> str:
    """pairs: [(run A, run B, relative link, headline)]."""
    runs = list(db.runs.values())
    options = "".join(f'<option value="{esc(r.slug)}">{esc(r.run_id)} on {esc(r.device)} '
                      f"({esc(r.started)})</option>" for r in reversed(runs))
    form = (f'<form id="eb-pick" class="eb-filters"><label>Run A (baseline) <select name="a">'
            f'{options}</select></label><label>Run B <select name="b">{options}</select>'
            f'</label><label>Rows <select name="match"><option value="">the same rows '
            f'(model file, recipe, unit, threads, device)</option><option value="architecture,'
            f'recipe,compute_unit,threads">the same models across devices</option></select>'
            f'</label><button type="submit">Compare</button></form>'
            f'<p id="eb-pick-result" class="eb-note" hidden></p>')
    rows = [[esc(a.device), _run_link(a, "../"), _run_link(b, "../"), esc(headline),
             f'<a href="../{link}">open</a>'] for a, b, link, headline in pairs]
    table = layout.table(["device", "run A", "run B", "summary", ""], rows,
                         attrs=' id="eb-pairs"') if rows else "<p>None yet.</p>"
    data = {"runs": {r.slug: {"spec": r.spec, "device": r.device} for r in runs},
            "pairs": {f"{a.slug}|{b.slug}": "../" + link for a, b, link, _ in pairs},
            "db": db.url}
    body = (f"<h1>Compare two runs</h1><p>The table and statistics of <code>bench-host "
            f"compare</code>: p50 B/A by a block bootstrap of both runs' raw latencies, "
            f"Δ accuracy by McNemar's exact test, energy and memory over rounds. {serve_hint}"
            f"</p>{form}<h2>Consecutive runs</h2>{table}")
    return layout.page("edgebench: compare", body, "../", "compare/index.html", data=data)
