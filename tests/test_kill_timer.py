"""device.common.KillTimer, which ends a hung row child (timing.run_child) and a silent stream
process (stream_processes): it kills a real process that outlives it and says so, and leaves one
that ends first alone."""
from __future__ import annotations

import subprocess
import sys
import time

from edgebench.device.common import KillTimer


def test_a_process_that_outlives_the_timer_is_killed_and_the_timer_says_so():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    start = time.monotonic()
    timer = KillTimer(proc, 0.3)
    assert proc.wait(timeout=30) == -9
    assert timer.fired and 0.25 < time.monotonic() - start < 30


def test_a_process_that_ends_first_is_left_alone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    timer = KillTimer(proc, 5.0)
    assert proc.wait(timeout=30) == 0
    timer.cancel()
    time.sleep(0.1)
    assert not timer.fired
