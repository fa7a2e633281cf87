"""Ending a run's whole process tree.

torchrun starts each rank in a session of its own, so signalling the launcher's
process group leaves ranks behind. We signal the launcher, wait, then kill every
descendant and every rank PID the worker reported that is still alive.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def alive(pids: Iterable[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def kill_tree(root: int, extra_pids: Iterable[int] = (), grace: float = 5.0) -> None:
    """SIGTERM the root, give it `grace` seconds, then SIGKILL whatever of the
    tree (and of `extra_pids`) is left. Safe to call on a tree that is gone."""
    known = {p.pid for p in descendants(root)} | set(extra_pids)
    try:
        os.killpg(os.getpgid(root), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in known:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        known |= {p.pid for p in descendants(root)}
        if not alive(known | {root}):
            break
        time.sleep(0.1)
    known |= {p.pid for p in descendants(root)}
    for pid in alive(known | {root}):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
