"""A killed owner (server or CLI) that its parent has not reaped yet is a zombie:
it must count as dead, or its sweeps are never taken over (issue 27 item 9)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from runner.processes import owner_env, owner_from_env


def test_a_zombie_owner_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        env = owner_env(psutil.Process(proc.pid))
        assert owner_from_env(env) is not None  # running: the owner
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:  # killed, not reaped (no wait())
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert owner_from_env(env) is None
    finally:
        proc.kill()
        proc.wait()
