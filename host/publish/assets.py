"""The site's own style sheet and script, written once into assets/ beside Plotly's (which comes
from the plotly wheel): no CDN, nothing fetched; every page's data is embedded in it."""
from __future__ import annotations

from pathlib import Path

PLOTLY_JS = "assets/plotly.min.js"
SITE_CSS = "assets/site.css"
SITE_JS = "assets/site.js"


def plotly_js() -> bytes:
    """plotly.js as the plotly wheel ships it (the version plotly's Python side was built for)."""
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


CSS = """
.eb-nav { font: 14px system-ui, -apple-system, "Segoe UI", sans-serif; background: #1f2d3d;
          color: #fff; padding: 0.5em 1em; margin: -2em -1em 1.5em; display: flex; gap: 1.2em;
          align-items: baseline; flex-wrap: wrap; }
.eb-nav a { color: #dfe9f3; text-decoration: none; }
.eb-nav a:hover { text-decoration: underline; }
.eb-nav .eb-brand { font-weight: 600; color: #fff; }
.eb-nav .eb-here { color: #9fb3c8; }
.eb-runbar { font: 14px system-ui, sans-serif; background: #f4f7fa; border: 1px solid #d8e0e8;
             padding: 0.6em 1em; margin: 0 0 1.5em; }
.eb-runbar a { margin-right: 0.8em; }
body.eb-site { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
               max-width: 1400px; padding: 0 1em; color: #222; }
body.eb-site table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.88em; }
body.eb-site th, body.eb-site td { border: 1px solid #ccc; padding: 0.25em 0.6em;
                                   text-align: left; vertical-align: top; }
body.eb-site th { background: #f0f0f0; }
body.eb-site td.num { text-align: right; white-space: nowrap; }
.eb-muted { color: #667; font-size: 0.9em; }
.eb-method { background: #f7f7f2; border-left: 4px solid #c8c39a; padding: 0.5em 1em;
             font-size: 0.9em; }
.eb-mark { font-weight: 600; white-space: nowrap; }
.eb-regression { color: #b3261e; }
.eb-improvement { color: #1e7d32; }
tr.eb-changed td { background: #fff4e5; }
.eb-filters { margin: 0.5em 0 1em; display: flex; gap: 1em; align-items: center;
              flex-wrap: wrap; }
.eb-plot { width: 100%; min-height: 360px; }
.eb-spark { vertical-align: middle; }
.eb-note { background: #fdf6e3; border: 1px solid #eadfb8; padding: 0.5em 1em; }
.eb-error { background: #fde8e8; border: 1px solid #f0b4b4; padding: 0.5em 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

JS = r"""
(function () {
  "use strict";
  var dataEl = document.getElementById("eb-data");
  var data = dataEl ? JSON.parse(dataEl.textContent) : {};

  // The index: filter the series by device, model and changes.
  var table = document.getElementById("eb-series");
  if (table) {
    var controls = document.querySelectorAll("[data-eb-filter]");
    var apply = function () {
      var want = {};
      controls.forEach(function (c) {
        want[c.dataset.ebFilter] = c.type === "checkbox" ? (c.checked ? "1" : "") : c.value;
      });
      var shown = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var ok = Object.keys(want).every(function (k) {
          return !want[k] || tr.dataset[k] === want[k];
        });
        tr.hidden = !ok;
        if (ok) { shown += 1; }
      });
      var count = document.getElementById("eb-shown");
      if (count) { count.textContent = String(shown); }
    };
    controls.forEach(function (c) { c.addEventListener("change", apply); });
    apply();
  }

  // Series pages: Plotly figures from the embedded data; a point opens its run's report.
  document.querySelectorAll("[data-eb-plot]").forEach(function (el) {
    var fig = data.plots[el.dataset.ebPlot];
    Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
    el.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      var url = p && p.customdata && p.customdata[0];
      if (url) { window.location.href = url; }
    });
  });

  // The compare page: any two runs.
  var form = document.getElementById("eb-pick");
  if (form) {
    var out = document.getElementById("eb-pick-result");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var a = form.elements.a.value, b = form.elements.b.value, m = form.elements.match.value;
      var done = data.pairs[a + "|" + b];
      if (done && !m) { window.location.href = done; return; }
      if (window.location.protocol.indexOf("http") === 0) {
        window.location.href = "../_compare?a=" + encodeURIComponent(a) + "&b=" +
          encodeURIComponent(b) + (m ? "&match=" + encodeURIComponent(m) : "");
        return;
      }
      var ra = data.runs[a], rb = data.runs[b];
      out.hidden = false;
      out.textContent = "This pair was not precomputed. Open the site with `bench-host " +
        "publish --serve` to compare any two runs here, or run: bench-host compare '" +
        ra.spec + "' '" + rb.spec + "'" + (ra.device === rb.device ? " --device '" +
        ra.device + "'" : "") + (m ? " --match " + m : "") + " --db '" + data.db + "'";
    });
  }
})();
"""
