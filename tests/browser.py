"""A real browser for the tests: Debian's Chromium (tests/run.sh installs it) driven by
Playwright for Python, which cannot download its own browsers here. Every page a test opens is
watched: console errors, uncaught exceptions and every request it makes."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
# Headless as root, on a closed network (shared/TOOLCHAIN.md).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-default-apps", "--no-first-run"]


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


@dataclass
class Watched:
    """What a page did: console errors, page errors, request URLs, failed requests."""
    errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    def foreign(self) -> list:
        """Requests to anything but this machine's loopback or a local file (data: URIs are
        not requests)."""
        out = []
        for url in self.requests:
            u = urlparse(url)
            if u.scheme in ("file", "data", "blob", "about"):
                continue
            if u.scheme in ("http", "https", "ws", "wss") and u.hostname in ("127.0.0.1",
                                                                            "localhost", "::1"):
                continue
            out.append(url)
        return out


class Browser:
    """One Chromium for a test module; `page()` gives a fresh watched tab."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        path = chromium_path()
        if path is None:
            raise RuntimeError("Chromium is not installed (tests/run.sh installs Debian's "
                               "chromium package)")
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=path, headless=True,
                                                    args=ARGS)
        except Exception:
            self._pw.stop()
            raise

    def page(self, width: int = 1280, height: int = 900):
        """(page, Watched): a new tab in its own context (a fresh profile)."""
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        seen = Watched()
        page.on("console", lambda m: seen.errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
        page.on("request", lambda r: seen.requests.append(r.url))
        page.on("requestfailed", lambda r: seen.failed.append(f"{r.url} ({r.failure})"))
        return page, seen

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._pw.stop()
