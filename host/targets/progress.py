"""Progress for one target of a deploy: a byte bar (size and rate) while uploading, then a model
bar fed by the agent's JSON-lines events. One line per target, so fleets stack their bars."""
from __future__ import annotations

import sys
import threading
from typing import Optional

_lock = threading.Lock()


class TargetProgress:
    def __init__(self, name: str, position: int, enabled: bool = True):
        self.name, self.position, self.enabled = name, position, enabled
        self._bar = None
        self.rows = 0
        self.errors = 0

    def _new(self, **kw):
        self.close()
        if not self.enabled:
            return
        from tqdm import tqdm
        with _lock:
            self._bar = tqdm(desc=self.name, position=self.position, leave=True, file=sys.stderr,
                             dynamic_ncols=True, **kw)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        elif self.enabled:
            print(f"{self.name}: {text}", file=sys.stderr)

    def start_bytes(self, total: int) -> None:
        self._new(total=total, unit="B", unit_scale=True, unit_divisor=1024)
        if self._bar is not None:
            self._bar.set_postfix_str("upload")

    def add_bytes(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def start_agent(self, models: int) -> None:
        self._new(total=models, unit="model")

    def agent_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind in ("row", "skip"):
            self.rows += 1
        elif kind == "error":
            self.errors += 1
        bar: Optional[object] = self._bar
        if bar is None:
            return
        total = event.get("total")
        if isinstance(total, int) and total > 0 and total != bar.total:
            bar.total = total
        if kind == "model_start":
            bar.set_postfix_str(f"{event.get('model', '')} ({self.rows} rows)")
        elif kind == "soak":
            bar.set_postfix_str(_soak_words(event))
        elif kind == "model_done":
            index = event.get("index")   # 1-based in the agent's events
            bar.update(index - bar.n if isinstance(index, int) and index > bar.n else 1)
        elif kind == "done":
            bar.set_postfix_str(f"done, {self.rows} rows"
                                + (f", {self.errors} errors" if self.errors else ""))
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            with _lock:
                self._bar.close()
            self._bar = None


def _soak_words(event: dict) -> str:
    """'tinycnn.fp32 soak 120/600 s, p50 1.92 ms, 71.5 °C': where a soak is, between rows."""
    def number(key, fmt):
        value = event.get(key)
        return fmt % value if isinstance(value, (int, float)) else None
    done, total = number("t_end_s", "%.0f"), number("soak_s", "%.0f")
    parts = [f"{event.get('model', '')} soak {done or '?'}/{total or '?'} s",
             number("p50_ms", "p50 %.3g ms"), number("temp_c", "%.1f °C"),
             number("avg_power_w", "%.2f W")]
    return ", ".join(p for p in parts if p)
