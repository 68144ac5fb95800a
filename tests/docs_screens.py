"""Pages of the documentation site drawn by headless Chromium: what tests/test_docs.py checks, and
what `python tests/docs_screens.py` writes to docs/img/docs-*.png (the pictures the Development
page shows), from a site built here with `mkdocs build --strict`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EDGEBENCH_CHROMIUM", "/usr/bin/chromium")
# site page -> the picture's name under docs/img/
PAGES = {"index.html": "docs-home.png", "reference/cli.html": "docs-reference.png"}
WINDOW = (1280, 900)


def chromium() -> str | None:
    """The Chromium binary, or None where it is not installed."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def build_site(site_dir: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` into site_dir, as tests/run.sh does; the result, not raised."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2.0
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site_dir), "--config-file", str(REPO / "mkdocs.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def shoot(page: Path, png: Path, binary: str) -> None:
    """A 1280×900 screenshot of a local page; offline (no network, no profile of the user's)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium could not draw {page}: {done.stderr.strip()[-400:]}")


def main() -> int:
    binary = chromium()
    if not binary:
        print("docs_screens: no chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        built = build_site(Path(tmp))
        if built.returncode:
            print(built.stderr, file=sys.stderr)
            return built.returncode
        for page, name in PAGES.items():
            shoot(Path(tmp) / page, REPO / "docs" / "img" / name, binary)
            print(f"docs/img/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
