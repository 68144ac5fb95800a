"""The agent's output as a deploy reads it, one line at a time while the agent runs.

stdout is JSON lines, one event each ({"event": "model_start" | "row" | "skip" | ...}): every event
moves the target's progress bar and goes to the caller's on_event; non-JSON lines are ignored.
stderr is the agent's log: every line goes to host.log (logger "edgebench.agent", host/liblog.py)
and to the target's agent-stderr.log. What the stream leaves behind (rows measured, the model in
progress, stderr's last lines) words a link cut mid-run and an agent that exited with an error."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Optional

from edgebench.host.deploy_summary import exit_words
from edgebench.host.targets.progress import TargetProgress

STDERR_TAIL_LINES = 20   # enough to find the agent's last words, little enough to keep per target
_AGENT_LOG = logging.getLogger("edgebench.agent")  # into host.log (host/liblog.py)


class AgentEvents:
    """One agent run's stdout and stderr; a context manager that holds agent-stderr.log open."""

    def __init__(self, name: str, bar: TargetProgress, stderr_log: Path,
                 on_event: Optional[Callable[[str, dict], None]] = None):
        self.name, self.bar, self.on_event = name, bar, on_event
        self.stderr_log = stderr_log
        self.rows = 0                 # "row" events: rows measured in this run
        self.done = 0                 # rows measured or skipped (already measured, resumed)
        self.model: Optional[str] = None   # the model in progress
        self.err_tail: list = []
        self._log = None

    def __enter__(self) -> "AgentEvents":
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        # appended: a resumed attempt's stderr follows the cut one's
        self._log = open(self.stderr_log, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        self._log.close()

    def on_stdout(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "row":
            self.rows += 1
        if kind in ("row", "skip"):
            self.done += 1
        if kind == "model_start":
            self.model = event.get("model")
        self.bar.agent_event(event)
        if self.on_event:
            self.on_event(self.name, event)

    def on_stderr(self, line: str) -> None:
        self.err_tail.append(line)
        del self.err_tail[:-STDERR_TAIL_LINES]
        _AGENT_LOG.info("%s: %s", self.name, line)
        self._log.write(line + "\n")
        self._log.flush()   # a cut link or a killed host still leaves the lines read so far

    def progress_words(self, models: int) -> str:
        """How far the agent got, for a dropped link's message."""
        at = f"{self.model} in progress; " if self.model else ""
        return (f"{at}{self.done} row{'s' * (self.done != 1)} of {models} models done so far, "
                f"kept on the device")

    def exit_error(self, code: int, results: Path) -> Optional[str]:
        """None for an agent that exited 0; else why it stopped, in its own last stderr line."""
        if code == 0:
            return None
        last = self.err_tail[-1] if self.err_tail else ""
        return (f"agent {exit_words(code)}{': ' + last if last else ''}; measured rows are kept "
                f"in {results}, rerun the same deploy to resume")
