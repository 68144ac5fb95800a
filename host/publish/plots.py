"""A series' history as a Plotly figure (its JSON is embedded in the page; plotly.js, from the
plotly wheel, draws it): p50 with its 95 % interval as a band, accuracy, energy and memory with
their intervals where recorded, the kept steps marked. Every point carries its run's report as
customdata[0] (a click opens it) and its environment for the hover."""
from __future__ import annotations

import json

from edgebench.host.publish.data import env_label
from edgebench.host.publish.layout import num
from edgebench.host.results_db.history import METRICS

_COLOR = "#3a6ea5"
_BAND = "rgba(58,110,165,0.18)"
_STEP = {"regression": "#b3261e", "improvement": "#1e7d32"}
HOVER_ENV = ("runtime_version", "os", "cpu", "device_model", "converter", "sha256")


def _x(started: str) -> str:
    """Plotly's date form of started_utc (no T, no Z)."""
    return started.replace("T", " ").rstrip("Z") if started else ""


def _interval_text(triple) -> str:
    value, low, high = triple
    if value is None:
        return "not recorded"
    if low is None or high is None:
        return f"{num(value)} (no interval)"
    return f"{num(value)} (95 % interval {num(low)}–{num(high)})"


def _custom(point: dict, run, metric: str, root: str) -> list:
    env = point.get("env") or {}
    env_lines = "<br>".join(f"{env_label(k)}: {str(env[k])[:12] if k == 'sha256' else env[k]}"
                            for k in HOVER_ENV + tuple(k for k in env if k not in HOVER_ENV
                                                       and k not in ("machine", "cores",
                                                                     "python", "numpy",
                                                                     "bundle_id", "governor",
                                                                     "freq_mhz"))
                            if env.get(k))
    return [run.page(root), run.run_id, run.started, _interval_text(point[metric]), env_lines]


HOVER = ("<b>%{customdata[1]}</b> %{customdata[2]}<br>%{customdata[3]}<br>%{customdata[4]}"
         "<br><i>click: the run's report</i><extra></extra>")


def figure(series, runs: dict, steps: list, root: str = "../") -> dict:
    """The figure as Plotly JSON (data, layout). make_subplots lays the panels out; the traces
    are written as plain dicts (plotly's validation of every point cost ~150 ms a page)."""
    from plotly.subplots import make_subplots

    pts = series.points
    metrics = ["p50"] + [m for m in ("accuracy", "energy", "memory")
                         if any(p[m][0] is not None for p in pts)]
    dated = all(runs[p["run"]].started for p in pts)
    xs = [_x(runs[p["run"]].started) if dated else runs[p["run"]].run_id for p in pts]
    layout = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                           subplot_titles=[f"{m} ({METRICS[m][0]}), 95 % interval"
                                           for m in metrics]).to_plotly_json()["layout"]
    layout.pop("template", None)  # 8 kB of styles for chart types a history never has
    data, shapes, notes = [], [], []
    for r, metric in enumerate(metrics, start=1):
        axis = "" if r == 1 else str(r)
        on = {"xaxis": f"x{axis}", "yaxis": f"y{axis}"}
        vals = [p[metric] for p in pts]
        custom = [_custom(p, runs[p["run"]], metric, root) for p in pts]
        y = [v[0] for v in vals]
        if metric == "p50":
            data += [dict(on, type="scatter", x=xs, y=[v[2] for v in vals], mode="lines",
                          line={"width": 0}, hoverinfo="skip", showlegend=False),
                     dict(on, type="scatter", x=xs, y=[v[1] for v in vals], mode="lines",
                          line={"width": 0}, fill="tonexty", fillcolor=_BAND,
                          hoverinfo="skip", name="95 % interval"),
                     dict(on, type="scatter", x=xs, y=y, mode="lines+markers", name="p50",
                          marker={"size": 9, "color": _COLOR}, line={"color": _COLOR},
                          customdata=custom, hovertemplate=HOVER)]
        else:
            plus = [None if v[2] is None or v[0] is None else v[2] - v[0] for v in vals]
            minus = [None if v[1] is None or v[0] is None else v[0] - v[1] for v in vals]
            data.append(dict(on, type="scatter", x=xs, y=y, mode="markers+lines", name=metric,
                             marker={"size": 8, "color": _COLOR},
                             line={"color": _COLOR, "dash": "dot"},
                             error_y={"type": "data", "array": plus, "arrayminus": minus,
                                      "visible": True},
                             customdata=custom, hovertemplate=HOVER, showlegend=False))
        layout[f"yaxis{axis}"]["title"] = {"text": METRICS[metric][0]}
        for step in steps:
            if step.metric != metric or not step.kept:
                continue
            x = xs[pts.index(step.after)]
            shapes.append({"type": "line", "x0": x, "x1": x, "xref": f"x{axis}", "y0": 0,
                           "y1": 1, "yref": f"y{axis} domain",
                           "line": {"color": _STEP[step.verdict], "dash": "dash", "width": 1.5}})
            notes.append({"x": x, "xref": f"x{axis}", "y": 1, "yref": f"y{axis} domain",
                          "text": f"{'▲' if step.change > 0 else '▼'} {step.change:+.1f} "
                                  f"{step.unit}", "showarrow": False, "yanchor": "bottom",
                          "font": {"color": _STEP[step.verdict], "size": 11}})
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")):
            axis.update(gridcolor="#e5ecf3", linecolor="#c8d4e3", zeroline=False)
    layout.update(height=260 * len(metrics) + 80, plot_bgcolor="white", paper_bgcolor="white",
                  font={"color": "#2a3f5f"}, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                  hovermode="closest", shapes=shapes,
                  annotations=layout.get("annotations", []) + notes,
                  legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return json.loads(json.dumps({"data": data, "layout": layout}, allow_nan=False,
                                 default=_plain))


def _plain(value):
    """numpy scalars from the figure's layout as JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)
