"""A Stop is on disk before it is acknowledged (issue 27 item 2): a server killed
right after `/stop_sweep` answered must not resume the stopped sweep on restart."""

from __future__ import annotations

import os
import threading

import pytest
from faultkit import fault_config

from db.store import Store
from studio.sweeps import supervisor as supervisor_module
from studio.sweeps.plan import plan_sweep
from studio.sweeps.supervisor import Supervisor

pytestmark = pytest.mark.timeout(60)


def test_a_stop_is_stored_before_it_is_acknowledged(db_path, monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow_sweep(plan, store, *, cancel, sweep_id, run_ids, **_):
        # the first run under way, the rest queued; it notices the Stop only later,
        # the window in which a killed server used to forget it
        store.mark_running(run_ids[0], [os.getpid()])
        started.set()
        release.wait(30)
        raise RuntimeError("the server was killed")  # never reaches finish_sweep

    monkeypatch.setattr(supervisor_module, "run_sweep", slow_sweep)
    supervisor = Supervisor(db_path, resume=False)
    try:
        sweep = supervisor.submit(plan_sweep(fault_config(gpus_per_node=1), [1], repeats=3))
        assert started.wait(10)
        assert supervisor.cancel(sweep)
        # what a restart reads the instant after the acknowledgement
        disk = Store(db_path)
        assert disk.get_sweep(sweep)["status"] == "cancelled"
        assert sweep not in disk.resumable_sweeps()
        assert sweep not in [s["id"] for s in disk.unfinished_sweeps()]
        queued = [r for r in disk.list_runs(sweep_id=sweep) if r["started_at"] is None]
        assert len(queued) == 2 and {r["status"] for r in queued} == {"cancelled"}
    finally:
        release.set()
        supervisor.shutdown()
