"""Ending a run's whole process tree, and making sure nothing of it outlives its owner.

torchrun starts each rank in a session of its own, so signalling the launcher's
process group leaves ranks behind. We signal the launcher, wait, then kill every
descendant and every rank the worker reported that is still alive.

Three more layers cover the cases where the killer itself is gone:
- each rank asks the kernel for SIGKILL when its parent (the launcher) dies
  (`die_with_parent`, PR_SET_PDEATHSIG), so SIGKILL on the launcher takes the ranks along;
- each rank watches the process that owns the run (the studio server or the CLI,
  named in STUDIO_OWNER_PID) and exits when it is gone (`watch_owner`);
- a starting server kills what a dead owner left behind (`kill_orphans`), checking
  each PID's environment first, so a PID reused by someone else is never touched.

Processes are held as `psutil.Process` objects from the moment they are seen:
psutil refuses to signal a PID that now belongs to a different process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Iterable, Union

import psutil

OWNER_ENV = "STUDIO_OWNER_PID"
OWNER_START_ENV = "STUDIO_OWNER_START"
PR_SET_PDEATHSIG = 1

ProcessLike = Union[int, psutil.Process]


def handle(pid: ProcessLike) -> psutil.Process | None:
    """A psutil handle for a PID (or the handle itself); None if it is gone."""
    if isinstance(pid, psutil.Process):
        return pid
    if pid is None or int(pid) <= 1 or int(pid) == os.getpid():
        return None
    try:
        return psutil.Process(int(pid))
    except psutil.Error:
        return None


def is_alive(proc: ProcessLike) -> bool:
    """Running and not a zombie; False for a PID now used by another process."""
    p = handle(proc)
    if p is None:
        return False
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(pid: ProcessLike) -> list[psutil.Process]:
    p = handle(pid)
    if p is None:
        return []
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)  # checks the PID was not reused
    except (psutil.Error, OSError):
        pass


def kill_tree(root: ProcessLike, extra_pids: Iterable[ProcessLike] = (), grace: float = 5.0) -> list[int]:
    """SIGTERM the root's group and every known process, give them `grace`
    seconds, then SIGKILL whatever of the tree (and of `extra_pids`) is left.
    Safe to call on a tree that is gone. Returns the PIDs that needed SIGKILL."""
    root_proc = handle(root)
    known: dict[int, psutil.Process] = {}

    extras = [handle(x) for x in extra_pids]

    def collect() -> None:
        for p in [*extras, root_proc, *descendants(root_proc)]:
            if p is not None and p.pid not in known:
                known[p.pid] = p

    collect()
    if root_proc is not None and is_alive(root_proc):
        try:
            group = os.getpgid(root_proc.pid)
            if group != os.getpgrp():  # never our own group: that would signal ourselves
                os.killpg(group, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for p in list(known.values()):
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        collect()
        if not any(is_alive(p) for p in known.values()):
            return []
        time.sleep(0.1)
    collect()
    killed = []
    for p in known.values():
        if is_alive(p):
            _signal(p, signal.SIGKILL)
            killed.append(p.pid)
    # wait (briefly) until the kernel has really ended them, so callers can assert on it
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(is_alive(p) for p in known.values()):
        time.sleep(0.05)
    return killed


# --- inside a rank -------------------------------------------------------------

def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies.
    Linux only; returns False elsewhere. Exits at once if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent or parent == 1:  # the parent died before prctl took effect
        os._exit(1)
    return True


def owner_env(proc: psutil.Process | None = None) -> dict[str, str]:
    """Environment naming this process (or `proc`) as the owner of the runs it launches."""
    owner = proc or psutil.Process()
    return {OWNER_ENV: str(owner.pid), OWNER_START_ENV: repr(owner.create_time())}


def owner_from_env(env: dict | None = None) -> psutil.Process | None:
    env = os.environ if env is None else env
    try:
        pid, start = int(env[OWNER_ENV]), float(env[OWNER_START_ENV])
    except (KeyError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return None
    # a different process now wearing the owner's PID is no owner, and neither is a killed
    # owner its parent has not reaped yet (a zombie keeps its PID and start time)
    return proc if abs(proc.create_time() - start) < 0.01 and is_alive(proc) else None


def watch_owner(interval: float = 1.0) -> threading.Thread | None:
    """In a rank: exit when the process that owns the run (server or CLI) is gone,
    however it died. Does nothing if no owner is named."""
    if OWNER_ENV not in os.environ:
        return None
    owner = owner_from_env()
    if owner is None:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if not is_alive(owner):
                os._exit(1)

    thread = threading.Thread(target=watch, name="studio-owner-watch", daemon=True)
    thread.start()
    return thread


# --- at server start-up -----------------------------------------------------------

def launched_by(proc: ProcessLike) -> dict | None:
    """The owner a studio-launched process names in its environment, or None for
    any process the studio did not launch."""
    p = handle(proc)
    if p is None:
        return None
    try:
        env = p.environ()
    except (psutil.Error, OSError):
        return None
    return {k: env[k] for k in (OWNER_ENV, OWNER_START_ENV) if k in env} if OWNER_ENV in env else None


def has_live_owner(pid: int) -> bool:
    """A running studio-launched process whose owner (a server, a CLI) still runs."""
    p = handle(pid)
    owner = launched_by(p) if p is not None else None
    return owner is not None and is_alive(p) and owner_from_env(owner) is not None


def kill_orphans(pids: Iterable[int], grace: float = 3.0) -> list[int]:
    """Kill the processes among `pids` (and their descendants) that the studio
    launched for an owner that is gone. A PID the system has since given to some
    other program, or a run whose owner (another server, a CLI) still runs, is left alone."""
    orphans = []
    for pid in pids:
        p = handle(pid)
        owner = launched_by(p) if p is not None else None
        if owner is not None and owner_from_env(owner) is None and is_alive(p):
            orphans.append(p)
    if orphans:
        kill_tree(orphans[0], orphans[1:], grace=grace)
    return [p.pid for p in orphans]
