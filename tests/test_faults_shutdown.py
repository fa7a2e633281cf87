"""The server stops (SIGTERM, Ctrl+C) in the middle of a sweep: the running run is
ended with its whole process tree and stored as interrupted, runs that had not
started are interrupted too, and nothing stored before is lost."""

from __future__ import annotations

import time

import pytest
from faultkit import EventLog, assert_database_sound, assert_no_leftovers, fault_config, store_earlier_run

from db.store import Store
from studio.sweeps.plan import plan_sweep
from studio.sweeps.supervisor import Supervisor

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # real accelerate launches


def test_shutdown_mid_run_interrupts_the_sweep_and_leaves_no_process(db_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "5")
    earlier = store_earlier_run(Store(db_path))
    supervisor = Supervisor(db_path)
    log = EventLog()
    supervisor_on_event = supervisor._on_event
    monkeypatch.setattr(supervisor, "_on_event", lambda job, e: (log(e), supervisor_on_event(job, e)))
    sweep = supervisor.submit(plan_sweep(fault_config(gpus_per_node=2), [2, 1]))
    log.wait_for(lambda e: e["event"] == "progress", 120, "the first run to generate")
    first = supervisor.status(sweep)["runs"][0]["run_id"]
    pids = supervisor.store.get_run(first)["pids"]

    t = time.monotonic()
    supervisor.shutdown()
    assert time.monotonic() - t < 15
    assert not supervisor.busy()
    with pytest.raises(RuntimeError, match="shutting down"):
        supervisor.submit(plan_sweep(fault_config(gpus_per_node=1), [1]))

    store = Store(db_path)
    runs = store.get_sweep(sweep)["runs"]
    by_id = {r["id"]: r for r in runs}
    assert by_id[first]["status"] == "interrupted" and "server stopped during" in by_id[first]["error"]
    assert by_id[first]["tokens_per_second"] is None
    assert by_id[first]["partial"] == 1 and store.get_run(first)["outputs"]  # what was generated is kept
    others = [r for r in runs if r["id"] != first]
    assert others and all(r["status"] == "interrupted" and r["started_at"] is None for r in others)
    assert store.get_sweep(sweep)["status"] == "interrupted"
    assert_no_leftovers(pids, timeout=5)
    assert_database_sound(db_path, [earlier])
