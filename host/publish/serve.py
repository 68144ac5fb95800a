"""`bench-host publish --serve`: the site on 127.0.0.1 with the standard library's HTTP server,
plus one thing a static site cannot do: /_compare?a=RUN&b=RUN compares any two runs on the spot
(the same write_page as `bench-host compare`), for the Compare page's picker."""
from __future__ import annotations

import json
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from edgebench.host.errors import UserError
from edgebench.host.publish import layout, run_pages

HOST = "127.0.0.1"


class _Handler(SimpleHTTPRequestHandler):
    engine = None
    site: Path = None
    lock = threading.Lock()  # one comparison at a time: they are CPU-bound anyway

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the terminal is the user's; requests are not news

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")  # a republished site shows at once
        super().end_headers()

    def do_GET(self):
        if urlparse(self.path).path == "/_compare":
            return self._compare()
        return super().do_GET()

    def _send(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        body = f'<h1>Compare</h1><p class="eb-error" id="eb-error">{layout.esc(message)}</p>'
        self._send(status, layout.page("edgebench: compare", body, "", "compare/index.html"))

    def _compare(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        a, b = (query.get(k, [""])[0] for k in ("a", "b"))
        fields = query.get("match", [""])[0]
        try:
            cache = json.loads((self.site / ".edgebench-runs.json").read_text())
            runs = cache["runs"]
            if a not in runs or b not in runs:
                raise UserError("unknown run; reload the Compare page (the site was "
                                "published again)")
            text = self._comparison(runs[a], runs[b], fields, cache.get("db", ""))
        except UserError as exc:
            return self._error(422, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line to the browser, never a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return self._error(500, f"internal error: {type(exc).__name__}: {first}")
        self._send(200, text)

    def _comparison(self, ra: dict, rb: dict, fields: str, db: str) -> str:
        from edgebench.host.compare.measures import compare_runs
        from edgebench.host.compare.pairs import parse_match
        from edgebench.host.results_db.connect import guarded
        from edgebench.host.results_db.read import load_run

        match = parse_match(fields or None)
        with self.lock, guarded(str(self.engine.url)):
            run_a = load_run(self.engine, ra["spec"], ra["device"])
            run_b = load_run(self.engine, rb["spec"], rb["device"])
            comp = compare_runs(run_a, run_b, match, label_a=ra["spec"], label_b=rb["spec"])
            with tempfile.TemporaryDirectory(prefix="edgebench-compare-") as tmp:
                paths = run_pages.write_comparison(comp, Path(tmp))
                html = paths.html.read_text(encoding="utf-8")
        same = ra["device"] == rb["device"]
        command = (f"bench-host compare '{ra['spec']}' '{rb['spec']}'"
                   + (f" --device '{ra['device']}'" if same else "")
                   + (f" --match {fields}" if fields else "") + f" --db '{db}'")
        label = lambda r: f"{layout.esc(r['spec'])} on {layout.esc(r['device'])}"  # noqa: E731
        return run_pages.comparison_page(html, comp, label(ra), label(rb), command, "")


def make_server(site: Path, engine, port: int = 8000) -> ThreadingHTTPServer:
    handler = type("SiteHandler", (_Handler,), {"engine": engine, "site": Path(site)})
    try:
        return ThreadingHTTPServer((HOST, port), partial(handler, directory=str(site)))
    except OSError as e:
        raise UserError(f"--port {port}: cannot listen on {HOST} ({e.strerror})") from None


def serve(site: Path, engine, port: int, say=print) -> None:
    server = make_server(site, engine, port)
    host, real_port = server.server_address[:2]
    say(f"serving {site} at http://{host}:{real_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
