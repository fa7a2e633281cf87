"""The launcher's view of a running launch: its stdout events and its stderr
tail, read on two threads, and which ranks are gone. Used by `runner.host.launcher`
and read by `runner.host.failures`."""

from __future__ import annotations

import collections
import re
import subprocess
import threading
from pathlib import Path
from typing import Callable

from runner import events
from runner.processes import handle, is_alive

STDERR_TAIL_LINES = 60
RANK_TAIL_LINES = 30
RANK_LINE = re.compile(r"^\[rank (\d+)\] ")  # the worker tags its stderr lines with its rank

# Tracing libraries on a GPU machine print their probe registrations ("USDT … profiler_start") on the
# ranks' stderr: noise that would fill the page's log and push the real error out of the tail
NOISE = re.compile(r"\bUSDT\b")

EventCallback = Callable[[dict], None]


def is_noise(line: str) -> bool:
    """A stderr line kept in stderr.log but out of the log shown and the tails a failure quotes."""
    return bool(NOISE.search(line))


class Streams:
    """Reads the launcher's stdout (events) and stderr (tail) on two threads."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, on_event: EventCallback | None):
        self.events: list[dict] = []
        self.rank_pids: dict[int, int] = {}
        self.rank_procs: dict = {}  # rank -> psutil.Process, taken while it runs (safe against PID reuse)
        self.finished_ranks: set[int] = set()
        self.stderr = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.rank_stderr: dict[int, collections.deque] = {}
        self._on_event = on_event
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(proc.stdout, run_dir / "stdout.log"), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc.stderr, run_dir / "stderr.log"), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _deliver(self, event: dict) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken progress display must not break the run
                pass

    def _read_stdout(self, stream, log_path: Path) -> None:
        with open(log_path, "w") as log:
            for line in stream:
                log.write(line)
                event = events.parse(line)
                if event is None:
                    continue
                with self._lock:
                    self.events.append(event)
                    if event["event"] == "started":
                        self.rank_pids[int(event["rank"])] = int(event["pid"])
                        self.rank_procs[int(event["rank"])] = handle(int(event["pid"]))
                    elif event["event"] in ("done", "error"):
                        self.finished_ranks.add(int(event.get("rank", -1)))
                self._deliver(event)

    def _read_stderr(self, stream, log_path: Path) -> None:
        with open(log_path, "w") as log:
            for line in stream:
                log.write(line)
                if is_noise(line):
                    continue
                self.stderr.append(line.rstrip("\n"))
                tagged = RANK_LINE.match(line)
                if tagged:
                    rank = int(tagged.group(1))
                    self.rank_stderr.setdefault(rank, collections.deque(maxlen=RANK_TAIL_LINES)).append(
                        line.rstrip("\n"))
                self._deliver({"event": "log", "stream": "stderr", "line": line.rstrip("\n")})

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def worker_errors(self) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == "error"]

    def dead_ranks(self) -> list[int]:
        """Ranks that started and are gone without saying done or reporting an error."""
        with self._lock:
            procs = {r: p for r, p in self.rank_procs.items() if r not in self.finished_ranks}
        return sorted(r for r, p in procs.items() if p is None or not is_alive(p))

    def rank_tail(self, rank: int) -> str:
        with self._lock:
            return "\n".join(self.rank_stderr.get(rank, ()))

    def started_times(self) -> list[float]:
        with self._lock:
            return [e["time"] for e in self.events if e["event"] == "started" and "time" in e]
