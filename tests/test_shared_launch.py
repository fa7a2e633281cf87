"""Shared launches, for real: a 1,2 x 2 sweep on tiny in one `accelerate launch`
(one load, the 1-process runs on a sub-group of its ranks), against a launch per
run; a run that fails inside the live launch; a rank killed mid-sweep; Stop
mid-sweep; a server SIGKILLed mid-sweep and restarted."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import pytest
from conftest import ROOT
from faultkit import (
    FAULT_PROMPTS,
    EventLog,
    assert_database_sound,
    assert_no_leftovers,
    fault_config,
    start_server_script,
    store_earlier_run,
)

from db.store import Store
from studio.sweeps.plan import plan_sweep
from studio.sweeps.run import create_rows, run_sweep
from studio.sweeps.supervisor import Supervisor

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # real launches


def sweep_config(**changes):
    return fault_config(batch_size=2, dtype="float32", **changes)


class SweepInThread:
    """run_sweep on a thread, as the supervisor runs it, with its events collected."""

    def __init__(self, store: Store, launch: str = "shared", log: EventLog | None = None, **changes):
        self.store, self.log, self.cancel = store, log or EventLog(), threading.Event()
        self.plan = plan_sweep(sweep_config(**changes), [1, 2], repeats=2, launch=launch)
        self.sweep_id, self.run_ids = create_rows(self.plan, store)
        self.outcome = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.outcome = run_sweep(self.plan, self.store, on_event=self.log, cancel=self.cancel,
                                 sweep_id=self.sweep_id, run_ids=self.run_ids)

    def finish(self, timeout: float = 180) -> list[dict]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the sweep did not end within {timeout} s"
        return [self.store.get_run(i) for i in self.run_ids]

    def all_pids(self) -> list[int]:
        pids = {p for i in self.run_ids for p in (self.store.get_run(i)["pids"] or [])}
        return sorted(pids | set(self.log.rank_pids().values()))


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


def _texts(run: dict) -> list[str]:
    return [o["output"] for o in run["outputs"]]


def test_a_sweep_runs_in_one_launch_with_outputs_and_figures_of_its_own_per_run(store, db_path):
    shared = SweepInThread(store).finish()
    per_run = SweepInThread(store, launch="per-run").finish()

    assert [r["status"] for r in shared + per_run] == ["succeeded"] * 8
    launch_ids = {r["launch_id"] for r in shared}
    assert len(launch_ids) == 1 and None not in launch_ids  # one launch, four runs
    launch = store.get_launch(launch_ids.pop())
    assert launch["run_ids"] == [r["id"] for r in shared] and launch["world_size"] == 2
    assert launch["status"] == "succeeded" and launch["num_runs"] == 4
    # the launch's fixed costs are stored once, on it, never on its runs
    assert {"launch", "imports", "load", "total"} <= set(launch["phases"]) and launch["phases"]["load"] > 0
    for run in shared:
        assert not {"launch", "imports", "load"} & set(run["phases"])
        assert run["phases"]["generate"] == pytest.approx(run["seconds"])
        assert run["phases"]["total"] < launch["phases"]["total"]
    # per-run keeps the old shape: no launch row, every phase on the run
    assert {r["launch_id"] for r in per_run} == {None}
    assert all({"launch", "imports", "load", "generate"} <= set(r["phases"]) for r in per_run)

    # the same cells give the same outputs, whichever way they were launched
    assert [r["world_size"] for r in shared] == [r["world_size"] for r in per_run] == [1, 2, 1, 2]
    for a, b in zip(shared, per_run):
        assert _texts(a) == _texts(b) and a["tokens"] == b["tokens"] > 0
        assert [o["rank"] for o in a["outputs"]] == [o["rank"] for o in b["outputs"]]
    # each run timed on its own: its own ranks, its own seconds
    assert [len(r["ranks"]) for r in shared] == [1, 2, 1, 2]
    assert len({r["seconds"] for r in shared}) == 4 and all(r["seconds"] > 0 for r in shared)


def test_each_run_is_stored_as_started_before_the_page_hears_it_started(store, db_path):
    """The page shows a run as running (and its progress) from these events: the row must say so
    already, or a server killed in between resumes a run a user saw generate (a fresh-clone CI did)."""
    at_start: dict[int, str] = {}
    at_progress: dict[int, str] = {}

    class Recording(EventLog):
        def __call__(self, event: dict) -> None:
            seen = {"run-start": at_start, "progress": at_progress}.get(event.get("event"))
            if seen is not None and isinstance(event.get("run_id"), int):
                seen.setdefault(event["run_id"], store.get_run(event["run_id"])["status"])
            super().__call__(event)

    sweep = SweepInThread(store, log=Recording())
    runs = sweep.finish()
    assert [r["status"] for r in runs] == ["succeeded"] * 4
    assert at_progress == {run_id: "running" for run_id in sweep.run_ids}, at_progress
    # the first run is announced before its launch starts (it may wait for the machine); the others
    # are announced as the live launch reaches them
    assert at_start == {sweep.run_ids[0]: "queued", **{i: "running" for i in sweep.run_ids[1:]}}, at_start


def test_a_run_that_fails_inside_the_launch_fails_alone(store, db_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_FAIL_CELL", "1")  # the 2-process run of the first repeat, on rank 1
    sweep = SweepInThread(store)
    runs = sweep.finish()
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert "rank 1" in runs[1]["error"] and "injected failure" in runs[1]["error"]
    assert runs[1]["tokens_per_second"] is None
    assert len({r["launch_id"] for r in runs}) == 1  # the launch went on: no relaunch
    assert runs[3]["world_size"] == 2 and runs[3]["tokens"] == runs[2]["tokens"]
    assert sweep.outcome.status == "failed"
    assert_no_leftovers(sweep.all_pids())


def test_a_rank_killed_mid_sweep_fails_its_run_and_the_rest_are_relaunched(store, db_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "1.5")
    earlier = store_earlier_run(store)
    sweep = SweepInThread(store)
    second = sweep.run_ids[1]  # the 2-process run of the first repeat
    sweep.log.wait_for(lambda e: e["event"] == "outputs" and e.get("run_id") == second and e["rank"] == 1, 120,
                       "rank 1 to finish a batch of the second run")
    victim = sweep.log.rank_pids()[1]
    first_pids = sweep.all_pids()
    os.kill(victim, signal.SIGKILL)
    runs = sweep.finish()

    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert "rank 1" in runs[1]["error"] and "died" in runs[1]["error"], runs[1]["error"]
    assert runs[1]["partial"] == 1 and runs[1]["tokens_per_second"] is None
    first, again = runs[0]["launch_id"], runs[2]["launch_id"]
    assert runs[1]["launch_id"] == first and runs[3]["launch_id"] == again != first
    relaunch = store.get_launch(again)
    assert relaunch["relaunch_of"] == first and relaunch["status"] == "succeeded"
    assert store.get_launch(first)["status"] == "failed"
    assert all(r["tokens"] > 0 for r in (runs[0], runs[2], runs[3]))
    assert_no_leftovers(first_pids + sweep.all_pids())
    assert_database_sound(db_path, [earlier])


def test_stop_mid_sweep_ends_the_launch_and_every_run_left(store, db_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "2")
    sweep = SweepInThread(store)
    second = sweep.run_ids[1]
    sweep.log.wait_for(lambda e: e["event"] == "progress" and e.get("run_id") == second, 120,
                       "the second run to generate")
    pids = sweep.all_pids()
    stopped = time.monotonic()
    sweep.cancel.set()
    runs = sweep.finish(timeout=30)
    assert time.monotonic() - stopped < 10

    assert [r["status"] for r in runs] == ["succeeded", "cancelled", "cancelled", "cancelled"]
    assert runs[2]["started_at"] is None and runs[2]["error"] == "cancelled before it started"
    assert sweep.outcome.status == "cancelled"
    assert len({r["launch_id"] for r in runs}) == 1  # Stop relaunches nothing
    assert_no_leftovers(pids, timeout=5)


SERVER = textwrap.dedent(
    f"""
    import sys, time
    from runner.config import RunConfig
    from studio.sweeps.plan import plan_sweep
    from studio.sweeps.supervisor import Supervisor

    supervisor = Supervisor(sys.argv[1])
    config = RunConfig(prompts={FAULT_PROMPTS!r}, device="cpu", dtype="float32", max_new_tokens=4, batch_size=2,
                       warmup=False)
    sweep = supervisor.submit(plan_sweep(config, [1, 2], repeats=2))
    while True:
        status = supervisor.status(sweep)
        if status["runs"][1]["done"] > 0:
            print("GENERATING", status["runs"][1]["run_id"], flush=True)
        time.sleep(0.2)
    """
)


def test_a_server_killed_mid_sweep_resumes_the_runs_its_launch_had_not_reached(db_path):
    store = Store(db_path)
    server, run_id = start_server_script(SERVER, db_path, 3, ROOT)  # the sweep's second run generates
    try:
        sweep_id = store.get_run(run_id)["sweep_id"]
        ids = [r["id"] for r in sorted(store.list_runs(sweep_id=sweep_id), key=lambda r: r["id"])]
        # every run of the live launch names its processes, reached yet or not
        pids = store.get_run(ids[3])["pids"]
        assert len(pids) == 3 and pids == store.get_run(run_id)["pids"]
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert_no_leftovers(pids, timeout=10, owner_pids=[server.pid])

    restarted = Supervisor(db_path)
    try:
        assert restarted.interrupted_at_start == [run_id]
        assert restarted.resumed_at_start == [sweep_id]
        deadline = time.monotonic() + 150
        while restarted.busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        runs = [restarted.store.get_run(i) for i in ids]
    finally:
        restarted.shutdown()
    assert [r["status"] for r in runs] == ["succeeded", "interrupted", "succeeded", "succeeded"]
    # the runs resumed share a launch of their own, the restarted server's
    assert runs[2]["launch_id"] == runs[3]["launch_id"] != runs[0]["launch_id"]
    assert store.get_launch(runs[0]["launch_id"])["status"] == "interrupted"  # it ended with the dead server
    assert runs[3]["world_size"] == 2 and runs[3]["tokens"] > 0
    assert store.get_sweep(sweep_id)["status"] == "interrupted"
    assert_no_leftovers(runs[3]["pids"] or [], timeout=10)
    assert_database_sound(db_path)
