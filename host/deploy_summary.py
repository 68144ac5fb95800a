"""What a deploy says when it ends: one line per target, and how the agent's exit is worded."""
from __future__ import annotations

import signal
from typing import Sequence


def exit_words(code: int) -> str:
    """A shell reports a child killed by signal N as 128+N; paramiko reports -1 for exit-signal."""
    if code < 0 or 128 < code <= 128 + 64:
        sig = -code if code < -1 else (code - 128 if code > 128 else None)
        return "was killed by a signal" + (f" ({_signame(sig)})" if sig else "")
    return f"exited with status {code}"


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def summary(outcomes: Sequence) -> str:
    """One line per target (DeployOutcomes): where its results are, or why it failed."""
    lines = []
    width = max((len(o.target) for o in outcomes), default=0)
    for o in outcomes:
        sent = f"{o.transfer.bytes_sent / 1e6:.1f} MB sent, {o.transfer.files_skipped} files cached"
        if o.drops:
            sent += f", {len(o.drops)} dropped link{'s' * (len(o.drops) > 1)} resumed"
        if o.ok:
            lines.append(f"  ok    {o.target:<{width}}  {o.rows} rows → {o.results}  "
                         f"({sent}, {o.seconds:.1f} s)")
        else:
            kept = f"  [{o.rows} rows kept in {o.results}]" if o.rows else ""
            lines.append(f"  FAIL  {o.target:<{width}}  {o.error}{kept}")
        lines += [f"        {'':<{width}}  note: {n}" for n in o.notes]
    failed = sum(not o.ok for o in outcomes)
    run = outcomes[0].run_id if outcomes else None
    head = (f"deploy{f' (run {run})' if run else ''}: {len(outcomes) - failed} of "
            f"{len(outcomes)} targets finished" + (f", {failed} failed" if failed else ""))
    note = [f"  note: {outcomes[0].run_note}"] if outcomes and outcomes[0].run_note else []
    return "\n".join([head] + note + lines)
