"""The process-hygiene layers on their own, with real processes: a rank dies with
its parent (PR_SET_PDEATHSIG), and with its owner; kill_tree ends a tree whose
members left the group, and never signals our own group or a reused PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import ROOT

from runner.processes import handle, is_alive, kill_tree, owner_env

pytestmark = pytest.mark.timeout(60)


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


# A parent that starts a child in a session of its own (as torchrun does with ranks),
# prints the child's PID, then waits. `GUARD` is what the child runs first.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)
CHILD = "import time; {guard}; print('ready', flush=True); time.sleep(120)"


def _family(guard: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD.format(guard=guard)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    # the parent's line (the child's PID) and the child's "ready", printed once its guard ran, share one pipe
    lines = [parent.stdout.readline().strip(), parent.stdout.readline().strip()]
    assert "ready" in lines, lines
    lines.remove("ready")
    return parent, int(lines[0])


def test_a_rank_dies_with_its_launcher_even_in_its_own_session():
    parent, child = _family("from runner.processes import die_with_parent; die_with_parent()")
    try:
        assert is_alive(child)
        parent.kill()
        parent.wait()
        assert _wait_gone(child), "the child outlived its SIGKILLed parent"
    finally:
        kill_tree(child, grace=0)


def test_without_the_guard_the_child_would_be_orphaned():
    # the control for the test above: this is the leak die_with_parent closes
    parent, child = _family("pass")
    try:
        parent.kill()
        parent.wait()
        time.sleep(1.0)
        assert is_alive(child)
    finally:
        kill_tree(child, grace=0)
    assert _wait_gone(child)


def test_a_rank_dies_with_the_process_that_owns_the_run():
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    env = owner_env(psutil.Process(owner.pid))
    parent, child = _family("from runner.processes import watch_owner; watch_owner(interval=0.2)", env)
    try:
        assert is_alive(child)
        owner.kill()
        owner.wait()
        assert _wait_gone(child), "the rank outlived the server that owned its run"
    finally:
        parent.kill()
        parent.wait()
        kill_tree(child, grace=0)


def test_kill_tree_reaches_ranks_in_their_own_sessions_and_spares_our_group():
    parent, child = _family("pass")
    killed_before = set()
    try:
        # the parent shares our process group: kill_tree must not signal the group (it would hit pytest)
        assert os.getpgid(parent.pid) == os.getpgrp()
        t = time.monotonic()
        kill_tree(parent.pid, [child], grace=2.0)
        assert time.monotonic() - t < 8
        killed_before = {parent.pid, child}
        assert not is_alive(child)
        parent.wait(5)
    finally:
        for pid in (parent.pid, child):
            if pid not in killed_before and is_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_handle_of_an_ended_process_is_never_signalled():
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    stale = handle(first.pid)
    first.kill()
    first.wait()
    assert not is_alive(stale)
    kill_tree(stale, grace=0)  # nothing to do, nothing raised
    assert owner_env()["STUDIO_OWNER_PID"] == str(os.getpid())
