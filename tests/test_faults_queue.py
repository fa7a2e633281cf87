"""Concurrent submissions: one hardware job at a time, the others wait in a queue
with a visible position; a queued sweep can be stopped before it starts."""

from __future__ import annotations

import threading
import time

import pytest
from faultkit import assert_database_sound, assert_no_leftovers, fault_config, store_earlier_run

from db.store import Store
from studio.sweeps.plan import plan_sweep
from studio.sweeps.supervisor import Supervisor

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # real accelerate launches


def test_concurrent_submissions_queue_and_run_one_at_a_time(db_path):
    earlier = store_earlier_run(Store(db_path))
    supervisor = Supervisor(db_path)
    plan = plan_sweep(fault_config(prompts=["Call me Ishmael.", "124 was spiteful."], gpus_per_node=1), [1])
    ids: list[int] = []
    barrier = threading.Barrier(2)

    def submit() -> None:
        barrier.wait()
        ids.append(supervisor.submit(plan))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    third = supervisor.submit(plan)
    try:
        assert len(set(ids)) == 2
        first, second = sorted(ids)
        positions = {s: supervisor.status(s)["queue_position"] for s in (first, second, third)}
        # the first may already be running (no position) or still at the head of the queue
        assert positions[second] == positions[third] - 1 and positions[third] in (2, 3)
        assert [q["sweep_id"] for q in supervisor.queue()] == [first, second, third]
        assert supervisor.cancel(third)  # stopped while queued: never starts
        assert supervisor.status(third)["state"] == "cancelled"

        most_running = 0
        deadline = time.monotonic() + 150
        while supervisor.busy() and time.monotonic() < deadline:
            running = supervisor.store.list_runs(status="running")
            most_running = max(most_running, len(running))
            time.sleep(0.1)
        assert not supervisor.busy(), "the queue did not drain in time"
    finally:
        supervisor.shutdown()
    assert most_running == 1  # never two runs on the hardware at once
    store = Store(db_path)
    a, b = (store.get_sweep(s)["runs"][0] for s in (first, second))
    assert a["status"] == b["status"] == "succeeded"
    assert b["started_at"] >= a["finished_at"]
    c = store.get_sweep(third)["runs"][0]
    assert c["status"] == "cancelled" and c["started_at"] is None and c["pids"] is None
    assert_no_leftovers([*a["pids"], *b["pids"]], timeout=5)
    assert_database_sound(db_path, [earlier])
