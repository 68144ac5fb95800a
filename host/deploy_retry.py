"""When a deploy tries a target again. A dropped link (LinkDropped) is retried with doubling
back-off and the next attempt resumes where the cut one stopped; any other error ends that target's
deploy at once, since a retry would only meet it again.

An attempt that moved the deploy forward (bytes delivered, rows measured) does not use up a retry:
`retries` counts dropped attempts in a row that moved nothing, so a link that drops every 100 MB
still delivers a 400 MB bundle. MAX_ATTEMPTS caps them all the same."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from edgebench.host.targets import LinkDropped
from edgebench.host.targets.progress import TargetProgress
from edgebench.host.targets.transfer import TransferStats

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 2.0
MAX_BACKOFF_S = 30.0
MAX_ATTEMPTS = 50
RETRIED_ERRORS = (LinkDropped,)
# edgebench's own account of each dropped link: paramiko logs a reset only when its reader thread
# is the one that meets it, so without this line host.log may not say why a reconnect happened
_LOG = logging.getLogger("edgebench.deploy")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S

    def gives_up(self, attempts: int, idle: int) -> bool:
        """idle: dropped attempts in a row that moved nothing forward."""
        return self.retries <= 0 or idle > self.retries or attempts >= MAX_ATTEMPTS

    def delay_s(self, idle: int) -> float:
        return min(self.backoff_s * 2 ** max(idle - 1, 0), MAX_BACKOFF_S)


class RetriedTarget(Protocol):
    """What the loop reads and records of one target's deploy (host/deploy.py's TargetRun)."""
    outcome: Any      # a DeployOutcome: attempts, transfer, error and drops are kept up to date
    rows: int         # rows the agent measured so far, every attempt: growing is progress
    bar: TargetProgress


def attempt_until_done(attempt_once: Callable[[TransferStats], None], run: RetriedTarget,
                       policy: RetryPolicy) -> None:
    """attempt_once(stats) until it returns, or the policy gives up on a dropped link (the outcome's
    error then says so). Errors that are not retried propagate."""
    outcome = run.outcome
    idle = 0
    while True:
        outcome.attempts += 1
        stats = TransferStats()
        rows_before = run.rows
        try:
            attempt_once(stats)
        except RETRIED_ERRORS as exc:
            outcome.transfer.add(stats)
            moved = stats.bytes_sent > 0 or run.rows > rows_before
            idle = 0 if moved else idle + 1
            if not _wait_to_retry(run, policy, exc, idle):
                return
        else:
            outcome.transfer.add(stats)
            return


def _wait_to_retry(run: RetriedTarget, policy: RetryPolicy, exc: Exception, idle: int) -> bool:
    """Records the dropped link; sleeps out the back-off and says True, or False to give up."""
    outcome = run.outcome
    outcome.error = str(exc)
    outcome.drops.append(str(exc))
    if policy.gives_up(outcome.attempts, idle):
        outcome.error = f"{exc} (gave up after {outcome.attempts} attempts)"
        _LOG.error("%s", outcome.error)
        return False
    delay = policy.delay_s(idle)
    _LOG.warning("%s; retry %d in %.1f s", exc, outcome.attempts, delay)
    run.bar.note(f"link dropped, retrying in {delay:.0f} s")
    time.sleep(delay)
    return True
