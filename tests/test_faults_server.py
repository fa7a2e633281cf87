"""The server dies (SIGKILL) with a run on the GPUs, then starts again.

The ranks watch the process that owns their run and end with it; the accelerate
launcher ends with its ranks; a restarted server marks the run interrupted and
kills whatever a dead owner left running, never a process it did not launch, and
runs what the dead server had queued but never started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import ROOT
from faultkit import FAULT_PROMPTS, assert_database_sound, assert_no_leftovers, start_server_script, store_earlier_run

from db.store import Store
from runner.processes import OWNER_ENV, OWNER_START_ENV, is_alive, owner_env
from studio.sweeps.supervisor import Supervisor

pytestmark = pytest.mark.timeout(180)

SERVER = textwrap.dedent(
    f"""
    import sys, time
    from runner.config import RunConfig
    from studio.sweeps.plan import plan_sweep
    from studio.sweeps.supervisor import Supervisor

    supervisor = Supervisor(sys.argv[1])
    config = RunConfig(prompts={FAULT_PROMPTS!r}, device="cpu", max_new_tokens=4, batch_size=1, warmup=False)
    sweep = supervisor.submit(plan_sweep(config, [2], repeats=2))
    while True:
        status = supervisor.status(sweep)
        if any(run["done"] > 0 for run in status["runs"]):
            print("GENERATING", status["runs"][0]["run_id"], flush=True)
        time.sleep(0.2)
    """
)


@pytest.mark.slow
def test_server_sigkill_mid_run_leaves_no_process_and_restart_marks_it_interrupted(db_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    server, run_id = start_server_script(SERVER, db_path, 5, ROOT)
    try:
        pids = store.get_run(run_id)["pids"]
        assert len(pids) == 3  # the launcher and two ranks
        assert all(is_alive(p) for p in pids)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # nobody is left to kill them: the ranks notice their owner is gone, the launcher its ranks
    assert_no_leftovers(pids, timeout=10, owner_pids=[server.pid])
    assert store.get_run(run_id)["status"] == "running"  # what the dead server left

    sweep_id = store.get_run(run_id)["sweep_id"]
    (queued,) = [r["id"] for r in store.list_runs(sweep_id=sweep_id, status="queued")]

    restarted = Supervisor(db_path)
    try:
        assert restarted.interrupted_at_start == [run_id]
        row = restarted.store.get_run(run_id)
        assert row["status"] == "interrupted" and row["tokens_per_second"] is None
        # the repeat it never started touched no hardware: the restarted server runs it
        assert restarted.resumed_at_start == [sweep_id]
        deadline = time.monotonic() + 120
        while restarted.busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        resumed = restarted.store.get_run(queued)
        assert resumed["status"] == "succeeded" and resumed["tokens"] > 0 and resumed["world_size"] == 2
        assert restarted.store.get_sweep(sweep_id)["status"] == "interrupted"  # one of its runs never finished
    finally:
        restarted.shutdown()
    assert_no_leftovers(resumed["pids"] or [], timeout=10)
    assert_database_sound(db_path, [earlier])


def _stand_in(owner: dict | None) -> subprocess.Popen:
    """A process that looks like a leftover rank: it names `owner` in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in (OWNER_ENV, OWNER_START_ENV)}
    env.update(owner or {})
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)


def test_restart_kills_only_what_a_dead_owner_left_behind(db_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    # a server that has died: its PID and start time, gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_env(psutil.Process(dead.pid))
    dead.wait()
    orphan = _stand_in(dead_owner)
    live_owner = _stand_in(owner_env(psutil.Process()))  # a run this (live) process still owns
    stranger = _stand_in(None)  # a PID the system gave to someone else
    try:
        config = json.loads(json.dumps({"prompts": FAULT_PROMPTS, "model": "tiny", "mode": "batched",
                                        "batch_size": 1, "max_new_tokens": 4, "num_gpus": 1}))
        stale_sweep = store.create_sweep({"model": "tiny"}, [1], 1)
        live_sweep = store.create_sweep({"model": "tiny"}, [1], 1)
        stale = store.create_run(config, sweep_id=stale_sweep)
        store.mark_running(stale, [orphan.pid, stranger.pid])
        stale_queued = store.create_run(config, sweep_id=stale_sweep)
        live = store.create_run(config, sweep_id=live_sweep)
        store.mark_running(live, [live_owner.pid])
        live_queued = store.create_run(config, sweep_id=live_sweep)

        supervisor = Supervisor(db_path)
        try:
            assert supervisor.killed_at_start == [orphan.pid]
            assert orphan.wait(10) is not None
            assert live_owner.poll() is None and stranger.poll() is None
            assert sorted(supervisor.interrupted_at_start) == [stale, stale_queued]
            rows = {r["id"]: r["status"] for r in supervisor.store.list_runs()}
            assert rows[stale] == rows[stale_queued] == "interrupted"
            assert rows[live] == "running" and rows[live_queued] == "queued"
        finally:
            supervisor.shutdown()
    finally:
        for proc in (orphan, live_owner, stranger):
            proc.kill()
            proc.wait()
    assert_database_sound(db_path, [earlier])
