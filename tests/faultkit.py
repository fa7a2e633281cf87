"""Shared checks for the fault tests: every fault must leave no process behind, an
intact database, and every run stored before it still there."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import psutil

from db.store import Store
from runner.config import RunConfig
from runner.processes import OWNER_ENV, is_alive
from runner.result import RunResult

# Small enough that a launch is mostly start-up; the test hooks stretch it where needed.
FAULT_PROMPTS = ["The King is dead.", "Call me Ishmael.", "124 was spiteful.", "It was a bright cold day."]


def fault_config(**changes) -> RunConfig:
    base = dict(prompts=FAULT_PROMPTS, device="cpu", max_new_tokens=4, batch_size=1, gpus_per_node=2, warmup=False, timeout_s=120)
    base.update(changes)
    return RunConfig(**base)


def store_earlier_run(store: Store) -> dict:
    """A finished run stored before the fault, to prove the fault loses nothing."""
    config = fault_config(gpus_per_node=1, label="before the fault").to_dict()
    run_id = store.create_run(config)
    outputs = [{"prompt_index": i, "rank": 0, "prompt": p, "output": "x", "tokens": 1, "raw_tokens": 1}
               for i, p in enumerate(FAULT_PROMPTS)]
    ranks = [{"rank": 0, "num_prompts": 4, "tokens": 4, "raw_tokens": 4, "seconds": 1.0}]
    store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=1, tokens=4, raw_tokens=4,
                                       seconds=1.0, tokens_per_second=4.0, outputs=outputs, ranks=ranks))
    return store.get_run(run_id)


def assert_database_sound(db_path: Path, earlier: list[dict] = ()) -> None:
    """integrity_check from a fresh connection, and every earlier run unchanged."""
    conn = sqlite3.connect(str(db_path), timeout=10)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    store = Store(db_path)
    try:
        for run in earlier:
            again = store.get_run(run["id"])
            assert again is not None, f"run {run['id']} stored before the fault is gone"
            assert again["status"] == run["status"]
            assert again["tokens_per_second"] == run["tokens_per_second"]
            assert [o["output"] for o in again["outputs"]] == [o["output"] for o in run["outputs"]]
    finally:
        store.close()


def launched_by_me() -> list[psutil.Process]:
    """Every live process the studio launched from this test process (they carry our PID)."""
    mine = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(OWNER_ENV) == str(os.getpid()) and is_alive(proc):
                mine.append(proc)
        except (psutil.Error, OSError):
            pass
    return mine


def assert_no_leftovers(pids=(), timeout: float = 10.0, owner_pids=()) -> None:
    """No process of the run remains: the given PIDs, and anything launched by this
    process or by `owner_pids` (e.g. a server process the test killed)."""
    owners = {str(os.getpid()), *(str(p) for p in owner_pids)}

    def leftovers() -> list[psutil.Process]:
        found = {p.pid: p for p in (_proc(pid) for pid in pids) if p is not None and is_alive(p)}
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(OWNER_ENV) in owners and is_alive(proc):
                    found[proc.pid] = proc
            except (psutil.Error, OSError):
                pass
        return list(found.values())

    deadline = time.monotonic() + timeout
    left = leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers()
    described = []
    for p in left:
        try:
            described.append(f"{p.pid}: {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            pass
    assert not described, "processes of the run remain:\n" + "\n".join(described)


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


class EventLog:
    """Collects a run's events (from any thread) and waits for one to arrive."""

    def __init__(self):
        self.events: list[dict] = []
        self._cond = threading.Condition()

    def __call__(self, event: dict) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                assert left > 0, f"timed out after {timeout:.0f} s waiting for {what}; events: " + str(
                    [e.get("event") for e in self.events][-20:])
                self._cond.wait(min(left, 0.5))

    def count(self, predicate) -> int:
        with self._cond:
            return sum(1 for e in self.events if predicate(e))

    def rank_pids(self) -> dict[int, int]:
        with self._cond:
            return {int(e["rank"]): int(e["pid"]) for e in self.events if e.get("event") == "started"}


def wait_until_final(supervisor, sweep_id: int, timeout: float = 150) -> dict:
    """The supervisor's status of a sweep once it has ended (succeeded, failed, ...)."""
    from studio.sweeps.supervisor import FINAL

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = supervisor.status(sweep_id)
        if status and status["state"] in FINAL:
            return status
        time.sleep(0.2)
    raise AssertionError(f"sweep {sweep_id} did not finish in {timeout} s: {supervisor.status(sweep_id)}")


def start_server_script(script: str, db_path: Path, pause_batch: float, root: Path):
    """Run `script` (a server that prints `GENERATING <run id>` once a run generates) in a
    process of its own, each batch held `pause_batch` s; returns the process and that run id."""
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, "-c", script, str(db_path)], cwd=root, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "STUDIO_TEST_PAUSE_BATCH": str(pause_batch), "PYTHONPATH": str(root)},
    )
    line = ""
    deadline = time.monotonic() + 120
    while not line.startswith("GENERATING") and time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line and server.poll() is not None:
            raise AssertionError("the server process ended on its own")
    if not line.startswith("GENERATING"):
        server.kill()
        raise AssertionError("no run started generating within 120 s")
    return server, int(line.split()[1])
