"""One hardware job per machine.

Two studios on one machine (two servers, a server and a CLI, whatever their
databases) would otherwise launch side by side and skew both measurements.
Every runner takes this lock around a launch. It is an `flock` on a file, so
the kernel releases it when its holder dies, however it dies: a killed server
never leaves the machine locked. The holder writes who it is into the file, so
a waiting runner can say what it waits for.

Nodes other than node 0 of a multi-node run do not take it: they lend their
processes to node 0's job (on one machine, a loopback test, they would wait
for node 0 forever).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

from runner.processes import OWNER_ENV, OWNER_START_ENV, owner_from_env

POLL_S = 0.2


def lock_path() -> Path:
    """Per user, not per studio home or database: the GPUs are the machine's."""
    default = Path(tempfile.gettempdir()) / f"scaling-studio-{os.getuid()}.hardware.lock"
    return Path(os.environ.get("STUDIO_HARDWARE_LOCK") or default)


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another studio process is running a job on this machine"
    what = f"a studio {holder.get('program', 'process')} (PID {holder.get('pid')})"
    if holder.get("run_id") is not None:
        what += f", run {holder['run_id']}"
    return f"{what} is running a job on this machine"


class HardwareLock:
    """The flock says who holds the machine; tickets in a folder beside it say who
    waits, in arrival order. Only the first live waiter may take the flock, so a
    runner that arrives later (a CLI between two of its runs) never overtakes one
    that was already waiting."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path or lock_path())
        self._fd: int | None = None
        self.position: int | None = None  # 1 = next in line, while waiting

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None

    def _queue(self) -> Path:
        return self.path.with_name(self.path.name + ".queue")

    def _take_ticket(self) -> Path:
        folder = self._queue()
        folder.mkdir(parents=True, exist_ok=True)
        start = psutil.Process().create_time()
        ticket = folder / f"{time.time_ns():020d}-{os.getpid()}-{id(self)}"
        ticket.write_text(json.dumps({"pid": os.getpid(), "start": start}))
        return ticket

    def _ahead_of(self, ticket: Path) -> int:
        """Live tickets before this one; those of dead waiters are cleared away."""
        ahead = 0
        for other in sorted(self._queue().iterdir()):
            if other.name >= ticket.name:
                break
            try:
                owner = json.loads(other.read_text())
                alive = owner_from_env({OWNER_ENV: str(owner["pid"]), OWNER_START_ENV: repr(owner["start"])})
                alive = alive is not None or owner["pid"] == os.getpid()
            except (OSError, ValueError, KeyError, TypeError):
                alive = False
            if alive:
                ahead += 1
            else:
                other.unlink(missing_ok=True)
        return ahead

    def acquire(self, me: dict, *, cancel: threading.Event | None = None,
                on_wait: Callable[[dict | None], None] | None = None) -> bool:
        """Block until this process holds the lock (True) or `cancel` is set (False).
        `on_wait` hears about each new holder or place in line (`self.position`) while this one waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        ticket = self._take_ticket()
        last = object()
        try:
            while True:
                ahead = self._ahead_of(ticket)
                if not ahead:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        pass
                self.position = ahead + 1
                holder = self.holder()
                if (holder, self.position) != last and on_wait is not None:
                    on_wait(holder)
                last = (holder, self.position)
                if cancel is not None and cancel.is_set():
                    os.close(fd)
                    return False
                time.sleep(POLL_S)
        finally:
            self.position = None
            ticket.unlink(missing_ok=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**me, "pid": os.getpid(), "since": time.time()}).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
