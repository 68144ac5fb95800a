"""`bench-host publish` on a database built by real agent runs of a tiny bundle on this machine
(two deploys, more when a busy machine disturbed both), plus runs DERIVED from their raw samples
(tests/publish_runs.py, never measured): a rerun, one only noisier, int8 25 % slower under a
changed kernel string (and one more such run later). The site is opened in
a real Chromium (tests/browser.py): from file:// and from `--serve`, every page type without a
console error or a request off this machine; a point of a history opens its run's report; the
compare page shows the rows that changed, as `bench-host compare` does; the slower int8 is a
step on the Changes page with its interval, the noisier run is not. Then one more run rewrites
only the pages it changes, and a publish that fails leaves the previous site whole."""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from cli_runner import BENCH_HOST, run_cli
from publish_runs import derive_run, real_deploy, started_of, steadier, unsteadiness

REPO = Path(__file__).resolve().parents[1]
KERNEL = "Debian GNU/Linux 12 (bookworm) (Linux 6.19.0-derived)"  # the derived runs' "upgrade"
INT8 = "local--tinycnn.int8--cpu--t1--litert"
FP32 = "local--tinycnn.fp32--cpu--t1--litert"
HOUR = pd.Timedelta(hours=1)
STEADY = 0.03  # the base run's widest p50 interval, relative: wider hides a 25 % step


