"""One page per series: its history as an interactive plot (every point opens its run's
report, its environment on hover), the steps kept in it, and every run as a table."""
from __future__ import annotations

from edgebench.host.publish import layout, plots
from edgebench.host.publish.data import env_label
from edgebench.host.publish.layout import esc, with_interval

_TABLE_ENV = ("runtime_version", "os", "cpu")


def render(db, series, steps: list, method, compare_links: dict) -> str:
    mine = [s for s in steps if s.series is series]
    kept = [s for s in mine if s.kept]
    figure = plots.figure(series, db.runs, kept, root="../")
    rows = []
    pts = series.points
    for i in range(len(pts) - 1, -1, -1):
        p = pts[i]
        run = db.runs[p["run"]]
        prev = db.runs[pts[i - 1]["run"]] if i else None
        link = compare_links.get((prev.pk, run.pk)) if prev else None
        rows.append([f'<a href="{run.page("../")}">{esc(run.run_id)}</a>', esc(run.started),
                     with_interval(p["p50"]), str(p["samples"] or "none"),
                     with_interval(p["accuracy"]), with_interval(p["energy"]),
                     with_interval(p["memory"]),
                     *[esc(p["env"].get(k) or "") for k in _TABLE_ENV],
                     f'<a href="../{link}">vs previous</a>' if link else ""])
    table = layout.table(["run", "started (UTC)", "p50 (ms, 95 % interval)", "samples",
                          "accuracy (%)", "energy (mJ)", "peak memory (MB)",
                          *[env_label(k) for k in _TABLE_ENV], "compare"], rows,
                         attrs=' id="eb-points"', numeric={2, 3, 4, 5, 6})
    if kept:
        items = "".join(
            f'<li><a class="eb-mark eb-{s.verdict}" href="../changes.html#{esc(s.anchor)}">'
            f"{esc(s.metric)} {s.change:+.1f} {s.unit}</a> ({esc(s.verdict)}) between "
            f'<a href="{db.runs[s.before["run"]].page("../")}">'
            f'{esc(db.runs[s.before["run"]].run_id)}</a> and '
            f'<a href="{db.runs[s.after["run"]].page("../")}">'
            f'{esc(db.runs[s.after["run"]].run_id)}</a>'
            + (f"; changed: {esc(', '.join(f'{a} {b} → {c}' for a, b, c in s.env_diff))}"
               if s.env_diff else "") + "</li>" for s in kept)
        steps_html = f'<ul id="eb-series-steps">{items}</ul>'
    else:
        steps_html = '<p id="eb-series-steps">No step detected.</p>'
    k = series.key
    facts = (f"device <strong>{esc(k['device'])}</strong>, model <strong>{esc(k['model'])}"
             f"</strong> ({esc(series.architecture)}, recipe {esc(series.recipe)}"
             + (f", converter {esc(series.converter)}" if series.converter else "")
             + f"), compute unit {esc(k['compute_unit'])}, threads "
             f"{'' if k['threads'] is None else k['threads']}, runtime {esc(k['runtime'])}"
             + (", XNNPACK off" if k["xnnpack"] == "off" else ""))
    body = (f"<h1>{esc(series.title)}</h1><p>{facts}; {len(pts)} run(s).</p>"
            f'<div class="eb-plot" id="eb-history" data-eb-plot="history"></div>'
            f'<p class="eb-muted">Click a point to open its run\'s report; hover for its '
            f"environment. Band: the p50's 95 % interval (block bootstrap of the raw "
            f"latencies); dashed lines: steps kept.</p>"
            f"<h2>Steps</h2>{steps_html}"
            f'<p class="eb-method">{esc(method.describe())}</p>'
            f"<h2>Runs</h2>{table}")
    return layout.page(f"edgebench: {series.title}", body, "../", data={"plots": {
        "history": figure}}, plots=True)
