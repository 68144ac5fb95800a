"""Replace (or append) one `## Title` section of benchmarks/README.md, leaving the others."""
from __future__ import annotations

import re
from pathlib import Path


def update_section(path: Path, title: str, section: str) -> None:
    """`section` starts with its own `## {title}` heading."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    path.write_text(text.rstrip("\n") + "\n")
