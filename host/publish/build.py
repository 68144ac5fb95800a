"""`bench-host publish` from start to end: the database read, the points of new runs computed
(the rest from the site's cache), steps detected, and every page written through the atomic
writer. Expensive pages (a run's report, a comparison) are rebuilt only when what they are made
of changed; the others are rendered and written only when their bytes differ."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.publish import assets, changes, data, layout, pages, run_pages, series_page
from edgebench.host.publish.writer import SiteWriter

CACHE = ".edgebench-cache.json"
RUNS = ".edgebench-runs.json"  # what --serve's comparisons look runs up in
FORMAT = 1
_CODE_DIRS = ("report", "compare", "publish", "results_db")


def code_version() -> str:
    """The statistics and page code the cached figures came from: a change to it recomputes."""
    host = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(str(FORMAT).encode())
    for name in _CODE_DIRS:
        for path in sorted((host / name).glob("*.py")):
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:20]


@dataclass
class Published:
    out: Path
    series: int = 0
    runs: int = 0
    pairs: int = 0
    steps: list = field(default_factory=list)
    written: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    reports_built: int = 0
    comparisons_built: int = 0
    points_computed: int = 0
    tests_computed: int = 0
    notes: list = field(default_factory=list)
    failures: list = field(default_factory=list)


def _load_cache(site: SiteWriter, code: str) -> dict:
    """What the previous publish of this site computed with the same code, keyed by the runs'
    fingerprints (which include the database's own row keys, so a cached point is only ever
    taken for the very rows it was computed from)."""
    fresh = {"format": FORMAT, "code": code, "points": {}, "tests": {}, "units": {}}
    text = site.read_old(CACHE)
    try:
        cache = json.loads(text) if text else None
    except ValueError:
        cache = None
    if not isinstance(cache, dict) or cache.get("code") != code:
        return fresh
    for k in ("points", "tests", "units"):
        fresh[k] = cache.get(k) or {}
    return fresh


def find_run(db, spec: str):
    """A run by its slug, RUN_ID@STARTED or run id (when that names one run)."""
    runs = list(db.runs.values())
    hits = [r for r in runs if spec in (r.slug, r.spec)] or [r for r in runs if r.run_id == spec]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise UserError(f"--pair {spec}: no such run in the database")
    raise UserError(f"--pair {spec}: names {len(hits)} runs; name one as RUN_ID@STARTED: "
                    + ", ".join(r.spec for r in hits[:6]))


def _consecutive(series: list) -> list[tuple[int, int]]:
    out: dict = {}
    for s in series:
        for a, b in zip(s.points, s.points[1:]):
            out[(a["run"], b["run"])] = None
    return list(out)


def _pair_unit(site, cache, code, a, b, match, explicit: bool):
    """(relative folder, fingerprint, (link, headline) when the old site's can be taken over)."""
    rel = run_pages.compare_dir(a, b) + (f"--{data.digest(list(match))[:8]}" if match else "")
    if rel in site.units_done:  # asked for with --pair and consecutive too
        return rel, None, site.units_done[rel]
    fp = data.digest([a.fingerprint, b.fingerprint, list(match or []), explicit, code])
    unit = cache["units"].get(rel)
    if unit and unit.get("fp") == fp and site.reuse(rel):
        site.units_done[rel] = (unit.get("link"), unit["headline"])
        return rel, fp, site.units_done[rel]
    return rel, fp, None


def _pair_done(site, cache, rel: str, fp: str, result) -> tuple:
    headline, fields = result
    link = f"{rel}/compare.html" if headline is not None else None
    if link:
        site.built(rel)
    else:
        site.folder(rel).rmdir()  # made for a comparison that had nothing to compare
    cache["units"][rel] = {"fp": fp, "headline": headline if link else fields, "link": link}
    site.units_done[rel] = (link, headline if link else fields)
    return site.units_done[rel]


def publish(engine, url: str, out: Path, rules: list[str], pairs: list | None = None,
            match=None, jobs: int = 1, say=lambda line: None) -> Published:
    """`url` is the database as the user gave it (workers open it again); pages show it
    without its password."""
    from edgebench.host.publish.workers import Builder
    from edgebench.host.results_db.connect import safe

    method = changes.parse_rules(rules)  # bad rules refused before any work
    db = data.load(engine, safe(url))
    code = code_version()
    result = Published(out=Path(out))
    asked = [(find_run(db, a), find_run(db, b)) for a, b in pairs or []]
    with engine.connect() as conn, SiteWriter(out) as site, \
            Builder(conn, db, url, jobs) as builder:
        cache = _load_cache(site, code)
        listed = []
        # the pairs asked for first: a pair that cannot be compared stops before other work
        for a, b in asked:
            rel, fp, done = _pair_unit(site, cache, code, a, b, match, True)
            if done is None:
                task = ("pair", a.pk, b.pk, match, str(site.folder(rel)), True)
                done = _pair_done(site, cache, rel, fp, builder.run([task])[0])
                result.comparisons_built += 1
            listed.append((a, b) + done)
        series = _series(db, cache, builder, result, say)
        tester = changes.PairTester(conn, db, cache["tests"])
        steps = changes.detect(series, tester, method)
        result.tests_computed = tester.computed
        cache["tests"] = {k: v for k, v in cache["tests"].items() if k in tester.used}
        links = _expensive_pages(db, series, site, cache, code, builder, result, listed, say)
        _run_bars(db, series, site, links)
        _own_pages(db, series, steps, method, site, links, listed)
        live = {f"runs/{r.slug}" for r in db.runs.values()} | {
            link.rsplit("/", 1)[0] for _, _, link, _ in listed}
        cache["units"] = {k: v for k, v in cache["units"].items() if k in live}
        keep_fp = {r.fingerprint for r in db.runs.values()}
        cache["points"] = {k: v for k, v in cache["points"].items() if k in keep_fp}
        site.put(CACHE, json.dumps(cache, sort_keys=True, separators=(",", ":"),
                                   default=str))
        site.put(RUNS, json.dumps({"db": db.url, "runs": {
            r.slug: {"spec": r.spec, "device": r.device} for r in db.runs.values()}},
            sort_keys=True, indent=0))
    result.series, result.runs, result.pairs = len(series), len(db.runs), len(listed)
    written = list(dict.fromkeys(site.written))
    result.steps, result.written = steps, written
    result.kept = [k for k in dict.fromkeys(site.kept) if k not in set(written)]
    _verdicts(db, series, steps, method, result)
    return result


def _series(db, cache, builder, result, say) -> list:
    """Every series, with the points of runs the cache does not have computed now."""
    new = [r for r in db.runs.values() if r.fingerprint not in cache["points"]]
    if new:
        say(f"{len(new)} new run(s): their statistics in {builder.processes(new)} process(es)")
    for run, pts in zip(new, builder.run([("points", r.pk) for r in new])):
        cache["points"][run.fingerprint] = pts
    result.points_computed = len(new)
    points = {run.pk: [dict(p, run=run.pk) for p in cache["points"][run.fingerprint]]
              for run in db.runs.values()}
    series = data.series_of(db, points)
    say(f"{len(db.runs)} run(s), {len(series)} series; testing candidate steps")
    return series


def _expensive_pages(db, series, site, cache, code, builder, result, listed, say) -> dict:
    """Each run's report and each consecutive pair's comparison: taken over from the old site
    when what they are made of is unchanged, else built (in parallel). Returns the comparisons'
    links, {(run A pk, run B pk): link}; `listed` gets every comparison."""
    tasks, after = [], []
    for a_pk, b_pk in _consecutive(series):
        a, b = db.runs[a_pk], db.runs[b_pk]
        rel, fp, done = _pair_unit(site, cache, code, a, b, None, False)
        if done is None:
            tasks.append(("pair", a_pk, b_pk, None, str(site.folder(rel)), False))
            after.append(("pair", a, b, rel, fp))
        else:
            after.append(("done", a, b, done, None))
    for run in db.runs.values():
        rel = f"runs/{run.slug}"
        fp = data.digest([run.fingerprint, code])
        unit = cache["units"].get(rel)
        if not (unit and unit.get("fp") == fp and site.reuse(rel)):
            tasks.append(("report", run.pk, str(site.folder(rel))))
            cache["units"][rel] = {"fp": fp}
            result.reports_built += 1
    if tasks:
        say(f"building {len(tasks)} page(s) (reports, comparisons) in "
            f"{builder.processes(tasks)} process(es)")
    outcome = builder.run(tasks)
    for task in tasks:
        if task[0] == "report":
            site.built(Path(task[2]).relative_to(site.tmp).as_posix())
    results = iter(r for t, r in zip(tasks, outcome) if t[0] == "pair")
    links: dict = {}
    for kind, a, b, info, fp in after:
        done = info if kind == "done" else _pair_done(site, cache, info, fp, next(results))
        result.comparisons_built += kind != "done"
        if done[0]:
            links[(a.pk, b.pk)] = done[0]
            listed.append((a, b) + done)
    return links


def _run_bars(db, series, site, links: dict) -> None:
    """Each report's box on top: its series, and its comparisons with the runs around it."""
    by_run: dict = {}
    for s in series:
        for p in s.points:
            by_run.setdefault(p["run"], []).append(s)
    prev_of, next_of = {}, {}
    for (a_pk, b_pk), link in links.items():
        if db.runs[a_pk].device == db.runs[b_pk].device:
            prev_of.setdefault(b_pk, {"run": db.runs[a_pk], "page": link})
            next_of.setdefault(a_pk, {"run": db.runs[b_pk], "page": link})
    for run in db.runs.values():
        rel = f"runs/{run.slug}/report.html"
        bar = run_pages.run_bar(db, run, "../../", by_run.get(run.pk, []),
                                prev_of.get(run.pk), next_of.get(run.pk))
        text = layout.inject(site.path(rel).read_text(encoding="utf-8"),
                             layout.nav("../../") + bar, "../../")
        site.put(rel, text)


def _own_pages(db, series, steps, method, site, links: dict, listed: list) -> None:
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    site.put("index.html", pages.index(db, series, steps, method, generated))
    site.put("changes.html", pages.changes(db, steps, method, links))
    for s in series:
        site.put(s.page(), series_page.render(db, s, steps, method, links))
    hint = ("Consecutive runs are compared below; any other pair is computed on the spot when "
            "the site is served by <code>bench-host publish --serve</code> (opened from a file, "
            "the page gives the command instead).")
    listed[:] = list({link: (a, b, link, h) for a, b, link, h in listed}.values())
    site.put("compare/index.html", pages.compare_index(db, listed, hint))
    site.put(assets.PLOTLY_JS, assets.plotly_js())
    site.put(assets.SITE_CSS, assets.CSS)
    site.put(assets.SITE_JS, assets.JS)


def _verdicts(db, series, steps, method, result) -> None:
    """The notes, and with --fail-if the regressions the newest run of a series brought."""
    bare = [r for r in db.runs.values() if r.rows and not r.samples]
    if bare:
        names = ", ".join(r.label for r in bare[:5]) + (" ..." if len(bare) > 5 else "")
        result.notes.append(f"{len(bare)} run(s) without latency samples ({names}): their p50 "
                            f"has no interval and no step can be tested against them")
    if not method.explicit:
        return
    latest = {s.slug: s.points[-1]["run"] for s in series}
    for st in steps:
        if st.kept and st.verdict == "regression" and latest[st.series.slug] == st.after["run"]:
            result.failures.append(
                f"{st.rule}: {st.series.title} changed {st.change:+.1f}{st.unit} in run "
                f"{db.runs[st.after['run']].label} (significant)")