@dataclass
class Lab:
    tmp: Path
    db: Path
    site: Path
    base: Path       # the real deploy (target folder) the derived runs come from
    start: pd.Timestamp
    derived: Path
    stdout: str
    runs_in_db: int  # the real deploys (two, more on a busy machine) and three derived runs

    def runs(self) -> dict:
        """{slug: {spec, device}} of the published site."""
        return json.loads((self.site / ".edgebench-runs.json").read_text())["runs"]

    def slug(self, run_id: str) -> str:
        (found,) = [s for s, r in self.runs().items() if r["spec"].split("@")[0] == run_id]
        return found

    def spec(self, run_id: str) -> str:
        return self.runs()[self.slug(run_id)]["spec"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """Two real deploys, then (from the steadier of them, at later times) three DERIVED runs:
    a rerun (2 % jitter per latency), a noisier run (4× the spread around the same medians),
    int8 25 % slower."""
    from tflite_factory import make_bundle

    tmp = tmp_path_factory.mktemp("publish")
    bundle = make_bundle(tmp / "bundle", recipes=("fp32", "int8"))
    db = tmp / "db.sqlite"
    real = [real_deploy(bundle, tmp / f"real{i}", db) for i in (1, 2)]
    while min(map(unsteadiness, real)) > STEADY and len(real) < 4:  # a busy machine: again
        real.append(real_deploy(bundle, tmp / f"real{len(real) + 1}", db))
    base = steadier(*real)
    start = started_of(real[-1])
    derived = tmp / "derived"
    runs = [
        # DERIVED: base's latencies × exp(N(0, 0.02)): a rerun of it
        derive_run(base, derived, "rerun", start + HOUR, jitter=0.02, seed=3),
        # DERIVED: base's latencies 4× as far from their round's median: only noisier
        derive_run(base, derived, "noisier", start + 2 * HOUR, spread=4.0),
        # DERIVED: int8's latencies × 1.25, as if a kernel upgrade had slowed its kernels
        derive_run(base, derived, "int8-slower", start + 3 * HOUR,
                   scale={"tinycnn.int8": 1.25}, environment={"os": KERNEL}),
    ]
    code, out, err = run_cli("import", *runs, "--db", db)
    assert code == 0, err
    site = tmp / "site"
    code, out, err = run_cli("publish", "--db", db, "--out", site)
    assert code == 0, err
    return Lab(tmp, db, site, base, start, derived, out, len(real) + len(runs))


@pytest.fixture(scope="module")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Screenshots of every page type, under the test's tmp folder; with
    EDGEBENCH_DOC_SCREENSHOTS=1 a history page and the Changes page go to docs/img too."""
    return tmp_path_factory.mktemp("screenshots")


def _open(browser, url: str, plot: bool = False):
    page, seen = browser.page()
    page.goto(url)
    page.wait_for_load_state("load")
    if plot:
        page.wait_for_selector("#eb-history .subplot.xy .scatterlayer path.point")
    return page, seen


def _clean(seen, where: str) -> None:
    assert not seen.errors, f"{where}: {seen.errors}"
    assert not seen.foreign(), f"{where} asked another host: {seen.foreign()}"
    assert not seen.failed, f"{where}: failed requests {seen.failed}"


def _page_types(lab: Lab) -> dict:
    """One page of each type, relative to the site."""
    a, b = lab.slug("noisier"), lab.slug("int8-slower")
    return {"index": "index.html", "history": f"series/{INT8}.html",
            "changes": "changes.html", "compare-picker": "compare/index.html",
            "compare": f"compare/{a}--{b}/compare.html",
            "report": f"runs/{b}/report.html"}


def test_every_page_type_opens_offline_from_file(lab, browser, shots):
    n = lab.runs_in_db
    assert f"2 series from {n} run(s)" in lab.stdout and f"{n} report(s)" in lab.stdout
    for kind, rel in _page_types(lab).items():
        page, seen = _open(browser, (lab.site / rel).as_uri(), plot=kind == "history")
        assert page.locator("nav.eb-nav").count() == 1, kind
        page.screenshot(path=str(shots / f"{kind}.png"), full_page=True)
        _clean(seen, kind)
        assert any(u.endswith("assets/site.css") for u in seen.requests), kind
        if kind == "history":  # plotly.js from beside the pages, not a CDN
            assert [u for u in seen.requests if u.endswith("plotly.min.js")] == \
                [(lab.site / "assets" / "plotly.min.js").as_uri()]
        page.context.close()
    # one copy of plotly.js for the whole site, none inlined into a page
    assert len(list(lab.site.rglob("plotly*.js"))) == 1
    assert all(b"plotly.js v" not in p.read_bytes() for p in lab.site.rglob("*.html"))
    if os.environ.get("EDGEBENCH_DOC_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(exist_ok=True)
        shutil.copy(shots / "history.png", REPO / "docs" / "img" / "site-history.png")
        shutil.copy(shots / "changes.png", REPO / "docs" / "img" / "site-changes.png")


def test_the_index_lists_every_series_and_filters_them(lab, browser):
    page, seen = _open(browser, (lab.site / "index.html").as_uri())
    rows = page.locator("#eb-series tbody tr")
    assert rows.count() == 2
    int8 = page.locator(f'[id="series-{INT8}"]')
    text = int8.inner_text()
    assert "int8-slower" in text and re.search(r"0\.0\d+ \(0\.0\d+–0\.0\d+\)", text), text
    assert int8.locator("a.eb-regression").count() == 1, text  # the step's mark
    # (fp32 may have steps of its own: the two real deploys ran on a shared, busy machine)
    marked = page.locator("#eb-series tbody tr[data-changed='1']").count()
    page.check("#eb-filter-changed")
    assert page.locator("#eb-shown").inner_text() == str(marked) and not int8.is_hidden()
    page.uncheck("#eb-filter-changed")
    page.select_option("#eb-filter-model", "tinycnn.fp32")
    assert page.locator("#eb-shown").inner_text() == "1" and int8.is_hidden()
    _clean(seen, "index")
    page.context.close()


def test_clicking_a_point_opens_that_runs_report(lab, browser):
    page, seen = _open(browser, (lab.site / f"series/{INT8}.html").as_uri(), plot=True)
    points = page.locator("#eb-history .subplot.xy .scatterlayer path.point")
    assert points.count() == lab.runs_in_db
    box = points.nth(lab.runs_in_db - 1).bounding_box()  # the latest run: int8-slower
    with page.expect_navigation():
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.url == (lab.site / f"runs/{lab.slug('int8-slower')}/report.html").as_uri()
    assert "Run int8-slower" in page.locator(".eb-runbar").inner_text()
    assert page.locator("h1").first.inner_text() == "edgebench report"
    _clean(seen, "history → report")
    page.context.close()


def test_the_compare_page_shows_the_rows_that_changed_as_compare_does(lab, browser):
    rel = _page_types(lab)["compare"]
    page, seen = _open(browser, (lab.site / rel).as_uri())
    changed = page.locator("#eb-changed-rows tbody tr")
    assert changed.count() == 1
    assert "tinycnn.int8" in changed.inner_text() and "slower" in changed.inner_text()
    command = page.locator(".eb-runbar code").inner_text()
    _clean(seen, "compare")
    page.context.close()
    # the command the page gives, run: the same figures
    assert command.startswith(f"bench-host compare '{lab.spec('noisier')}' "
                              f"'{lab.spec('int8-slower')}' --device 'local'")
    code, out, err = run_cli("compare", lab.spec("noisier"), lab.spec("int8-slower"),
                             "--device", "local", "--db", lab.db, "--out", lab.tmp / "cli")
    assert code == 0, err
    cli = pd.read_csv(lab.tmp / "cli" / "compare.csv")
    site = pd.read_csv(lab.site / rel.replace("compare.html", "compare.csv"))
    pd.testing.assert_frame_equal(cli, site)
    int8 = site[site["model"] == "tinycnn.int8"].iloc[0]
    assert int8["p50_verdict"] == "slower" and 1.0 < int8["p50_ratio_low"]
    assert 1.15 < int8["p50_ratio"] < 1.35


def test_the_slower_int8_is_a_step_and_the_noisier_run_is_not(lab, browser):
    page, seen = _open(browser, (lab.site / "changes.html").as_uri())
    steps = page.locator(f'tr.eb-step[data-series="{INT8}"]'
                         f'[data-run="{lab.slug("int8-slower")}"]')
    assert steps.count() == 1
    assert steps.get_attribute("data-verdict") == "regression"
    cells = steps.locator("td").all_inner_texts()
    change = float(re.match(r"([+-]\d+\.\d) %", cells[2]).group(1))
    low, high = map(float, re.match(r"([+-]\d+\.\d) to ([+-]\d+\.\d) %", cells[3]).groups())
    # <=: the page shows one decimal, and int8-slower is base x 1.25 exactly while the run before
    # it keeps base's medians, so the interval can be narrower than 0.1 % ("+25.0 to +25.0 %",
    # seen when the base run was a steady one)
    assert 0 < low <= change <= high and 15 < change < 35, cells
    assert "6.19.0-derived" in cells[-1]  # what changed in the environment
    assert page.locator(f'tr[data-run="{lab.slug("noisier")}"].eb-step').count() == 0
    # int8-slower's fp32 latencies are the base's own: no step there
    assert page.locator(f'tr.eb-step[data-series="{FP32}"]'
                        f'[data-run="{lab.slug("int8-slower")}"]').count() == 0
    assert "ruptures" in page.locator("#eb-method").inner_text()
    _clean(seen, "changes")
    page.context.close()
    # the noisier run is noisier indeed: the spread of its latencies is four times the base's
    # and its tail is up, so a detector on means, tails or spreads would have flagged it
    noisy = pd.read_csv(lab.derived / "noisier" / "local" / "results.csv")
    base = pd.read_csv(lab.base / "results.csv")
    assert (noisy["std_ms"] > 3 * base["std_ms"]).all()
    assert (noisy["p90_ms"] > base["p90_ms"]).all()
    assert noisy["p50_ms"].to_list() == pytest.approx(base["p50_ms"].to_list(), rel=1e-3)


def test_history_pages_give_the_figures_of_bench_host_history(lab, browser):
    code, out, err = run_cli("history", "--model", "tinycnn.int8", "--db", lab.db,
                             "--out", lab.tmp / "history")
    assert code == 0, err
    printed = {line.split()[1]: (line.split()[5], line.split()[6])
               for line in out.splitlines() if line.startswith("local ")}
    page, seen = _open(browser, (lab.site / f"series/{INT8}.html").as_uri(), plot=True)
    shown = {}
    for row in page.locator("#eb-points tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        value, interval = re.match(r"(\S+) \((\S+)\)", cells[2]).groups()
        shown[cells[0]] = (value, interval)
    page.context.close()
    assert shown == printed


def _serve(lab: Lab) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(BENCH_HOST), "publish", "--db", str(lab.db), "--out",
                             str(lab.site), "--serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + 120, ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            seen += line
            m = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            if m:
                return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"publish --serve did not start: {seen}{proc.stderr.read()}")


def test_served_on_loopback_and_any_two_runs_compared_there(lab, browser, shots):
    proc, url = _serve(lab)
    try:
        for kind, rel in _page_types(lab).items():
            page, seen = _open(browser, url + rel, plot=kind == "history")
            _clean(seen, f"served {kind}")
            assert all(u.startswith(url) for u in seen.requests), seen.requests
            page.context.close()
        # a pair publish did not precompute (not consecutive): picked on the page
        page, seen = _open(browser, url + "compare/index.html")
        page.select_option("select[name=a]", lab.slug("rerun"))
        page.select_option("select[name=b]", lab.slug("int8-slower"))
        with page.expect_navigation():
            page.click("#eb-pick button")
        assert "/_compare?" in page.url
        int8 = page.locator("#eb-changed-rows tbody tr", has_text="tinycnn.int8")
        assert int8.count() == 1 and "slower" in int8.inner_text()
        page.screenshot(path=str(shots / "compare-served.png"), full_page=True)
        _clean(seen, "served compare")
        page.context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_error_leaves_the_site_whole_and_one_more_run_rewrites_only_its_pages(
        lab, monkeypatch):
    site = lab.site
    before = {p.relative_to(site).as_posix(): p.stat().st_ino for p in site.rglob("*")
              if p.is_file()}
    index = (site / "index.html").read_text()
    # DERIVED: the slower int8 again (2 % jitter)
    new = derive_run(lab.base, lab.tmp / "more", "int8-slower-2", lab.start + 4 * HOUR,
                     scale={"tinycnn.int8": 1.25}, jitter=0.02, seed=4,
                     environment={"os": KERNEL})
    assert run_cli("import", new, "--db", lab.db)[0] == 0

    from edgebench.host.publish import series_page

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(series_page, "render", broken)
    code, out, err = run_cli("publish", "--db", lab.db, "--out", site)
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [
        "bench-host publish: internal error: OSError: disk full (simulated) "
        "(EDGEBENCH_DEBUG=1 shows the traceback)"]
    assert (site / "index.html").read_text() == index  # the previous site, whole
    assert {p.relative_to(site).as_posix(): p.stat().st_ino for p in site.rglob("*")
            if p.is_file()} == before
    assert not [p for p in site.parent.iterdir() if p.name.startswith(".site.")]
    monkeypatch.undo()

    code, out, err = run_cli("publish", "--db", lab.db, "--out", site)
    assert code == 0, err
    assert "1 report(s) and 1 comparison(s) built" in out, out
    after = {p.relative_to(site).as_posix(): p.stat().st_ino for p in site.rglob("*")
             if p.is_file()}
    changed = {rel for rel, ino in after.items() if before.get(rel) != ino}
    last, newest = lab.slug("int8-slower"), lab.slug("int8-slower-2")
    allowed = {"index.html", "changes.html", "compare/index.html", ".edgebench-cache.json",
               ".edgebench-runs.json",
               f"series/{INT8}.html", f"series/{FP32}.html", f"runs/{last}/report.html"}
    unexpected = {r for r in changed if r not in allowed and not r.startswith(
        (f"runs/{newest}/", f"compare/{last}--{newest}/"))}
    assert not unexpected, unexpected
    assert f"runs/{newest}/report.html" in changed and f"series/{INT8}.html" in changed
    # every other run's report and comparison, and plotly.js, are the same files as before
    assert after["assets/plotly.min.js"] == before["assets/plotly.min.js"]
    assert sum(1 for r in changed if r.startswith("runs/")) < len(
        [r for r in after if r.startswith("runs/")]) / 3
    assert f"{lab.runs_in_db + 1} run(s)" in out
