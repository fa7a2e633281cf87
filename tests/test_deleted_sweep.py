"""A deleted sweep no longer answers (issue 27 item 6): the supervisor's memory of a
finished sweep must not outlive its rows."""

from __future__ import annotations

import time

import pytest
from faultkit import fault_config

from runner.result import RunResult
from studio.sweeps import supervisor as supervisor_module
from studio.sweeps.plan import plan_sweep
from studio.sweeps.supervisor import Supervisor
from studio.web import history, views

pytestmark = pytest.mark.timeout(60)


def _fails_at_once(plan, store, *, sweep_id, run_ids, on_event, **_):
    for run_id in run_ids:
        on_event({"event": "run-start", "run_id": run_id})
        store.finish_run(run_id, RunResult.failure(plan.base.to_dict(), "failed", "no hardware in this test"))
        on_event({"event": "run-end", "run_id": run_id, "status": "failed", "tokens_per_second": 12.5})
    store.finish_sweep(sweep_id, "failed")
    return type("Outcome", (), {"status": "failed"})()


def _finished(supervisor, sweep_id):
    deadline = time.monotonic() + 20
    while supervisor.status(sweep_id)["state"] not in supervisor_module.FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_deleted_sweep_is_gone_from_sweep_status(db_path, monkeypatch):
    monkeypatch.setattr(supervisor_module, "run_sweep", _fails_at_once)
    supervisor = Supervisor(db_path, resume=False)
    try:
        plan = plan_sweep(fault_config(gpus_per_node=1), [1])
        first = supervisor.submit(plan)
        _finished(supervisor, first)
        second = supervisor.submit(plan)
        _finished(supervisor, second)
        assert views.load_sweep(supervisor, supervisor.store, None)[0]["sweep_id"] == second

        history.delete_selected(supervisor.store, sweep_ids=[second])
        supervisor.forget([second])
        assert views.load_sweep(supervisor, supervisor.store, second) == (None, [])
        # the latest sweep still stored answers now
        assert views.load_sweep(supervisor, supervisor.store, None)[0]["sweep_id"] == first

        # deleted by another program on the same database: this server never heard
        history.delete_selected(supervisor.store, sweep_ids=[first])
        assert views.load_sweep(supervisor, supervisor.store, first) == (None, [])
        assert views.load_sweep(supervisor, supervisor.store, None) == (None, [])
    finally:
        supervisor.shutdown()
